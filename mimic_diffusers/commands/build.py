"""`build-pipeline`: assemble the ready-to-load folder (Hub layout) from trained models, measure the
quality bars on the held-out split, and write results.json + the model card."""

import argparse
import json
import os
import sys
import warnings

DEFAULT_DATASET = "mnist5k"


def add_arguments(p, name):
    p.add_argument(
        "--unet",
        required=True,
        help="UNet2DModel: a folder (config.json + safetensors) or a Hub id (e.g. google/ddpm-cifar10-32)",
    )
    p.add_argument("--unet-subfolder", help="the UNet's subfolder in --unet (e.g. unet), if any")
    p.add_argument(
        "--classifier",
        required=True,
        help="a saved classifier component folder, or <source>:<id> with source timm (timm:<name.tag>, "
        "hf-hub:<org/name>), transformers (transformers:<id>) or robustbench "
        "(robustbench:<architecture> with --classifier-weights)",
    )
    p.add_argument(
        "--classifier-weights",
        help="robustbench: the RobustBench checkpoint (.pt, read with weights_only) or a .safetensors state dict",
    )
    p.add_argument(
        "--classifier-options",
        default="{}",
        help="robustbench: JSON with num_classes, robustbench_name, "
        "dataset, threat_model (recorded in the classifier's config)",
    )
    p.add_argument("--output-dir", help="pipeline folder to write (replaced atomically); required")
    p.add_argument("--output", dest="output_dir", help=argparse.SUPPRESS)  # the spelling before --output-dir
    p.add_argument("--scheduler-options", default="{}", help="JSON overrides of the MimicDiffusionScheduler options")
    p.add_argument("--measure", action="store_true", help="measure the quality bars on the test split")
    p.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="data set the models were trained on, measured on its test split: an embedded name "
        "(mnist5k), a local imagefolder or a Hub data set id",
    )
    p.add_argument("--num-samples", type=int, default=1000, help="images for each measurement")
    p.add_argument("--num-inference-steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--training", default="{}", help="JSON with training facts for the model card")
    p.add_argument(
        "--calibrate-on",
        metavar="DATASET",
        help="choose the guidance scale before saving, as `mimic-diffusers calibrate` does with its "
        "defaults, on min(--num-samples, 256) images of this data set's test split",
    )


def run(args):
    from ..assemble import assemble_pipeline, save_pipeline_folder
    from ..hub import looks_like_repo_id

    if not args.output_dir:
        raise ValueError("--output-dir is required: the pipeline folder to write")
    if not (os.path.isdir(args.unet) or looks_like_repo_id(args.unet)):
        raise FileNotFoundError(f"--unet {args.unet!r} is neither a folder nor a Hub id (org/name)")
    if args.num_samples < 1 or args.batch_size < 1 or args.num_inference_steps < 1:
        raise ValueError("--num-samples, --batch-size and --num-inference-steps must be >= 1")
    try:
        options, training = json.loads(args.scheduler_options), json.loads(args.training)
        classifier_options = json.loads(args.classifier_options)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--scheduler-options/--training/--classifier-options must be JSON objects: {error}"
        ) from None
    num_classes = classifier_options.pop("num_classes", 10)
    if args.calibrate_on and options.get("guidance_scale") is not None:
        raise ValueError("--calibrate-on chooses the guidance scale: leave guidance_scale out of --scheduler-options")
    pipe = assemble_pipeline(
        args.unet,
        args.classifier,
        options,
        unet_subfolder=args.unet_subfolder,
        weights=args.classifier_weights,
        num_classes=num_classes,
        options=classifier_options,
    )
    if args.calibrate_on:
        pipe = calibrated(pipe, args)
        if pipe is None:
            print(
                f"nothing written: no candidate scale keeps clean accuracy; {args.output_dir} is unchanged",
                file=sys.stderr,
            )
            return 1
    results = measure_quality(pipe, args) if args.measure else []
    save_pipeline_folder(pipe, args.output_dir, results=results, training=training, dataset=args.dataset)
    for r in results:
        print(f"{r['metric']}: {r['value']}  ({r.get('attack', '-')}, n={r.get('n')})")
    print(f"wrote {args.output_dir}")
    config = pipe.scheduler.config
    if not args.calibrate_on and options.get("guidance_scale") is None and (config.long_range or config.short_range):
        warn_uncalibrated(args)
    return 0


