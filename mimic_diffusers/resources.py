"""A memory guard: estimate what a purification needs before allocating, and refuse a batch that
cannot fit with a clear message instead of an out-of-memory crash deep inside torch."""

from __future__ import annotations

import torch

SAFETY_FACTOR = 1.5  # the estimate counts feature maps only; allocator overheads come on top


def unet_activation_bytes_per_sample(unet, height: int, width: int) -> int:
    """Rough bytes of feature maps one sample keeps for backward through the UNet (4 bytes/value)."""
    cfg = unet.config
    per_level = cfg.layers_per_block * 2 + 2  # resnets of the down and up paths (+ skip concatenations)
    values = 0
    for level, channels in enumerate(cfg.block_out_channels):
        values += channels * (height >> level) * (width >> level) * per_level * 8  # ~8 tensors kept per resnet
    return int(values * torch.finfo(unet.dtype).bits // 8)


def available_bytes(device) -> int:
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(unet, batch: int, height: int, width: int, device, graph_steps: int = 1, what: str = "image") -> int:
    """Raise ValueError when the estimated peak exceeds the free memory of `device`.

    `graph_steps` is how many steps keep their UNet activations at once: 1 for purification (no graph
    survives a step) and for checkpointed attacks, the number of input-dependent steps otherwise."""
    need = int(unet_activation_bytes_per_sample(unet, height, width) * batch * max(1, graph_steps) * SAFETY_FACTOR)
    free = available_bytes(device)
    if need > free:
        raise ValueError(
            f"{what}: a batch of {batch} needs about {need / 2**30:.1f} GiB on {device} "
            f"({graph_steps} step(s) of UNet activations kept) but only {free / 2**30:.1f} GiB is free; "
            "use a smaller batch" + (" or checkpoint_steps=True" if graph_steps > 1 else "")
        )
    return need
