"""Speed and memory of purification, measured as ratios within ONE run on one machine.

Modes: (a) unguided sampling with the same scheduler and steps (the floor), (b) MimicDiffusion with the
default window, (c) guidance in every step (the paper's "no sampling strategy" ablation), (d) DiffPure.
Peak memory is measured in a fresh subprocess per case (CPU: peak RSS above the post-load baseline;
CUDA: torch.cuda.max_memory_allocated), so one case's allocations never hide another's.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import torch

MODES = {
    "unguided": dict(long_range=False, short_range=False),
    "mimic": {},
    "every-step": dict(guidance_window_start=1.0, guidance_window_end=0.0),
    "diffpure": dict(preset="diffpure"),
}
# Opt-in speed-ups of (b), timed with `--speedups` (same scheduler, same steps as "mimic").
SPEEDUPS = {
    "mimic+channels_last": lambda pipe, device: pipe.enable_channels_last(),
    "mimic+compile": lambda pipe, device: pipe.compile_unet(),
    "mimic+autocast": lambda pipe, device: pipe.enable_autocast(
        torch.float16 if str(device).startswith("cuda") else torch.bfloat16
    ),
}


def build(pipeline_path: str, mode: str, device: str):
    from .defaults import load_pipeline

    return load_pipeline(pipeline_path, dict(MODES[mode]), torch.device(device))


def random_images(pipe, batch: int, device: str, requires_grad: bool = False) -> torch.Tensor:
    """A batch of uniform images of the UNet's channel count and size."""
    from .image_io import unet_image_shape

    return torch.rand(batch, *unet_image_shape(pipe.unet), device=device, requires_grad=requires_grad)


def time_purification(pipe, batch: int, steps: int, repeats: int, device: str) -> float:
    x = random_images(pipe, batch, device)
    pipe(x, num_inference_steps=steps, generator=torch.Generator(device).manual_seed(0), output_type="pt")  # warm-up
    best = float("inf")
    for r in range(repeats):
        _sync(device)
        start = time.perf_counter()
        pipe(x, num_inference_steps=steps, generator=torch.Generator(device).manual_seed(r), output_type="pt")
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def exact_gradient_once(pipe, batch: int, steps: int, checkpoint: bool, device: str) -> float:
    from .attacks import PurifyThenClassify

    defense = PurifyThenClassify(pipe, gradient="exact", num_inference_steps=steps, checkpoint_steps=checkpoint)
    x = random_images(pipe, batch, device, requires_grad=True)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(defense(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    _sync(device)
    return time.perf_counter() - start


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def memory_probe(pipeline_path: str, case: dict, device: str) -> dict:
    """Run one case in this process (called in a fresh subprocess) and return its peak memory."""
    import resource
    import threading

    pipe = build(pipeline_path, case["mode"], device)
    pipe.set_progress_bar_config(disable=True)
    peak = {"rss": _rss_mb()}
    baseline = peak["rss"]
    stop = threading.Event()

    def sample():  # ru_maxrss cannot be reset after loading, so sample RSS while the case runs
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss_mb())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    thread.start()
    start = time.perf_counter()
    if case["kind"] == "purify":
        x = random_images(pipe, case["batch"], device)
        pipe(x, num_inference_steps=case["steps"], generator=torch.Generator(device).manual_seed(0), output_type="pt")
    else:
        exact_gradient_once(pipe, case["batch"], case["steps"], case["checkpoint"], device)
    seconds = time.perf_counter() - start
    stop.set()
    thread.join()
    result = {
        "seconds": seconds,
        "peak_mb_above_baseline": peak["rss"] - baseline,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.startswith("cuda"):
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_in_subprocess(pipeline_path: str, case: dict, device: str) -> dict:
    code = (
        "import json,sys,torch; from mimic_diffusers.profiling import memory_probe; "
        f"print(json.dumps(memory_probe({pipeline_path!r}, {case!r}, {device!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_benchmark(
    pipeline_path: str,
    device: str = "cpu",
    batches=(1, 8, 64),
    steps: int = 100,
    repeats: int = 2,
    memory_steps=(10, 100),
    gradient_steps=(10, 50, 100),
    gradient_batch: int = 8,
    speedups: bool = False,
    memory_batch: int = 64,
) -> dict:
    result = {
        "machine": machine(),
        "device": device,
        "steps": steps,
        "memory_batch": memory_batch,
        "timing": {},
        "memory": {},
        "exact_gradient": {},
    }
    modes = list(MODES) + (list(SPEEDUPS) if speedups else [])
    for mode in modes:
        pipe = build(pipeline_path, mode.split("+")[0], device)
        pipe.set_progress_bar_config(disable=True)
        if mode in SPEEDUPS:
            SPEEDUPS[mode](pipe, device)
        for batch in batches:
            seconds = time_purification(pipe, batch, steps, repeats, device)
            result["timing"][f"{mode}/b{batch}"] = {"seconds": seconds, "images_per_s": batch / seconds}
    for batch in batches:
        floor = result["timing"][f"unguided/b{batch}"]["seconds"]
        for mode in modes:
            result["timing"][f"{mode}/b{batch}"]["ratio_to_unguided"] = (
                result["timing"][f"{mode}/b{batch}"]["seconds"] / floor
            )
    for T in memory_steps:
        result["memory"][f"mimic/T{T}"] = run_in_subprocess(
            pipeline_path, {"kind": "purify", "mode": "mimic", "batch": memory_batch, "steps": T}, device
        )
    for T in gradient_steps:
        for ckpt in (True, False):
            key = f"T{T}/{'checkpointed' if ckpt else 'plain'}"
            case = {"kind": "gradient", "mode": "mimic", "batch": gradient_batch, "steps": T, "checkpoint": ckpt}
            try:
                result["exact_gradient"][key] = run_in_subprocess(pipeline_path, case, device)
            except subprocess.CalledProcessError as error:
                result["exact_gradient"][key] = {"error": (error.stderr or "")[-300:]}
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m.get('gpu') or m['processor']} ({m['cpu_count']} cores, torch {m['torch']}, {m['threads']} threads), "
        f"device {result['device']}, T={result['steps']} steps",
        "",
        "| mode | batch | seconds | images/s | ratio to unguided |",
        "|---|---|---|---|---|",
    ]
    for key, t in result["timing"].items():
        mode, batch = key.split("/")
        lines.append(
            f"| {mode} | {batch[1:]} | {t['seconds']:.2f} | {t['images_per_s']:.2f} | {t['ratio_to_unguided']:.2f} |"
        )
    if result["memory"]:
        lines += [
            "",
            f"| purification memory (batch {result.get('memory_batch', 64)}) | peak MB above baseline | seconds |",
            "|---|---|---|",
        ]
    for key, r in result["memory"].items():
        lines.append(f"| {key} | {r['peak_mb_above_baseline']:.0f} | {r['seconds']:.1f} |")
    if result["exact_gradient"]:
        lines += ["", "| one exact gradient through the chain | peak MB above baseline | seconds |", "|---|---|---|"]
    for key, r in result["exact_gradient"].items():
        if "error" in r:
            lines.append(f"| {key} | failed: {r['error'][-80:]!r} | |")
        else:
            lines.append(f"| {key} | {r['peak_mb_above_baseline']:.0f} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"
