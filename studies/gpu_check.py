"""The prepared GPU check: one script, under 8 minutes on one CUDA card, measuring what a CPU cannot.

    python -m studies.gpu_check --output-dir benchmarks/results        # on a CUDA machine
    python -m studies.gpu_check --cpu-smoke --output-dir /tmp/check    # CI: the same code, tiny budgets

1. `mimic-diffusers bench` on the shipped MNIST pipeline and on the CIFAR-architecture pipeline
   (google/ddpm-cifar10-32's UNet, a WRN-28-10; random weights): fp32, autocast (fp16 on CUDA, bf16 on
   CPU), channels_last and torch.compile, as ratios to the unguided floor in one run;
2. one exact chain gradient (T=100, checkpointed) on the CIFAR pipeline at batch 1, 10 and 128, with its
   time and peak `torch.cuda.max_memory_allocated` (each in a fresh process): DiffBreak's A100 anchor is
   about 17 s per full gradient at batch <= 10 and 53 s at 128 for DiffPure;
3. the speed-up of batched EOT per feedback-cut gradient.
Writes gpu-check-<card>.json and .md (the card name in the file name).
"""

import argparse
import json
import os
import re
import tempfile
import time

import torch

from mimic_diffusers.defaults import shipped_pipeline_path
from mimic_diffusers.profiling import machine, markdown, run_benchmark
from mimic_diffusers.reports import atomic_write

from .cost_at_scale import batched_eot, build_folder, gradients

SHIPPED = shipped_pipeline_path()
FULL = dict(
    bench_batches=(1, 64, 256),
    bench_steps=100,
    gradient_batches=(1, 10, 128),
    gradient_steps=100,
    eot=dict(batch=8, eot=16, steps=100),
    speedups=True,
)
SMOKE = dict(
    bench_batches=(1,),
    bench_steps=10,  # 10: DiffPure (t* 0.1) needs one step at least
    gradient_batches=(1, 2),
    gradient_steps=2,
    eot=dict(batch=1, eot=2, steps=2),
    speedups=False,
)


def card_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu-smoke"


def run_check(device: str, budget: dict) -> dict:
    result = {"machine": machine(), "device": device, "card": card_name(device)}
    bench = dict(
        device=device,
        batches=budget["bench_batches"],
        steps=budget["bench_steps"],
        repeats=1,
        memory_steps=(),
        gradient_steps=(),
        speedups=budget["speedups"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        cifar = build_folder("cifar", os.path.join(tmp, "cifar"))
        for name, folder in (("mnist-shipped", SHIPPED), ("cifar-architecture", cifar)):
            start = time.perf_counter()
            result[f"bench/{name}"] = run_benchmark(folder, **bench)
            result[f"bench/{name}"]["wall_s"] = time.perf_counter() - start
        cases = [(budget["gradient_steps"], b, True) for b in budget["gradient_batches"]]
        result["exact_gradient"] = gradients(cifar, cases, device)
        result["batched_eot"] = batched_eot(cifar, device=device, **budget["eot"])
    return result


def render(result: dict) -> str:
    lines = [f"# GPU check: {result['card']}", "", f"Command: `{result['command']}`", ""]
    for name in ("mnist-shipped", "cifar-architecture"):
        lines += [f"## Purification, {name}", "", markdown(result[f"bench/{name}"])]
    lines += [
        "## One exact chain gradient (CIFAR architecture, checkpointed)",
        "",
        "| case | seconds | peak memory MB |",
        "|---|---|---|",
    ]
    for key, r in result["exact_gradient"].items():
        peak = r.get("cuda_peak_mb", r.get("peak_mb_above_baseline"))
        lines.append(
            f"| {key} | "
            + (f"failed: {r['error'][-80:]!r} | |" if "error" in r else f"{r['seconds']:.1f} | {peak:.0f} |")
        )
    e = result["batched_eot"]
    lines += [
        "",
        f"Batched EOT ({e['eot']} draws, batch {e['batch']}, T={e['steps']}): looped {e['looped']:.1f} s, "
        f"batched {e['batched']:.1f} s, speed-up {e['speedup']:.1f}x",
        "",
    ]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default="runs/gpu-check")
    p.add_argument("--cpu-smoke", action="store_true", help="run on the CPU at tiny budgets (checks the script)")
    args = p.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        p.error("no CUDA device: run on a CUDA machine, or pass --cpu-smoke")
    device = "cpu" if args.cpu_smoke else "cuda"
    start = time.time()
    result = run_check(device, SMOKE if args.cpu_smoke else FULL)
    result["command"] = "python -m studies.gpu_check" + (" --cpu-smoke" if args.cpu_smoke else "")
    result["wall_s"] = round(time.time() - start, 1)
    stem = os.path.join(
        args.output_dir, "gpu-check-" + re.sub(r"[^A-Za-z0-9]+", "-", result["card"]).strip("-").lower()
    )
    os.makedirs(args.output_dir, exist_ok=True)
    atomic_write(stem + ".json", json.dumps(result, indent=1) + "\n")
    atomic_write(stem + ".md", render(result))
    print(f"wrote {stem}.json and .md in {result['wall_s']} s")


if __name__ == "__main__":
    main()
