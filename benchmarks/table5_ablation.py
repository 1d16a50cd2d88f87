"""The paper's Table 5 ablation on the embedded MNIST default, plus DiffPure and GDMP rows, evaluated
with the same attacks; resumable (each row is an `evaluate` run with its own output folder).

    python benchmarks/table5_ablation.py --num-samples 64 --steps 20 --output-dir runs/eval/table5
"""
import argparse
import json
import os

from mimic_diffusers.evaluation import EvalConfig, run_evaluation
from mimic_diffusers.reports import atomic_write

ROWS = {}
for distance in ("l2", "l1"):
    for terms, (long_range, short_range) in {"long": (True, False), "short": (False, True), "both": (True, True)}.items():
        for window, (start, end) in {"window": (0.5, 0.2), "no-window": (1.0, 0.0)}.items():
            ROWS[f"{distance}-{terms}-{window}"] = dict(distance=distance, long_range=long_range, short_range=short_range,
                                                        guidance_window_start=start, guidance_window_end=end)
ROWS["diffpure"] = {"preset": "diffpure"}
ROWS["gdmp"] = {"preset": "gdmp"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pipeline", default="pipelines/mnist-mimic")
    p.add_argument("--rows", nargs="+", default=list(ROWS))
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3])
    p.add_argument("--attacks", default=json.dumps([
        {"name": "autoattack-standard", "params": {"n_iter": 5, "n_queries": 20, "n_target_classes": 1}},
        {"name": "bpda-eot", "params": {"steps": 10, "eot": 1}},
        {"name": "exact-pgd-eot", "params": {"steps": 10, "eot": 1}},
        {"name": "square", "params": {"n_queries": 30}}]))
    p.add_argument("--output-dir", default="runs/eval/table5")
    args = p.parse_args()
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        raise SystemExit(f"error: unknown rows {sorted(unknown)}; choose from {sorted(ROWS)}")
    lines = ["| row | standard | " + " | ".join(f"worst case eps={e:g}" for e in args.eps) + " | per-attack (eps: attack acc) |",
             "|---|---|" + "---|" * len(args.eps) + "---|"]
    for row in args.rows:
        config = EvalConfig(pipeline=args.pipeline, output_dir=os.path.join(args.output_dir, row), num_samples=args.num_samples,
                            batch_size=args.batch_size, num_inference_steps=args.steps, scheduler_options=ROWS[row],
                            threats=[{"norm": "Linf", "eps": e} for e in args.eps], attacks=json.loads(args.attacks),
                            examples=0).validate()
        s = run_evaluation(config)
        worst = [f"{s['threats'][f'Linf-{e:g}']['worst_case']['accuracy']:.1%}" for e in args.eps]
        detail = "; ".join(f"{k}: " + ", ".join(f"{n} {a['accuracy']:.0%}" for n, a in t["attacks"].items())
                           for k, t in s["threats"].items())
        lines.append(f"| {row} | {s['clean']['accuracy']:.1%} | " + " | ".join(worst) + f" | {detail} |")
        atomic_write(os.path.join(args.output_dir, "table5.md"), "\n".join(lines) + "\n")
        print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
