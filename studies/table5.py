"""The paper's Table 5 ablation on the embedded MNIST default, plus DiffPure and GDMP rows, each row
evaluated with the attacks, threats, batches and votes of one evaluation config (default:
configs/mnist-default.yaml, whose options are those of the earlier shipped default every row changes one
thing of); resumable: each row is an `evaluate` run with its own store.

    python -m studies.table5 --rows diffpure gdmp --eps 0.3 --output-dir benchmarks/results/table5-t100

Data parallel like `evaluate` (`python -m torch.distributed.run --nproc_per_node 2 -m studies.table5 ...`).
"""

import argparse
import dataclasses
import os

from mimic_diffusers.evaluation import EvalConfig, run_evaluation

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
    for row in args.rows:  # each run prints its report; the table is the docs page (`python -m studies.pages`)
        run_evaluation(row_config(base, row, args.output_dir), run_eps=args.eps)


if __name__ == "__main__":
    main()
