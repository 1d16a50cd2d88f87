"""The device a command runs on: `auto` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def check_device_name(name: str) -> str:
    """`name` if it spells a device this library runs on (whether or not this machine has it), else a ValueError.

    Args:
        name (`str`): `auto`, `cpu`, `cuda`, `cuda:N` or `mps`.
    Returns:
        `str`: `name`, unchanged.
    """
    if not isinstance(name, str):
        raise TypeError(f"device must be a string ({DEVICE_CHOICES}), got {type(name).__name__}")
    if name == "auto":
        return name
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {name!r}")
    return name


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for `name`, checked to exist on this machine.

    Args:
        name (`str`, defaults to `"auto"`): `auto` (CUDA if available, else MPS if available, else the CPU),
            `cpu`, `cuda`, `cuda:N` or `mps`.
    Returns:
        `torch.device`.

    Example:
        >>> pipe = pipe.to(resolve_device("auto"))
    """
    if check_device_name(name) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available on this machine; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device {name!r}: Apple MPS is not available on this machine; use auto or cpu")
    return device
