"""Attack budget curves: robust accuracy of the shipped defense as the attack budget grows (an attack is
only as good as the lowest number it finds). Same images and seeds for every row; each attacked set is
scored on `--eval-purifications` independent purifications (mean accuracy: less noisy than one draw).

    python -m studies.tune_attacks --num-images 32 --eps 0.3 --steps 20
    python -m studies.tune_attacks --num-images 32 --eps 0.3 --steps 20 --eval-purifications 4 \
        --grid '[["bpda-eot", {"steps": 20, "eot": 8}]]' --output benchmarks/results/attack-tuning-eot.json
    # the exact-attack study (benchmarks/results/exact-attack-study-t100.json), one row of it:
    python -m studies.tune_attacks --num-images 32 --eps 0.3 --steps 100 --eval-purifications 2 --skip-diagnostics \
        --grid '[["feedback-cut-pgd-eot", {"steps": 10, "tau": 0.5, "loss": "margin"}]]'
    # the same attack on a Table 5 row (here l2-long-window: benchmarks/results/attack-tuning-l2-long-window.json)
    python -m studies.tune_attacks --num-images 16 --eps 0.3 --steps 100 --eval-purifications 2 --skip-diagnostics \
        --scheduler-options '{"distance": "l2", "short_range": false}' --grid '[["exact-pgd-eot", {"steps": 10}]]'
"""

import argparse
import json
import time

from mimic_diffusers import load_pipeline
from mimic_diffusers.attacks import PurifyThenClassify, create_attack, gradient_diagnostics
from mimic_diffusers.data import load_image_dataset, to_tensors
from mimic_diffusers.reports import atomic_write

GRID = [
    ("bpda-eot", {"steps": 5}),
    ("bpda-eot", {"steps": 20}),
    ("bpda-eot", {"steps": 20, "eot": 4}),
    ("exact-pgd-eot", {"steps": 5, "tau": 0.05}),
    ("exact-pgd-eot", {"steps": 20, "tau": 0.05}),
    ("exact-pgd-eot", {"steps": 5, "tau": 0.5}),
    ("exact-pgd-eot", {"steps": 20, "tau": 0.5}),
    ("exact-pgd-eot", {"steps": 20, "tau": 0.5, "sign_surrogate": "tanh"}),
    ("exact-pgd-eot", {"steps": 20, "tau": 0.5, "gradient_steps": 10}),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pipeline", default="mnist-mimic")
    p.add_argument("--num-images", type=int, default=32)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=20, help="purification steps")
    p.add_argument("--output", default="benchmarks/results/attack-tuning.json")
    p.add_argument("--grid", type=json.loads, default=GRID, help="JSON list of [attack name, params]")
    p.add_argument("--eval-purifications", type=int, default=1)
    p.add_argument("--skip-diagnostics", action="store_true")
    p.add_argument(
        "--scheduler-options",
        type=json.loads,
        default={},
        help='JSON scheduler options of an ablation row, e.g. \'{"distance": "l2", "short_range": false}\'',
    )
    args = p.parse_args()
    pipe = load_pipeline(args.pipeline, args.scheduler_options)
    x, y = to_tensors(load_image_dataset("mnist5k", split="test"), 1, indices=range(args.num_images))
    pipe.set_progress_bar_config(disable=True)
    defense = PurifyThenClassify(pipe, num_inference_steps=args.steps)
    rows = []
    for mode in (
        () if args.skip_diagnostics else ("autograd", "bpda", "exact", "feedback-cut")
    ):  # what each gradient mode sees at the clean inputs
        d = gradient_diagnostics(PurifyThenClassify(pipe, gradient=mode, num_inference_steps=args.steps), x, y)
        rows.append({"gradient_mode": mode, **d})
        print(json.dumps(rows[-1]), flush=True)
    for name, params in args.grid:
        start = time.time()
        attack = create_attack(name, pipe, eps=args.eps, seed=1, num_inference_steps=args.steps, **dict(params))
        x_adv = attack(x, y)
        seconds = time.time() - start
        defense.reseed(7)
        correct = defense.predict(x_adv, votes=args.eval_purifications) == y  # (K, B)
        rows.append(
            {
                "attack": name,
                "params": params,
                "robust_accuracy": float(correct.float().mean()),
                "robust_every_purification": float(correct.all(0).float().mean()),
                "eval_purifications": args.eval_purifications,
                "seconds": round(seconds, 1),
                "grad_l1_mean": attack.diagnostics.get("grad_l1_mean"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        atomic_write(
            args.output,
            json.dumps(
                {
                    "num_images": args.num_images,
                    "eps": args.eps,
                    "steps": args.steps,
                    "scheduler_options": args.scheduler_options,
                    "rows": rows,
                },
                indent=1,
            ),
        )


if __name__ == "__main__":
    main()
