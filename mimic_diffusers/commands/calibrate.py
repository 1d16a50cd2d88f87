"""`calibrate`: choose a pipeline folder's guidance scale on clean images and write it into its scheduler config
(or into a copy of the folder, with --output-dir: the only way for the pipeline shipped inside the package).

A scale passes when clean accuracy through the purifier is at most --tolerance points below the classifier's own
on the same images; among the passing scales --prefer picks the smallest (default) or the largest
(`mimic_diffusers.calibration`). Nothing is written when no scale passes (exit status 1) or with --dry-run.
"""

import argparse
import json
import os
import sys

from ..calibration import DEFAULT_NUM_IMAGES, DEFAULT_SCALES, DEFAULT_TOLERANCE, SELECTION_RULES
from .options import add_device_argument, device_from


def parse_scales(text: str) -> tuple:
    """'1,2,4' -> (1.0, 2.0, 4.0); argparse reports a bad list as an error of --scales."""
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,4,16, got {text!r}") from None
    bad = [s for s in scales if not (s > 0 and s != float("inf"))]
    if bad:
        raise argparse.ArgumentTypeError(f"every scale must be a finite number > 0, got {text!r}")
    if len(set(scales)) != len(scales):
        raise argparse.ArgumentTypeError(f"scales must be distinct, got {text!r}")
    return scales


def add_arguments(p, name):
    p.add_argument(
        "--pipeline",
        required=True,
        help="a local pipeline folder with a classifier, or a shipped name (mnist-mimic); the chosen scale is "
        "written into its scheduler/scheduler_config.json (the shipped pipeline only into a copy: --output-dir)",
    )
    p.add_argument(
        "--output-dir",
        help="write the chosen scale into a copy of --pipeline in this new folder and leave --pipeline unchanged",
    )
    add_calibration_arguments(p)
    p.add_argument(
        "--dataset",
        default="mnist5k",
        help="clean images: an embedded name (mnist5k), a local "
        "imagefolder or a Hub data set id, as in evaluation configs",
    )
    p.add_argument("--split", default="test", help="the data set's split")
    p.add_argument(
        "--skip",
        type=int,
        default=0,
        help="images to skip at the start of the split (evaluations use the "
        "first images of a split: skip them to calibrate on other images)",
    )
    p.add_argument(
        "--num-inference-steps", type=int, default=100, help="purification steps (calibrate at the steps you deploy)"
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per purification call (results do not depend on it)"
    )
    p.add_argument("--dry-run", action="store_true", help="measure and report, write nothing")
    add_device_argument(p)


def add_calibration_arguments(p):
    """The options `calibrate` shares with `build-pipeline --calibrate-on`."""
    p.add_argument("--num-images", type=int, default=DEFAULT_NUM_IMAGES, help="clean images to measure on")
    p.add_argument(
        "--scales",
        type=parse_scales,
        default=DEFAULT_SCALES,
        metavar="S1,S2,...",
        help=f"candidate guidance scales (default: {','.join(f'{s:g}' for s in DEFAULT_SCALES)})",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="points of clean accuracy a scale may lose against the classifier alone and still pass",
    )
    p.add_argument(
        "--prefer",
        choices=sorted(SELECTION_RULES),
        default="smallest",
        help="which passing scale to choose: " + "; ".join(f"{k}: {v}" for k, v in SELECTION_RULES.items()),
    )
    p.add_argument("--seed", type=int, default=0, help="root of the per-image generators")


