"""Named UNet2DModel architectures of public diffusers checkpoints, for random-weight tests and cost
benchmarks at the real model size without downloading the weights (`create_unet(name)`)."""

from __future__ import annotations

from typing import Dict, List

_DDPM = dict(
    act_fn="silu",
    attention_head_dim=None,
    center_input_sample=False,
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-6,
    norm_num_groups=32,
    time_embedding_type="positional",
    in_channels=3,
    out_channels=3,
)

UNET_CONFIGS: Dict[str, dict] = {
    # google/ddpm-cifar10-32 (Ho et al. 2020), 35.7M parameters: the UNet of the CIFAR configs
    "google/ddpm-cifar10-32": dict(
        _DDPM,
        sample_size=32,
        block_out_channels=(128, 256, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    ),
    # google/ddpm-ema-church-256 (and -bedroom-, -cat-256), 113.7M parameters: a 256x256 UNet2DModel for
    # ImageNet-size cost estimates
    "google/ddpm-ema-church-256": dict(
        _DDPM,
        sample_size=256,
        block_out_channels=(128, 128, 256, 256, 512, 512),
        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
    ),
}


def list_unet_configs() -> List[str]:
    return sorted(UNET_CONFIGS)


def create_unet(name: str, seed: int = 0):
    """A randomly initialised `UNet2DModel` with the architecture of the checkpoint `name`."""
    import torch
    from diffusers import UNet2DModel

    if name not in UNET_CONFIGS:
        raise ValueError(f"unknown UNet configuration {name!r}; choose from {list_unet_configs()}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(**UNET_CONFIGS[name])
