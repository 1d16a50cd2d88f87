"""`demo`: the main job. PGD on the bare classifier (NOT adaptive), then MimicDiffusion purification.

Prints, per eps: clean accuracy, adversarial accuracy without defense, accuracy after purification;
writes a PNG grid (clean | adversarial | purified, predicted labels). For honest robustness numbers
(attacks that see the defense) run `mimic-diffusers evaluate`.
"""

import os
import time

import torch

from .options import add_device_argument, add_pipeline_argument, device_from

NOT_ADAPTIVE = (
    "NOTE: this attack is NOT adaptive: PGD sees only the bare classifier, never the purifier. "
    "These numbers are an upper bound, not robustness. Honest numbers (BPDA+EOT, gradients "
    "through the whole guided chain, Square): "
    "`mimic-diffusers evaluate --config configs/mnist-default.yaml` (configs/ comes with the repository)."
)


def add_arguments(p, name):
    add_pipeline_argument(p)
    add_device_argument(p)
    p.add_argument(
        "--num-images", type=int, default=16, help="test images to attack (default 16: ~2 min on 2 CPU cores)"
    )
    p.add_argument(
        "--eps", type=float, nargs="+", default=[0.1, 0.3], help="l_inf budgets (MNIST standard: 0.1 and 0.3)"
    )
    p.add_argument("--pgd-steps", type=int, default=40)
    p.add_argument("--num-inference-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="demo.png", help="PNG grid path")


def run(args):
    from ..attacks import create_attack
    from ..data import load_image_dataset, to_tensors
    from ..defaults import load_default_pipeline
    from ..image_io import image_generators
    from ..reports import image_grid

    if args.num_images < 1:
        raise ValueError(f"--num-images must be >= 1, got {args.num_images}")
    if any(e < 0 for e in args.eps):
        raise ValueError(f"--eps values must be >= 0, got {args.eps}")
    if not args.output.endswith(".png"):
        raise ValueError(f"--output must be a .png path, got {args.output!r}")
    device = device_from(args)
    start = time.time()
    pipe = load_default_pipeline(args.pipeline, device=device)
    pipe.set_progress_bar_config(disable=True)
    test = load_image_dataset("mnist5k", split="test")
    if args.num_images > len(test):
        raise ValueError(f"--num-images must be <= {len(test)}, got {args.num_images}")
    x, y = to_tensors(test, pipe.unet.config.in_channels, indices=range(args.num_images))
    x, y = x.to(pipe.device), y.to(pipe.device)

    def accuracy(images):
        with torch.no_grad():
            return (pipe.classify(images).argmax(1) == y).float().mean().item()

    def purify(images):
        gens = image_generators(len(images), args.seed * 100003, pipe.device)
        return pipe(images, num_inference_steps=args.num_inference_steps, generator=gens, output_type="pt").images

    purified_clean = purify(x)
    rows = ["| eps | clean acc | adversarial acc (no defense) | acc after purification |", "|---|---|---|---|"]
    grids = []
    for eps in args.eps:
        attack = create_attack("pgd-classifier", pipe, eps=eps, steps=args.pgd_steps, seed=args.seed)
        x_adv = attack(x, y)
        purified = purify(x_adv)
        rows.append(f"| {eps:g} | {accuracy(x):.1%} | {accuracy(x_adv):.1%} | {accuracy(purified):.1%} |")
        grids.append((eps, x_adv, purified))
    print(
        f"MimicDiffusion demo on {args.num_images} MNIST test images "
        f"({args.num_inference_steps} steps; purified clean accuracy {accuracy(purified_clean):.1%})"
    )
    print("\n".join(rows))
    print(NOT_ADAPTIVE)
    n = min(8, args.num_images)
    sets, titles = [x[:n]], ["clean"]
    for eps, x_adv, purified in grids:
        sets += [x_adv[:n], purified[:n]]
        titles += [f"adv eps={eps:g}", f"purified eps={eps:g}"]
    with torch.no_grad():
        preds = [pipe.classify(s).argmax(1).tolist() for s in sets]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    image_grid(sets, preds, y[:n].tolist(), titles, args.output)
    print(f"wrote {args.output} ({time.time() - start:.0f} s)")