def check_calibration_flags(args) -> None:
    if not 0 <= args.tolerance <= 100:
        raise ValueError(f"--tolerance must be points of accuracy in [0, 100], got {args.tolerance:g}")
    for flag, value in (
        ("--num-images", args.num_images),
        ("--num-inference-steps", args.num_inference_steps),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise ValueError(f"{flag} must be an integer >= 1, got {value}")


def calibrate_and_report(pipe, dataset: str, split: str, args, skip: int = 0):
    """Load the images, calibrate `pipe` with the flags in `args`, print the table and the choice; the result."""
    from ..calibration import calibrate_guidance_scale, calibration_images

    x, y = calibration_images(pipe, dataset, split, args.num_images, skip=skip)
    print(
        f"calibrating the guidance scale on {len(x)} clean images of {dataset} (split {split!r}, images "
        f"{skip}..{skip + len(x) - 1}), {args.num_inference_steps} inference steps, seed {args.seed}",
        flush=True,
    )

    def progress(row):
        print(
            f"  guidance_scale {row.scale:g}: {row.correct / len(x):.1%} clean accuracy through the purifier",
            flush=True,
        )

    result = calibrate_guidance_scale(
        pipe,
        x,
        y,
        scales=args.scales,
        tolerance=args.tolerance,
        prefer=args.prefer,
        num_inference_steps=args.num_inference_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        on_scale=progress,
    )
    print(result.table())
    print(result.explanation())
    return result


def run(args):
    from ..defaults import SHIPPED_PIPELINES, is_shipped_pipeline, resolve_pipeline

    folder = resolve_pipeline(args.pipeline) if args.pipeline in SHIPPED_PIPELINES else args.pipeline
    if not os.path.isdir(folder):
        raise NotADirectoryError(
            f"--pipeline {args.pipeline!r} is neither a folder nor a shipped pipeline's name "
            f"({', '.join(SHIPPED_PIPELINES)}): calibrate measures a local pipeline folder and writes the chosen "
            "scale into it"
        )
    if not os.path.isfile(os.path.join(folder, "scheduler", "scheduler_config.json")):
        raise FileNotFoundError(
            f"--pipeline {args.pipeline!r} has no scheduler/scheduler_config.json: is it a pipeline folder?"
        )
    check_calibration_flags(args)
    if args.skip < 0:
        raise ValueError(f"--skip must be an integer >= 0, got {args.skip}")
    check_output(args, folder, is_shipped_pipeline(folder))
    from ..calibration import write_guidance_scale  # the arguments are checked: now load torch and diffusers
    from ..pipeline_mimic_diffusion import MimicDiffusionPipeline

    device = device_from(args)
    pipe = MimicDiffusionPipeline.from_pretrained(folder)
    if pipe.classifier is None:
        raise ValueError(
            f"--pipeline {args.pipeline!r} has no classifier: calibration compares its clean accuracy "
            "with and without purification"
        )
    pipe.set_progress_bar_config(disable=True)
    # the noise comes from CPU generators: the same choice on every device, up to floating-point rounding
    pipe = pipe.to(device)
    result = calibrate_and_report(pipe, args.dataset, args.split, args, skip=args.skip)
    if result.chosen is None:
        print(
            "nothing written: no candidate scale keeps clean accuracy; try larger --scales or more "
            "--num-inference-steps",
            file=sys.stderr,
        )
        return 1
    if args.dry_run:
        print(f"--dry-run: {folder} is unchanged" + (f"; {args.output_dir} is not written" if args.output_dir else ""))
        return 0
    previous = write_guidance_scale(folder, result.chosen, output_dir=args.output_dir)
    target = args.output_dir or folder
    path = os.path.join(target, "scheduler", "scheduler_config.json")
    was = "the step-size rule's default" if previous is None else f"{previous:g}"
    copied = f" (a copy of {folder}, which is unchanged)" if args.output_dir else ""
    print(f"wrote guidance_scale={result.chosen:g} into {path}{copied} (was {was})")
    results_path = os.path.join(target, "results.json")
    if os.path.isfile(results_path) and measured(results_path):
        print(
            f"note: the figures in {results_path} and the model card were measured at the previous scale; rebuild "
            f"with build-pipeline --scheduler-options '{{\"guidance_scale\": {result.chosen:g}}}' --measure to "
            "refresh them"
        )
    return 0


def check_output(args, folder: str, shipped: bool) -> None:
    """Refuse, before measuring for minutes, a write calibrate would refuse after: the shipped pipeline in place
    (package data), or an --output-dir that exists already."""
    if args.dry_run:
        return
    if args.output_dir is None and shipped:
        raise ValueError(
            f"--pipeline {args.pipeline!r} is the pipeline shipped inside the installed package ({folder}), which "
            "calibrate never rewrites: pass --output-dir FOLDER to write a calibrated copy, or --dry-run to measure "
            "only"
        )
    if args.output_dir is not None and os.path.exists(args.output_dir):
        raise ValueError(
            f"--output-dir {args.output_dir!r} already exists: calibrate writes its copy into a new folder (to "
            "calibrate that folder in place, pass it as --pipeline)"
        )


def measured(results_path: str) -> bool:
    """Whether build-pipeline --measure wrote figures into the folder (they were taken at the old scale)."""
    with open(results_path) as f:
        return bool(json.load(f))
