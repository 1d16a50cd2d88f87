"""The classifier component that travels with a pipeline folder (`classifier/`).

`TimmClassifier` wraps any `timm.create_model` architecture as a diffusers `ModelMixin`, so it is
saved and loaded with the pipeline as safetensors + `config.json`. It takes images in [0, 1] and
normalises them itself, so attacks and purification all work in the same [0, 1] space.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (the loader looks it up here)


class TimmClassifier(ModelMixin, ConfigMixin):
    """A timm image classifier taking (B, C, H, W) images in [0, 1] and returning logits."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        model_name: str = "resnet10t",
        num_classes: int = 10,
        in_chans: int = 1,
        image_size: int = 28,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        model_kwargs: Optional[dict] = None,
    ):
        super().__init__()
        import timm

        if model_name not in timm.list_models():
            raise ValueError(f"model_name={model_name!r} is not a timm architecture (see timm.list_models())")
        self.model = timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **(model_kwargs or {})
        )
        mean = [0.5] * in_chans if mean is None else list(mean)
        std = [0.5] * in_chans if std is None else list(std)
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f"mean and std need {in_chans} values each, got {mean} and {std}")
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.input_mean) / self.input_std)


class ModuleClassifier(torch.nn.Module):
    """Adapter for any `nn.Module` taking [0, 1] images (e.g. a RobustBench model): used as is."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images)
