"""`purify IN... --output-dir DIR`: purify image files (PNG/JPEG) with a pipeline; with a classifier in the
pipeline, print each purified image's predicted label."""

import io
import os

from .options import add_device_argument, add_pipeline_argument, device_from


def add_arguments(p, name):
    from ..presets import PRESETS

    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--output-dir", required=True, help="folder for the purified images (NAME_purified.png each)")
    add_pipeline_argument(p)
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="purify with this scheduler preset (`MimicDiffusionScheduler.from_preset`) instead of the "
        "pipeline's own scheduler options",
    )
    add_device_argument(p)
    p.add_argument("--num-inference-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)


def run(args):
    import torch
    from PIL import Image, UnidentifiedImageError

    from ..defaults import load_pipeline
    from ..image_io import image_generators, postprocess
    from ..reports import atomic_write

    if args.num_inference_steps < 1:
        raise ValueError(f"--num-inference-steps must be >= 1, got {args.num_inference_steps}")
    images = []
    for path in args.images:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file {path!r} does not exist")
        try:
            with Image.open(path) as im:
                images.append(im.copy())
        except UnidentifiedImageError:
            raise ValueError(f"{path!r} is not an image file PIL can read") from None
    device = device_from(args)
    options = {"preset": args.preset} if args.preset else None
    pipe = load_pipeline(args.pipeline, options, device=device, progress_bar=True)
    # CPU generators: an image's noise, and so its result, is the same on every device
    gens = image_generators(len(images), args.seed * 100003)
    out = pipe(images, num_inference_steps=args.num_inference_steps, generator=gens, output_type="pt").images
    labels = None
    if pipe.classifier is not None:
        with torch.no_grad():
            labels = pipe.classify(out).argmax(1).tolist()
    os.makedirs(args.output_dir, exist_ok=True)
    for k, (path, image) in enumerate(zip(args.images, postprocess(out, "pil"))):
        target = os.path.join(args.output_dir, os.path.splitext(os.path.basename(path))[0] + "_purified.png")
        png = io.BytesIO()
        image.save(png, format="PNG")
        atomic_write(target, png.getvalue(), mode="wb")  # never a half-written output file
        print(target if labels is None else f"{target}\tpredicted label {labels[k]}")
