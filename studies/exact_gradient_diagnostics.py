"""Why an exact-gradient attack is weak or strong: what each gradient of the shipped defense looks like.

For each gradient setting, at the clean test images:
- `draw_cosine`: cosine between the input gradients of two purification draws (EOT samples); near 0 means
  the gradient is noise that EOT has to average away;
- `bpda_cosine`: cosine with the BPDA gradient (identity backward), a direction known to attack well;
- `margin_drop`: how much one signed step of size `--step` along the gradient lowers the classification
  margin of the real (T=100, exact sign) defense, scored with the same purification noise before and after
  the step (common random numbers) and averaged over `--purifications` draws. Larger is better for the
  attacker; this is the direct test of "does the gradient point uphill".

    python -m studies.exact_gradient_diagnostics --num-images 16
"""

import argparse
import json

import torch

from mimic_diffusers import load_pipeline
from mimic_diffusers.attacks import PurifyThenClassify, input_gradient
from mimic_diffusers.attacks.pgd_eot import margin
from mimic_diffusers.data import load_image_dataset, to_tensors
from mimic_diffusers.reports import atomic_write

SETTINGS = {
    "bpda": {"gradient": "bpda"},
    "exact, 20-step chain, tau 0.5": {"gradient": "exact", "gradient_steps": 20, "tau": 0.5},
    "exact, 50-step chain, tau 0.5": {"gradient": "exact", "gradient_steps": 50, "tau": 0.5},
    "exact, 50-step chain, tau 0.5, no feedback": {"gradient": "feedback-cut", "gradient_steps": 50, "tau": 0.5},
    "exact, 50-step chain, tau 4, no feedback": {"gradient": "feedback-cut", "gradient_steps": 50, "tau": 4.0},
}


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pipeline", default="mnist-mimic")
    p.add_argument("--num-images", type=int, default=16)
    p.add_argument("--steps", type=int, default=100, help="purification steps of the defense scored")
    p.add_argument("--step", type=float, default=0.1, help="l_inf size of the one signed step")
    p.add_argument("--purifications", type=int, default=2)
    p.add_argument("--output", default="benchmarks/results/exact-gradient-diagnostics.json")
    args = p.parse_args()
    pipe = load_pipeline(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    x, y = to_tensors(load_image_dataset("mnist5k", split="test"), 1, indices=range(args.num_images))
    scorer = PurifyThenClassify(pipe, num_inference_steps=args.steps)

    def mean_margin(images):
        values = []
        for k in range(args.purifications):
            scorer.reseed(1000 + k)  # the same noise for every setting and before/after the step
            with torch.no_grad():
                values.append(margin(scorer(images), y))
        return torch.stack(values).mean(0)

    base = mean_margin(x)
    grads, rows = {}, []
    for label, options in SETTINGS.items():
        defense = PurifyThenClassify(pipe, num_inference_steps=args.steps, **options)
        draws = []
        for seed in (1, 2):
            defense.reseed(seed)
            draws.append(input_gradient(defense, x, y))
        grads[label] = draws[0] + draws[1]
        stepped = (x + args.step * grads[label].sign()).clamp(0, 1)
        rows.append(
            {
                "setting": label,
                "options": options,
                "grad_l1_mean": float(grads[label].flatten(1).abs().sum(1).mean() / 2),
                "draw_cosine": float(cosine(*draws).mean()),
                "bpda_cosine": float(cosine(grads[label], grads["bpda"]).mean()),
                "margin_drop": float((base - mean_margin(stepped)).mean()),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        atomic_write(
            args.output,
            json.dumps(
                {"num_images": args.num_images, "step": args.step, "purifications": args.purifications, "rows": rows},
                indent=1,
            ),
        )


if __name__ == "__main__":
    main()
