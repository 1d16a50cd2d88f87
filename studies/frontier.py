"""The robustness-accuracy frontier on the MNIST default: MimicDiffusion at several guidance scales (and
windows, and SR directions) against DiffPure at several t*, every point evaluated with the threats,
attacks, images and votes of one evaluation config. Resumable: each point is an `evaluate` run with
its own store under --output-dir; run again and only the missing units run.

    python -m studies.frontier --points mimic-gs4 mimic-gs64 --eps 0.2

Data parallel like `evaluate` (`python -m torch.distributed.run --nproc_per_node 2 -m studies.frontier ...`).
The table, paired answers and plot come from the stores: `python -m studies.pages`. A screen,
`--attacks feedback-cut-pgd-eot`, runs only the cascade's first attack: its robust accuracy bounds the
point's worst case from above, which can settle that a point cannot beat DiffPure before the rest runs. `--step 32` grows the points
together, 32 images at a time, so that a long paired run can stop anywhere with its points on the same images.
"""

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field

from mimic_diffusers.evaluation import EvalConfig, run_evaluation

GUIDANCE_SCALES = (4, 8, 16, 32, 64)
DIFFPURE_STARTS = (0.1, 0.2, 0.3, 0.4)
# the authors' code's window (the `mimic-official` preset), wider than the paper's 50%..20% T
AUTHORS_WINDOW = dict(guidance_window_start=0.79, guidance_window_end=0.11)


@dataclass(frozen=True)
class Point:
    """One setting of the study: its method, the value of the method's knob (guidance scale; t*), the variant
    ("" for the method's own recipe, "wide" for the authors' window, "up" for H as an upsampling) and the
    scheduler options that make it."""

    method: str
    knob: float
    variant: str = ""
    options: dict = field(default_factory=dict)


# every option the variant needs, never the shipped pipeline's: its default may change, a point may not
VARIANT_OPTIONS = {
    "": dict(sr_direction="down"),
    "wide": dict(AUTHORS_WINDOW, sr_direction="down"),
    "up": dict(sr_direction="up"),
}
POINTS = {}
for scale in GUIDANCE_SCALES:
    for variant, extra in VARIANT_OPTIONS.items():
        POINTS[f"mimic-gs{scale}{'-' + variant if variant else ''}"] = Point(
            "mimic", float(scale), variant, dict(guidance_scale=float(scale), **extra)
        )
for start in DIFFPURE_STARTS:
    POINTS[f"diffpure-t{start:g}"] = Point("diffpure", start, "", dict(preset="diffpure", purification_start=start))


def point_config(base: EvalConfig, point: str, output_dir: str) -> EvalConfig:
    """The evaluation of one frontier point: the base config with the point's scheduler options."""
    if point not in POINTS:
        raise ValueError(f"unknown point {point!r}; choose from {sorted(POINTS)}")
    return dataclasses.replace(
        base,
        output_dir=os.path.join(output_dir, point),
        report_dir=None,
        scheduler_options=dict(POINTS[point].options),
    ).validate()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/mnist-frontier.yaml")
    p.add_argument("--points", nargs="+", required=True, help=f"frontier points, from: {' '.join(POINTS)}")
    p.add_argument("--eps", type=float, nargs="+", help="run only the config's threats with these eps values")
    p.add_argument(
        "--attacks",
        nargs="+",
        metavar="LABEL",
        help="run only the config's first attacks (a screen: "
        "the cascade's first stages; a later run without it adds the rest)",
    )
    p.add_argument("--num-samples", type=int, help="overrides the config's num_samples")
    p.add_argument(
        "--step",
        type=int,
        metavar="N",
        help="grow every point's store by N images at a time, point after point, so that a run stopped at any "
        "time leaves the points paired on the same images (a multiple of the config's batch_size)",
    )
    p.add_argument(
        "--batches-per-pass",
        type=int,
        default=1,
        metavar="N",
        help="run N of a store's batches together in one forward pass (a speed choice on a GPU; results do not change)",
    )
    p.add_argument("--output-dir", help="the folder of the point stores (default: the config's output_dir)")
    p.add_argument(
        "--note", help="kept with the run's line in each store's runs.jsonl (what makes its wall time not comparable)"
    )
    args = p.parse_args(argv)
    unknown = [q for q in args.points if q not in POINTS]
    if unknown:
        p.error(f"--points: unknown {unknown}; choose from {sorted(POINTS)}")
    base = EvalConfig.from_file(args.config, num_samples=args.num_samples)
    if args.step is not None and (args.step <= 0 or args.step % base.batch_size):
        p.error(
            f"--step: expected a positive multiple of the config's batch_size ({base.batch_size}), got {args.step}"
        )
    if args.batches_per_pass < 1:
        p.error(f"--batches-per-pass: expected an integer >= 1, got {args.batches_per_pass}")
    sizes = range(args.step, base.num_samples, args.step) if args.step else []
    for num_samples in [*sizes, base.num_samples]:
        for point in args.points:
            run_evaluation(
                point_config(
                    dataclasses.replace(base, num_samples=num_samples), point, args.output_dir or base.output_dir
                ),
                run_eps=args.eps,
                run_attacks=args.attacks,
                note=args.note,
                batches_per_pass=args.batches_per_pass,
            )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as stop:  # Ctrl-C, `kill` or `timeout`: the attack in flight is lost, nothing else
        print("interrupted: every finished attack is stored; the same command resumes", file=sys.stderr)
        sys.exit(getattr(stop, "exit_code", 130))
