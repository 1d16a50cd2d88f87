"""Input validation and conversion between user images and the UNet's [-1, 1] tensors.

Accepted `image` inputs (all pixel values in [0, 1] for floats, [0, 255] for uint8):
- torch tensor (C, H, W) or (B, C, H, W), float or uint8;
- numpy array (H, W), (H, W, C) or (B, H, W, C) (channels last, as diffusers' numpy images), float or uint8;
- PIL image (converted to L or RGB to match the UNet's channels);
- a non-empty list of any of these.
The pipeline then maps [0, 1] -> [-1, 1] with x * 2 - 1 before the UNet and back with (x + 1) / 2.
Bad input raises ValueError/TypeError naming the argument and what was expected.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

RANGE_TOLERANCE = 1e-4  # float rounding of [0, 1] images; larger excursions are an error
PIL_MODES = {1: "L", 3: "RGB"}  # channel count -> PIL image mode


def pil_mode(channels: int, name: str = "channels") -> str:
    """The PIL mode ("L" or "RGB") for images with `channels` channels; ValueError for any other count."""
    mode = PIL_MODES.get(channels)
    if mode is None:
        raise ValueError(f"{name}: PIL images have 1 (L) or 3 (RGB) channels, not {channels}")
    return mode


def unet_image_shape(unet) -> Tuple[int, int, int]:
    """(channels, height, width) of the images `unet` was trained on, from its config."""
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return unet.config.in_channels, height, width


def image_generators(count: int, first_seed: int, device=None) -> List[torch.Generator]:
    """One generator per image (seeds first_seed, first_seed + 1, ...): an image's noise does not depend
    on the batch it is purified in."""
    return [torch.Generator(device=device or "cpu").manual_seed(first_seed + k) for k in range(count)]


def _from_numpy(array: np.ndarray, name: str) -> torch.Tensor:
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name}: numpy dtype must be float or uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim != 4:
        raise ValueError(f"{name}: numpy array must be (H, W), (H, W, C) or (B, H, W, C), got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(0, 3, 1, 2)


def _from_one(image, channels: int, name: str) -> torch.Tensor:
    try:
        import PIL.Image

        if isinstance(image, PIL.Image.Image):
            return _from_numpy(np.asarray(image.convert(pil_mode(channels, name))), name)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(image, np.ndarray):
        return _from_numpy(image, name)
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8:
            image = image.float() / 255.0
        elif not image.is_floating_point():
            raise TypeError(f"{name}: tensor dtype must be floating point or uint8, got {image.dtype}")
        if image.ndim == 3:
            image = image.unsqueeze(0)
        if image.ndim != 4:
            raise ValueError(f"{name}: tensor must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
        return image
    raise TypeError(
        f"{name}: expected a torch.Tensor, numpy array, PIL image or a list of them, got {type(image).__name__}"
    )


def to_image_tensor(
    image,
    channels: int,
    size_multiple: int = 1,
    sizes: Optional[Sequence[int]] = None,
    name: str = "image",
) -> torch.Tensor:
    """Validate `image` and return a float tensor (B, C, H, W) in [0, 1] (same device for tensors)."""
    if isinstance(image, (list, tuple)):
        if len(image) == 0:
            raise ValueError(f"{name}: empty list, expected at least one image")
        parts = [_from_one(im, channels, f"{name}[{i}]") for i, im in enumerate(image)]
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"{name}: all images in the list must have the same shape, got {sorted(shapes)}")
        x = torch.cat([p.to(parts[0].device) for p in parts])
    else:
        x = _from_one(image, channels, name)
    b, c, h, w = x.shape
    if b == 0:
        raise ValueError(f"{name}: empty batch, expected at least one image")
    if h == 0 or w == 0:
        raise ValueError(f"{name}: empty image of size {h}x{w}, expected a positive height and width")
    if c != channels:
        raise ValueError(f"{name}: expected {channels} channel(s) for this UNet, got {c} (shape {tuple(x.shape)})")
    if sizes is not None and (h, w) != tuple(sizes):
        raise ValueError(f"{name}: expected {sizes[0]}x{sizes[1]} images for this UNet, got {h}x{w}")
    if h % size_multiple or w % size_multiple:
        raise ValueError(f"{name}: height and width must be multiples of {size_multiple} for this UNet, got {h}x{w}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name}: float pixel values must be in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return x.float().clamp(0, 1) if x.dtype != torch.float32 or lo < 0 or hi > 1 else x


def read_image_file(
    path: str,
    channels: int = 1,
    size: Optional[int] = None,
    max_bytes: Optional[int] = None,
    min_side: int = 1,
    max_side: Optional[int] = None,
) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """An image file PIL reads as a (1, C, H, W) tensor in [0, 1], converted to L or RGB (`channels`) and
    resized to size x size when `size` is given, and its original (width, height). The file size and the
    sides are checked before the pixels are decoded; a bad file raises ValueError naming it."""
    from PIL import Image

    name, mode = os.path.basename(path), pil_mode(channels)
    nbytes = os.path.getsize(path)
    if max_bytes is not None and nbytes > max_bytes:
        raise ValueError(f"{name} is too large: {nbytes / 2**20:.1f} MB, the limit is {max_bytes / 2**20:.0f} MB")
    try:
        image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError:
        raise ValueError(f"{name} has the wrong size: too many pixels (at most {max_side} px per side)") from None
    except (OSError, SyntaxError, ValueError):  # what PIL raises for files it cannot identify
        raise ValueError(f"{name} is not an image (PNG, JPEG, BMP, ... expected)") from None
    with image:
        width, height = image.size
        if min(width, height) < min_side or (max_side is not None and max(width, height) > max_side):
            limits = f"{min_side} to {max_side}" if max_side is not None else f"at least {min_side}"
            resized = f" (it is then resized to {size}x{size})" if size else ""
            raise ValueError(
                f"{name} has the wrong size: {width}x{height} px; accepted are {limits} px per side{resized}"
            )
        try:
            image = image.convert(mode)
        except (OSError, SyntaxError, ValueError):
            raise ValueError(f"{name} is a damaged image file: it could not be decoded") from None
    if size and (width, height) != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return _from_numpy(np.asarray(image), name).contiguous(), (width, height)


def postprocess(images01: torch.Tensor, output_type: str = "pil"):
    """[0, 1] tensor -> 'pt' (the tensor), 'np' (B, H, W, C) float array, or 'pil' (list of images)."""
    from diffusers.image_processor import VaeImageProcessor

    if output_type == "pt":
        return images01
    array = VaeImageProcessor.pt_to_numpy(images01.detach().float().cpu())
    if output_type == "np":
        return array
    if output_type == "pil":
        return VaeImageProcessor.numpy_to_pil(array)
    raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
