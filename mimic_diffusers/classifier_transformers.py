"""A transformers image classifier as a pipeline component (`classifier/`), saved as safetensors + `config.json`.

`TransformersClassifier` wraps any `AutoModelForImageClassification` architecture. Its config holds the
transformers model config as a dict, so the folder rebuilds offline with no Hub access; the weights travel as
safetensors. Like `TimmClassifier` it takes (B, C, H, W) images in [0, 1] and normalises them itself.

`MimicDiffusionPipeline.from_pretrained` imports this module when a folder's model_index.json names it
(`safety.import_component_modules`): diffusers resolves the class from `sys.modules` and does not import
modules named by a folder.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (the loader looks it up here)

from .classifier import register_normalisation

logger = logging.getLogger(__name__)


def _build_model(model_config: dict):
    from transformers import CONFIG_MAPPING, AutoModelForImageClassification

    config = dict(model_config)
    model_type = config.pop("model_type", None)
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"model_config has model_type={model_type!r}, not a transformers model type")
    return AutoModelForImageClassification.from_config(CONFIG_MAPPING[model_type].from_dict(config))


def _processor_normalisation(processor, channels: int):
    """Mean/std that map images in [0, 1] to what `processor` feeds the model: it sees pixel values p = 255 x,
    rescales them (p * rescale_factor, minus 1 with `rescale_offset`), then normalises ((v - mean) / std)."""
    if processor is None:
        return [0.5] * channels, [0.5] * channels
    scale = 255.0 * float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 255.0
    offset = 1.0 if getattr(processor, "do_rescale", True) and getattr(processor, "rescale_offset", False) else 0.0
    if getattr(processor, "do_normalize", True) and getattr(processor, "image_mean", None) is not None:
        mean, std = list(processor.image_mean), list(processor.image_std)
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    mean = mean * channels if len(mean) == 1 else mean
    std = std * channels if len(std) == 1 else std
    return [(m + offset) / scale for m in mean], [s / scale for s in std]


def _processor_size(processor) -> Optional[Any]:
    if processor is None:
        return None
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = size or getattr(processor, "size", None)
    size = dataclasses.asdict(size) if dataclasses.is_dataclass(size) else size  # transformers' SizeDict
    return {k: v for k, v in size.items() if v is not None} if isinstance(size, dict) else size


class TransformersClassifier(ModelMixin, ConfigMixin):
    """A transformers image classifier taking (B, C, H, W) images in [0, 1] and returning logits.

    `mean` / `std` apply to images in [0, 1]: for the usual processors (rescale by 1/255, then normalise) they
    are the processor's `image_mean` / `image_std`; `from_transformers` folds other rescale factors in.
    `image_size` is the processor's size (informational, no resizing happens here).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        model_config: Optional[dict] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        image_size: Optional[Any] = None,
        source: Optional[str] = None,
    ):
        super().__init__()
        if not model_config:
            raise ValueError("model_config (a transformers model config as a dict) is required")
        self.model = _build_model(model_config)
        register_normalisation(self, mean, std, int(model_config.get("num_channels", 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixel_values = ((images - self.input_mean) / self.input_std).to(self.model.dtype)
        return self.model(pixel_values=pixel_values).logits

    @classmethod
    def from_transformers(cls, model_id: str) -> "TransformersClassifier":
        """Import `AutoModelForImageClassification.from_pretrained(model_id)` (a Hub id or a local folder;
        safetensors weights only, no remote code), in float32, with its `AutoImageProcessor`'s normalisation.
        Without a processor config the normalisation falls back to mean 0.5 / std 0.5 per channel (a warning
        is logged)."""
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"model_id must be a Hub id or a folder, got {model_id!r}")
        try:
            model = AutoModelForImageClassification.from_pretrained(
                model_id, use_safetensors=True, trust_remote_code=False, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError, TypeError) as e:  # TypeError: e.g. timm_wrapper on new timm folders
            raise ValueError(
                f"model_id={model_id!r} is not a transformers image classifier with safetensors "
                f"weights (timm checkpoints: TimmClassifier.from_timm): {e}"
            ) from e
        try:
            processor = AutoImageProcessor.from_pretrained(model_id, trust_remote_code=False)
        except (OSError, ValueError) as e:
            logger.warning("model_id=%r has no usable image processor (%s); using mean 0.5 / std 0.5", model_id, e)
            processor = None
        model_config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
        model_config["dtype"] = "float32"  # transformers 5 builds from_config in the config's dtype
        mean, std = _processor_normalisation(processor, int(model_config.get("num_channels", 3)))
        classifier = cls(
            model_config=model_config, mean=mean, std=std, image_size=_processor_size(processor), source=model_id
        )
        classifier.model.load_state_dict(model.state_dict())
        return classifier.eval()