def calibrated(pipe, args):
    """`pipe` with the guidance scale `calibrate` chooses with its defaults, or None when no scale passes."""
    from ..calibration import DEFAULT_NUM_IMAGES, DEFAULT_SCALES, DEFAULT_TOLERANCE
    from .calibrate import calibrate_and_report

    pipe.set_progress_bar_config(disable=True)
    options = argparse.Namespace(
        num_images=min(args.num_samples, DEFAULT_NUM_IMAGES),
        scales=DEFAULT_SCALES,
        tolerance=DEFAULT_TOLERANCE,
        prefer="smallest",
        seed=0,
        num_inference_steps=args.num_inference_steps,
        batch_size=args.batch_size,
    )
    result = calibrate_and_report(pipe, args.calibrate_on, "test", options)
    return None if result.chosen is None else pipe.with_scheduler_options(guidance_scale=result.chosen)


def warn_uncalibrated(args):
    """A scale that suits one UNet does not carry over to another: say so, and how to calibrate."""
    command = f"mimic-diffusers calibrate --pipeline {args.output_dir} --dataset {args.dataset}"
    message = (
        f"the guidance scale of {args.output_dir} is uncalibrated (the step-size rule's default), so clean "
        f"accuracy through the purifier may fall far below the classifier's; calibrate it with `{command}` "
        "(or build with --calibrate-on DATASET)"
    )
    warnings.warn(message, UserWarning, stacklevel=2)
    print(f"warning: {message}")


def measure_quality(pipe, args):
    """Classifier clean accuracy, unguided sample confidence and label histogram, purified accuracy."""
    import torch

    from ..data import load_image_dataset, to_tensors
    from ..image_io import image_generators, unet_image_shape

    pipe.set_progress_bar_config(disable=True)
    shape, batch = unet_image_shape(pipe.unet), args.batch_size
    x, y = to_tensors(load_image_dataset(args.dataset, split="test"), shape[0], indices=range(args.num_samples))
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"--dataset {args.dataset!r} has {tuple(x.shape[1:])} images, the UNet takes {shape}")
    command = (
        "mimic-diffusers build-pipeline --measure "
        + f"--num-samples {args.num_samples} --num-inference-steps {args.num_inference_steps}"
    )
    command += f" --dataset {args.dataset}" if args.dataset != DEFAULT_DATASET else ""
    results = []
    with torch.no_grad():
        clean = torch.cat([pipe.classify(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    results.append(
        dict(
            metric="classifier clean accuracy",
            value=round(float((clean == y).float().mean()), 4),
            attack="none",
            n=len(x),
            command=command,
        )
    )
    unguided = pipe.with_scheduler_options(long_range=False, short_range=False)  # the same scheduler, no guidance
    conf, labels = [], []
    for i in range(0, len(x), batch):
        n = min(batch, len(x) - i)
        samples = unguided(
            torch.zeros(n, *shape),
            num_inference_steps=args.num_inference_steps,
            generator=image_generators(n, 10_000 + i),
            output_type="pt",
        ).images
        with torch.no_grad():
            p = pipe.classify(samples).softmax(1)
        conf.append(p.max(1).values)
        labels.append(p.argmax(1))
    conf, labels = torch.cat(conf), torch.cat(labels)
    results.append(
        dict(
            metric="unguided samples: mean max-softmax",
            value=round(float(conf.mean()), 4),
            attack="none",
            n=len(conf),
            command=command,
            histogram={str(d): int((labels == d).sum()) for d in range(p.shape[1])},
        )
    )
    purified = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        out = pipe(
            xb,
            num_inference_steps=args.num_inference_steps,
            generator=image_generators(len(xb), 20_000 + i),
            output_type="pt",
        ).images
        with torch.no_grad():
            purified.append(pipe.classify(out).argmax(1))
    purified = torch.cat(purified)
    results.append(
        dict(
            metric="purified standard accuracy (clean test images -> MimicDiffusion -> classifier)",
            value=round(float((purified == y).float().mean()), 4),
            attack="none",
            n=len(x),
            command=command,
        )
    )
    return results
