"""Fewest sampling steps: standard and BPDA+EOT robust accuracy of the shipped pipeline at T = 10, 20,
50, 100 (DDIM-strided DDPM steps, step-count-invariant guidance), with wall time and the speed-up
over T=100. Same images, attack seeds and purification seeds at every T; the BPDA attack is run
against the purifier with that T (an adaptive attack per setting, not a transfer).

    python -m studies.fewest_steps --standard-images 512 --bpda-images 128
"""

import argparse
import json
import os
import time

import torch

from mimic_diffusers import load_pipeline
from mimic_diffusers.attacks import PurifyThenClassify, create_attack
from mimic_diffusers.data import load_image_dataset, to_tensors
from mimic_diffusers.metrics import wilson_interval
from mimic_diffusers.reports import atomic_write


def batched_accuracy(defense, x, y, batch_size):
    correct = []
    for i in range(0, len(x), batch_size):
        correct.append(defense.predict(x[i : i + batch_size])[0] == y[i : i + batch_size])
    return torch.cat(correct)


def time_steps(pipe, steps_list, x, repeats=2):
    """Seconds per purification of the batch `x` at each T, back to back (after one warm-up each), so
    the speed-ups are ratios measured in one quiet stretch, not sums over the whole (contended) study."""
    seconds = {}
    for steps in steps_list:
        defense = PurifyThenClassify(pipe, num_inference_steps=steps, seed=0)
        defense.predict(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            defense.predict(x)
            times.append(time.perf_counter() - start)
        seconds[steps] = min(times)
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pipeline", default="mnist-mimic")
    p.add_argument("--steps", type=int, nargs="+", default=[100, 50, 20, 10])
    p.add_argument("--standard-images", type=int, default=512)
    p.add_argument("--bpda-images", type=int, default=128)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--bpda-steps", type=int, default=10)
    p.add_argument("--bpda-eot", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", default="benchmarks/results/fewest-steps.json")
    p.add_argument("--timing-only", action="store_true", help="only (re)time each T and update --output's speed-ups")
    args = p.parse_args()
    if args.timing_only and not os.path.isfile(args.output):
        p.error(f"--timing-only needs an earlier study in --output ({args.output!r} does not exist)")
    pipe = load_pipeline(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    n = max(args.standard_images, args.bpda_images)
    x, y = to_tensors(load_image_dataset("mnist5k", split="test"), 1, indices=range(n))
    previous = json.load(open(args.output)) if args.timing_only else {"args": vars(args), "rows": []}
    rows, study_args = previous["rows"], previous["args"]
    for steps in [] if args.timing_only else args.steps:
        defense = PurifyThenClassify(pipe, num_inference_steps=steps, seed=7)
        start = time.time()
        clean = batched_accuracy(defense, x[: args.standard_images], y[: args.standard_images], args.batch_size)
        standard_seconds = time.time() - start
        start = time.time()
        robust = []
        for i in range(0, args.bpda_images, args.batch_size):
            xb, yb = x[: args.bpda_images][i : i + args.batch_size], y[: args.bpda_images][i : i + args.batch_size]
            attack = create_attack(
                "bpda-eot",
                pipe,
                eps=args.eps,
                seed=1 + i,
                num_inference_steps=steps,
                steps=args.bpda_steps,
                eot=args.bpda_eot,
            )
            x_adv = attack(xb, yb)
            defense.reseed(11 + i)
            robust.append(defense.predict(x_adv)[0] == yb)
        robust = torch.cat(robust)
        row = {
            "num_inference_steps": steps,
            "standard_accuracy": float(clean.float().mean()),
            "standard_n": len(clean),
            "standard_ci95": wilson_interval(int(clean.sum()), len(clean)),
            "standard_seconds": round(standard_seconds, 1),
            "standard_images_per_second": round(len(clean) / standard_seconds, 2),
            "bpda_accuracy": float(robust.float().mean()),
            "bpda_n": len(robust),
            "bpda_ci95": wilson_interval(int(robust.sum()), len(robust)),
            "bpda_seconds": round(time.time() - start, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        atomic_write(args.output, json.dumps({"args": study_args, "rows": rows}, indent=1))
    timing = time_steps(pipe, [r["num_inference_steps"] for r in rows], x[: args.batch_size])
    reference = max(rows, key=lambda r: r["num_inference_steps"])
    for r in rows:
        r["seconds_per_batch"] = round(timing[r["num_inference_steps"]], 2)
        r["speedup_vs_max_steps"] = round(
            timing[reference["num_inference_steps"]] / timing[r["num_inference_steps"]], 2
        )
        r["standard_delta_points"] = round(100 * (r["standard_accuracy"] - reference["standard_accuracy"]), 1)
        r["bpda_delta_points"] = round(100 * (r["bpda_accuracy"] - reference["bpda_accuracy"]), 1)
    atomic_write(
        args.output,
        json.dumps(
            {
                "args": study_args,
                "rows": rows,
                "timing": f"one batch of {args.batch_size}, best of 2, after a warm-up",
            },
            indent=1,
        ),
    )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
