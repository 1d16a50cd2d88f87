"""`bench`: speed (ratios in one run) and peak memory of purification and of one exact gradient."""

import json
import os

from .options import add_device_argument, device_from


def add_arguments(p, name):
    p.add_argument("--pipeline", help="pipeline folder, Hub id or shipped name (default: the shipped mnist-mimic)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--gradient-steps", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--gradient-batch", type=int, default=8)
    p.add_argument("--memory-steps", type=int, nargs="*", default=[10, 100], help="step counts of the memory cases")
    p.add_argument("--memory-batch", type=int, default=64)
    p.add_argument("--output-dir", default="benchmarks/results")
    p.add_argument("--speedups", action="store_true", help="also time channels_last, torch.compile and autocast")
    p.add_argument("--skip-memory", action="store_true", help="timing only (no memory or exact-gradient cases)")
    add_device_argument(p)


def run(args):
    from ..defaults import resolve_pipeline
    from ..profiling import markdown, run_benchmark
    from ..reports import atomic_write

    if (
        min(args.batch_sizes) < 1
        or args.steps < 1
        or args.repeats < 1
        or min(args.memory_batch, args.gradient_batch) < 1
    ):
        raise ValueError("--batch-sizes, --steps, --repeats, --memory-batch and --gradient-batch must be >= 1")
    device = device_from(args)
    cases = (
        dict(memory_steps=(), gradient_steps=())
        if args.skip_memory
        else dict(memory_steps=tuple(args.memory_steps), gradient_steps=tuple(args.gradient_steps))
    )
    result = run_benchmark(
        resolve_pipeline(args.pipeline),
        str(device),  # 'cpu', 'cuda', 'cuda:1' or 'mps'
        tuple(args.batch_sizes),
        args.steps,
        args.repeats,
        gradient_batch=args.gradient_batch,
        speedups=args.speedups,
        memory_batch=args.memory_batch,
        **cases,
    )
    os.makedirs(args.output_dir, exist_ok=True)
    tag = device.type + ("-speedups" if args.speedups else "")
    atomic_write(os.path.join(args.output_dir, f"bench-{tag}.json"), json.dumps(result, indent=1))
    table = markdown(result)
    atomic_write(os.path.join(args.output_dir, f"bench-{tag}.md"), table)
    print(table)
