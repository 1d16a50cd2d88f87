"""The classifier component that travels with a pipeline folder (`classifier/`).

`TimmClassifier` wraps any `timm.create_model` architecture as a diffusers `ModelMixin`, so it is
saved and loaded with the pipeline as safetensors + `config.json`. It takes images in [0, 1] and
normalises them itself, so attacks and purification all work in the same [0, 1] space.
`TimmClassifier.from_timm` imports pretrained timm models (tags, `hf-hub:` ids, `local-dir:` folders).
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (the loader looks it up here)


def register_normalisation(module: torch.nn.Module, mean, std, channels: int) -> None:
    """Give `module` the (non-persistent) buffers `input_mean` / `input_std` mapping [0, 1] images to the
    network's input; 0.5 / 0.5 (i.e. [-1, 1]) when not given."""
    mean = [0.5] * channels if mean is None else list(mean)
    std = [0.5] * channels if std is None else list(std)
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values each, got {mean} and {std}")
    module.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
    module.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)


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
        source: Optional[str] = None,  # informational: the timm id `from_timm` imported the weights from
    ):
        super().__init__()
        import timm

        if model_name not in timm.list_models():
            raise ValueError(f"model_name={model_name!r} is not a timm architecture (see timm.list_models())")
        self.model = timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **(model_kwargs or {})
        )
        register_normalisation(self, mean, std, in_chans)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.input_mean) / self.input_std)

    @classmethod
    def from_timm(
        cls,
        model_id: str,
        pretrained: bool = True,
        num_classes: Optional[int] = None,
        in_chans: Optional[int] = None,
        **model_kwargs,
    ) -> "TimmClassifier":
        """Import a timm model with its weights: `model_id` is anything `timm.create_model` takes, e.g.
        `resnet50.a1_in1k`, `hf-hub:org/name` or `local-dir:/path` (a folder with timm's `config.json` and
        `model.safetensors`). Normalisation and input size come from the model's pretrained config; the result
        records the bare architecture and its build arguments, so it rebuilds offline from the saved folder.
        `num_classes` / `in_chans` override the checkpoint's (timm resets the head / adapts the first conv;
        mean/std are then averaged over channels)."""
        import timm
        from timm.models import get_model_args, get_model_input_config

        try:
            model = timm.create_model(
                model_id, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **model_kwargs
            )
        except (RuntimeError, ValueError, FileNotFoundError) as e:
            raise ValueError(f"model_id={model_id!r} could not be built by timm.create_model: {e}") from e
        cfg, current = model.pretrained_cfg, get_model_input_config(model)
        args = get_model_args(model)
        channels = args.pop("in_chans", current["input_size"][0])
        classes = args.pop("num_classes", getattr(model, "num_classes", cfg.get("num_classes")))
        if current["fixed_input_size"]:  # the rebuilt model would otherwise take its default tag's size
            args["img_size"] = list(current["input_size"][1:])
        try:
            args = json.loads(json.dumps(args))
        except (TypeError, ValueError) as e:
            raise ValueError(f"model_kwargs for model_id={model_id!r} are not JSON serialisable: {e}") from e
        mean, std = list(cfg.get("mean", [0.5] * channels)), list(cfg.get("std", [0.5] * channels))
        if len(mean) != channels:
            mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
        height, width = current["input_size"][1:]
        classifier = cls(
            model_name=cfg["architecture"],
            num_classes=classes,
            in_chans=channels,
            image_size=height if height == width else [height, width],
            mean=mean,
            std=std,
            model_kwargs=args,
            source=model_id,
        )
        classifier.model.load_state_dict(model.state_dict())
        return classifier.eval()


class ModuleClassifier(torch.nn.Module):
    """Adapter for any `nn.Module` taking [0, 1] images (e.g. a RobustBench model): used as is."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images)

    # diffusers' `pipe.device` / `pipe.dtype` read these of every component (a ModelMixin has them, a plain
    # nn.Module does not): the first parameter's, or CPU / float32 for a module without parameters.
    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        return next((p.dtype for p in self.parameters()), torch.float32)
