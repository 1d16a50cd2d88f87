"""The paper's Table 5 ablation on the embedded MNIST default, plus DiffPure and GDMP rows, each row
evaluated with the attacks, threats, batches and votes of one evaluation config (default: the shipped
default's, configs/mnist-default.yaml, so every row faces the same attacks as the default); resumable:
each row is an `evaluate` run with its own output folder.

    python -m studies.table5 --rows diffpure gdmp --eps 0.3 --output-dir benchmarks/results/table5-t100

Data parallel like `evaluate` (`python -m torch.distributed.run --nproc_per_node 2 -m studies.table5 ...`).
"""

import argparse
import dataclasses
import math
import os

from accelerate import PartialState

from mimic_diffusers.evaluation import EvalConfig, run_evaluation
from mimic_diffusers.reports import atomic_write

ROWS = {}
for distance in ("l2", "l1"):
    for terms, (long_range, short_range) in {
        "long": (True, False),
        "short": (False, True),
        "both": (True, True),
    }.items():
        for window, (start, end) in {"window": (0.5, 0.2), "no-window": (1.0, 0.0)}.items():
            ROWS[f"{distance}-{terms}-{window}"] = dict(
                distance=distance,
                long_range=long_range,
                short_range=short_range,
                guidance_window_start=start,
                guidance_window_end=end,
            )
ROWS["diffpure"] = {"preset": "diffpure"}
ROWS["gdmp"] = {"preset": "gdmp"}


def row_config(base: EvalConfig, row: str, output_dir: str) -> EvalConfig:
    """The evaluation of one row: the base config with the row's scheduler change (a baseline's preset
    replaces the base's options: a baseline runs its own recipe)."""
    options = ROWS[row] if "preset" in ROWS[row] else {**base.scheduler_options, **ROWS[row]}
    return dataclasses.replace(
        base, output_dir=os.path.join(output_dir, row), scheduler_options=options, examples=0, report_dir=None
    ).validate()


def main():
    p = argparse.ArgumentParser()
    p.add_argument(
        "--config",
        default="configs/mnist-default.yaml",
        help="evaluation config whose pipeline, attacks, threats, batches and votes every row uses",
    )
    p.add_argument("--rows", nargs="+", default=list(ROWS))
    p.add_argument("--num-samples", type=int, help="overrides the config's num_samples")
    p.add_argument("--batch-size", type=int, help="overrides the config's batch_size (larger on a GPU; new rows only)")
    p.add_argument("--steps", type=int, help="overrides the config's num_inference_steps")
    p.add_argument("--eps", type=float, nargs="+", help="run only the config's threats with these eps values")
    p.add_argument("--output-dir", default="benchmarks/results/table5-t100", help="the folder of the row stores")
    args = p.parse_args()
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        raise SystemExit(f"error: unknown rows {sorted(unknown)}; choose from {sorted(ROWS)}")
    base = EvalConfig.from_file(
        args.config, num_samples=args.num_samples, batch_size=args.batch_size, num_inference_steps=args.steps
    )
    # the table's columns: the eps run now (an eps the config lacks is refused by run_evaluation)
    eps = [t["eps"] for t in base.threats if not args.eps or any(math.isclose(t["eps"], e) for e in args.eps)]
    lines = [
        "| row | standard | " + " | ".join(f"worst case eps={e:g}" for e in eps) + " | per-attack (eps: attack acc) |",
        "|---|---|" + "---|" * len(eps) + "---|",
    ]
    for row in args.rows:
        config = row_config(base, row, args.output_dir)
        s = run_evaluation(config, run_eps=args.eps)
        worst = [f"{s['threats'][f'Linf-{e:g}']['worst_case']['accuracy']:.1%}" for e in eps]
        detail = "; ".join(
            f"{k}: " + ", ".join(f"{n} {a['accuracy']:.0%}" for n, a in t["attacks"].items())
            for k, t in s["threats"].items()
        )
        lines.append(f"| {row} | {s['clean']['accuracy']:.1%} | " + " | ".join(worst) + f" | {detail} |")
        if PartialState().is_main_process:  # one writer when data parallel
            atomic_write(os.path.join(args.output_dir, "table5.md"), "\n".join(lines) + "\n")
            print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
