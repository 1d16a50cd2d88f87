"""Pick guidance defaults by measurement: for each option set, purified standard accuracy and accuracy
under non-adaptive PGD (eps 0.3) and BPDA+EOT on the same test images, in one run.

This is the study behind the shipped MNIST options (docs/results/calibration.md is rendered from its stored
output). To choose the guidance scale of a new pipeline from clean accuracy alone, use `mimic-diffusers
calibrate` (`mimic_diffusers.calibration.calibrate_guidance_scale`).

    python benchmarks/calibrate_guidance.py --pipeline mnist-mimic --num-images 128 --steps 20
"""

import argparse
import json
import time

import torch

from mimic_diffusers import load_pipeline
from mimic_diffusers.attacks import create_attack
from mimic_diffusers.data import load_image_dataset, to_tensors

CANDIDATES = [
    {},  # the default
    {"guidance_scale": 0.3},
    {"guidance_scale": 3.0},
    {"guidance_scale": 10.0},
    {"sr_direction": "up"},
    {"short_range": False},
    {"step_size_rule": "dps", "guidance_scale": 0.5},
    {"preset": "mimic-official"},
    {"long_range": False, "short_range": False},  # unguided: the floor
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pipeline", default="mnist-mimic")
    p.add_argument("--num-images", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--bpda-steps", type=int, default=5)
    p.add_argument("--candidates", default=None, help="JSON list of option dicts (default: the built-in list)")
    p.add_argument("--output", default="benchmarks/results/calibration.json")
    args = p.parse_args()
    candidates = json.loads(args.candidates) if args.candidates else CANDIDATES
    x, y = to_tensors(load_image_dataset("mnist5k", split="test"), 1, indices=range(args.num_images))
    base = load_pipeline(args.pipeline)
    pgd = create_attack("pgd-classifier", base, eps=0.3, steps=40)(x, y)
    rows = []
    for options in candidates:
        pipe = load_pipeline(args.pipeline, options)
        start = time.time()

        def acc(images, seed):
            gens = [torch.Generator().manual_seed(seed + i) for i in range(len(images))]
            out = pipe(images, num_inference_steps=args.steps, generator=gens, output_type="pt").images
            with torch.no_grad():
                return float((pipe.classify(out).argmax(1) == y).float().mean())

        bpda = create_attack("bpda-eot", pipe, eps=0.3, steps=args.bpda_steps, num_inference_steps=args.steps)(x, y)
        row = {
            "options": options,
            "standard": acc(x, 0),
            "pgd_classifier_0.3": acc(pgd, 1000),
            "bpda_0.3": acc(bpda, 2000),
            "seconds": round(time.time() - start, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(args.output, "w") as f:
        json.dump(
            {"num_images": args.num_images, "steps": args.steps, "bpda_steps": args.bpda_steps, "rows": rows},
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
