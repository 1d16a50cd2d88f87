"""`purify IN... --output-dir DIR`: purify image files (PNG/JPEG) with a pipeline folder."""
import io
import os


def add_arguments(p, name):
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--pipeline", help="pipeline folder or Hub id (default: the shipped pipelines/mnist-mimic)")
    p.add_argument("--num-inference-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from PIL import Image, UnidentifiedImageError

    from ..defaults import load_default_pipeline
    from ..image_io import image_generators
    from ..reports import atomic_write

    images = []
    for path in args.images:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file {path!r} does not exist")
        try:
            with Image.open(path) as im:
                images.append(im.copy())
        except UnidentifiedImageError:
            raise ValueError(f"{path!r} is not an image file PIL can read") from None
    pipe = load_default_pipeline(args.pipeline)
    gens = image_generators(len(images), args.seed * 100003)
    out = pipe(images, num_inference_steps=args.num_inference_steps, generator=gens, output_type="pil").images
    os.makedirs(args.output_dir, exist_ok=True)
    for path, image in zip(args.images, out):
        target = os.path.join(args.output_dir, os.path.splitext(os.path.basename(path))[0] + "_purified.png")
        png = io.BytesIO()
        image.save(png, format="PNG")
        atomic_write(target, png.getvalue(), mode="wb")  # never a half-written output file
        print(target)
