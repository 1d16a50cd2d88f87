"""What purification and the chain-gradient attacks cost at the real model sizes, on this machine, and
the wall time of the paper's CIFAR-10 protocol projected from it.

    python -m studies.cost_at_scale --output benchmarks/results/cost-at-scale.json

Models (random weights, the architectures of the real checkpoints; `mimic_diffusers.unet_configs`):
the CIFAR pipeline is google/ddpm-cifar10-32's UNet (35.7M parameters) with a RobustBench WRN-28-10, the
ImageNet-size one google/ddpm-ema-church-256's UNet (113.7M, 256x256) with timm resnet50. Measured: seconds
per image of MimicDiffusion purification (T=100 at batch 1; T=10 at batch 1, 8, 32, whose window holds the
same 30% of guided steps), the guided/unguided ratio, one exact chain gradient (checkpointed and not) vs T
and batch with its peak memory (each case in a fresh process), and the speed-up of batched EOT per
gradient. The projection multiplies measured per-gradient seconds by the attacks' budgets.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from mimic_diffusers.profiling import machine, run_in_subprocess, time_purification
from mimic_diffusers.reports import atomic_write

# the paper's CIFAR-10 protocol at the budgets of configs/cifar10-ddpm-wrn.yaml
PROTOCOL = {
    "images": 512,
    "num_inference_steps": 100,
    "bpda-eot": {"steps": 100, "eot": 20},
    "feedback-cut-pgd-eot": {"steps": 200, "eot": 20, "gradient_steps": 20},
}


def build_folder(kind: str, folder: str) -> str:
    """Save a random-weight pipeline folder of the CIFAR or ImageNet-size architecture."""
    from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, TimmClassifier
    from mimic_diffusers.classifier_robustbench import RobustBenchClassifier
    from mimic_diffusers.unet_configs import create_unet

    if kind == "cifar":
        unet, classifier = create_unet("google/ddpm-cifar10-32"), RobustBenchClassifier(architecture="wrn-28-10")
    else:
        unet = create_unet("google/ddpm-ema-church-256")
        classifier = TimmClassifier(model_name="resnet50", num_classes=1000, in_chans=3, image_size=256)
    pipe = MimicDiffusionPipeline(unet=unet, scheduler=MimicDiffusionScheduler(), classifier=classifier)
    pipe.save_pretrained(folder)
    return folder


def purification(folder: str, batches, full_steps: bool, repeats: int, device: str = "cpu") -> dict:
    from mimic_diffusers.profiling import build

    out = {}
    for mode in ("unguided", "mimic"):
        pipe = build(folder, mode, device)
        pipe.set_progress_bar_config(disable=True)
        for batch in batches:
            seconds = time_purification(pipe, batch, 10, repeats, device)
            out[f"{mode}/T10/b{batch}"] = {"seconds": seconds, "seconds_per_image_at_T100": 10 * seconds / batch}
        if full_steps:
            seconds = time_purification(pipe, 1, 100, repeats, device)
            out[f"{mode}/T100/b1"] = {"seconds": seconds, "seconds_per_image_at_T100": seconds}
    for key in list(out):
        if key.startswith("mimic/"):
            out[key]["ratio_to_unguided"] = out[key]["seconds"] / out[key.replace("mimic/", "unguided/")]["seconds"]
    return out


def gradients(folder: str, cases, device: str = "cpu") -> dict:
    out = {}
    for steps, batch, checkpoint in cases:
        key = f"T{steps}/b{batch}/{'checkpointed' if checkpoint else 'plain'}"
        case = {"kind": "gradient", "mode": "mimic", "batch": batch, "steps": steps, "checkpoint": checkpoint}
        try:
            out[key] = run_in_subprocess(folder, case, device)
        except Exception as error:  # e.g. the memory guard refusing a plain chain: recorded, not fatal
            out[key] = {"error": str(getattr(error, "stderr", "") or error)[-300:]}
    return out


def batched_eot(folder: str, batch: int, eot: int, steps: int, device: str = "cpu") -> dict:
    """Seconds of one feedback-cut EOT gradient with the draws looped and batched (the same result)."""
    from mimic_diffusers.attacks import create_attack
    from mimic_diffusers.profiling import build, random_images

    pipe = build(folder, "mimic", device)
    pipe.set_progress_bar_config(disable=True)
    x, y = random_images(pipe, batch, device), torch.zeros(batch, dtype=torch.long, device=device)
    out = {}
    for label, eot_batch in (("looped", 1), ("batched", eot)):
        attack = create_attack(
            "feedback-cut-pgd-eot",
            pipe,
            eps=8 / 255,
            eot=eot,
            eot_batch=eot_batch,
            num_inference_steps=steps,
            tau=0.5,
            loss="margin",
        )
        start = time.perf_counter()
        attack._loss_grad(x, y)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out[label] = time.perf_counter() - start
    out["speedup"] = out["looped"] / out["batched"]
    out.update(batch=batch, eot=eot, steps=steps)
    return out


def fit_linear(points: dict) -> tuple:
    """Least-squares a + b T through {T: seconds}."""
    ts, ss = list(points), list(points.values())
    _n, mt, ms = len(ts), sum(ts) / len(ts), sum(ss) / len(ss)
    var = sum((t - mt) ** 2 for t in ts)
    b = sum((t - mt) * (s - ms) for t, s in zip(ts, ss)) / var if var else 0.0
    return ms - b * mt, b


def project(result: dict) -> dict:
    """Hours of the paper's CIFAR-10 protocol from the measured per-image, per-gradient seconds."""
    cifar = result["cifar"]
    purify_s = cifar["purification"]["mimic/T100/b1"]["seconds_per_image_at_T100"]
    chain = {
        int(k.split("/")[0][1:]): v["seconds"]
        for k, v in cifar["gradients"].items()
        if k.endswith("/b1/checkpointed") and "seconds" in v
    }
    a, b = fit_linear(chain)
    p = PROTOCOL
    bpda = p["images"] * p["bpda-eot"]["steps"] * p["bpda-eot"]["eot"] * purify_s
    cut_steps = p["feedback-cut-pgd-eot"]["gradient_steps"]
    cut = p["images"] * p["feedback-cut-pgd-eot"]["steps"] * p["feedback-cut-pgd-eot"]["eot"] * (a + b * cut_steps)
    return {
        "protocol": p,
        "purification_seconds_per_image": purify_s,
        "chain_gradient_seconds_fit": {"a": a, "b_per_step": b, "at_gradient_steps": a + b * cut_steps},
        "bpda_eot_hours": bpda / 3600,
        "feedback_cut_pgd_eot_hours": cut / 3600,
        "note": "batch-1 seconds per gradient times images x iterations x EOT; larger batches and batched EOT "
        "change this by the measured factors",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="runs/cost-at-scale.json")
    p.add_argument("--smoke", action="store_true", help="tiny budgets (checks the script runs; numbers mean nothing)")
    args = p.parse_args()
    smoke = args.smoke
    result = {"command": "python -m studies.cost_at_scale" + (" --smoke" if smoke else ""), "machine": machine()}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cifar = build_folder("cifar", os.path.join(tmp, "cifar"))
        result["cifar"] = {
            "purification": purification(
                cifar, (1, 2) if smoke else (1, 8, 32), full_steps=not smoke, repeats=1 if smoke else 2
            ),
            "gradients": gradients(
                cifar,
                [(2, 1, True), (4, 1, True)]
                if smoke
                else [
                    (10, 1, True),
                    (20, 1, True),
                    (50, 1, True),
                    (100, 1, True),
                    (10, 1, False),
                    (50, 1, False),
                    (10, 8, True),
                    (10, 8, False),
                ],
            ),
            "batched_eot": batched_eot(cifar, 2, 2 if smoke else 4, 2 if smoke else 10),
        }
        if smoke:
            result["cifar"]["purification"]["mimic/T100/b1"] = result["cifar"]["purification"]["mimic/T10/b1"]
        else:
            imagenet = build_folder("imagenet", os.path.join(tmp, "imagenet"))
            result["imagenet_size"] = {
                "purification": purification(imagenet, (1,), full_steps=False, repeats=1),
                "gradients": gradients(imagenet, [(10, 1, True)]),
            }
    result["projection"] = project(result)
    result["wall_s"] = round(time.time() - started, 1)
    atomic_write(args.output, json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    meta = {
        "command": result["command"] + f" --output {args.output}",
        "wall_time_min": round(result["wall_s"] / 60),
        "machine": f"{m['processor']}, {m['cpu_count']} CPU cores, {m['threads']} torch threads, 1 process",
        "source": "written by the run",
    }
    atomic_write(os.path.splitext(args.output)[0] + ".run.json", json.dumps(meta, indent=1) + "\n")
    print(json.dumps(result["projection"], indent=1))


if __name__ == "__main__":
    sys.exit(main())
