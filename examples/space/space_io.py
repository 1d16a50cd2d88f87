"""The Space's images in and out: checked uploads in; upscaled PIL images and the x0_hat strip out."""

from __future__ import annotations

from typing import Optional, Tuple

import gradio as gr
import numpy as np
import torch
from PIL import Image

from mimic_diffusers.image_io import postprocess, read_image_file

DIGIT, UPLOAD = "MNIST test digit", "uploaded image"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 8, 2048
UPSCALE = 6  # 28 px digits are unreadable in a browser at 1:1
MAX_FRAMES = 10


def load_upload(path: Optional[str], size: int = 28, channels: int = 1) -> Tuple[torch.Tensor, str]:
    """Check an uploaded file and return a (1, C, size, size) image in [0, 1] and a note on conversions.

    Accepted: any image PIL reads, up to 2 MB and MIN_SIDE..MAX_SIDE px per side; it is converted to
    grayscale (or RGB) and resized to size x size.
    """
    if not path:
        raise gr.Error(f"no image uploaded: upload one, or choose '{DIGIT}'")
    try:
        x, (width, height) = read_image_file(path, channels, size, MAX_UPLOAD_BYTES, MIN_SIDE, MAX_SIDE)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    mode = "grayscale" if channels == 1 else "RGB"
    if (width, height) == (size, size):
        return x, f"{width}x{height} {mode} upload"
    return x, f"upload resized from {width}x{height} to {size}x{size} {mode}"


def to_pil(x: torch.Tensor, scale: int = UPSCALE) -> Image.Image:
    return postprocess(torch.nn.functional.interpolate(x[:1].float().cpu(), scale_factor=scale, mode="nearest"))[0]


def trajectory_strip(trajectory, max_frames: int = MAX_FRAMES) -> Optional[Image.Image]:
    """x0_hat frames (evenly chosen, at most `max_frames`) side by side, 2 px white gaps."""
    if not trajectory:
        return None
    keep = np.unique(np.linspace(0, len(trajectory) - 1, min(max_frames, len(trajectory))).round().astype(int))
    frames = [trajectory[i][1][:1] for i in keep]
    gap = torch.ones_like(frames[0][..., :2])
    return to_pil(torch.cat([f if j == 0 else torch.cat([gap, f], -1) for j, f in enumerate(frames)], -1))
