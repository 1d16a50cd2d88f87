"""Assemble a pipeline folder (Hub layout) from a UNet and a classifier: local folders or Hub ids."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional


def load_classifier(spec: str, in_chans: int, image_size: int, num_classes: int = 10, weights: Optional[str] = None,
                    model_kwargs: Optional[dict] = None, mean=None, std=None):
    """`spec` is a saved TimmClassifier folder, or a timm architecture name (weights from a safetensors
    file mapping the timm model's state dict, or random)."""
    from .classifier import TimmClassifier

    if os.path.isdir(spec):
        return TimmClassifier.from_pretrained(spec, use_safetensors=True)
    classifier = TimmClassifier(model_name=spec, num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                                mean=mean, std=std, model_kwargs=model_kwargs or {})
    if weights is not None:
        if not weights.endswith(".safetensors"):
            raise ValueError(f"classifier weights must be a .safetensors file, got {weights!r}")
        from safetensors.torch import load_file

        classifier.model.load_state_dict(load_file(weights))
    return classifier


def assemble_pipeline(unet: str, classifier, scheduler_options: Optional[dict] = None, unet_subfolder: Optional[str] = None):
    from diffusers import UNet2DModel

    from .pipeline_mimic_diffusion import MimicDiffusionPipeline
    from .scheduling_mimic import MimicDiffusionScheduler

    unet_model = UNet2DModel.from_pretrained(unet, subfolder=unet_subfolder, use_safetensors=True)
    if isinstance(classifier, str):
        classifier = load_classifier(classifier, unet_model.config.in_channels, unet_model.config.sample_size)
    return MimicDiffusionPipeline(unet=unet_model, scheduler=MimicDiffusionScheduler(**(scheduler_options or {})),
                                  classifier=classifier)


def save_pipeline_folder(pipe, output: str, results=None, training=None, dataset=None) -> None:
    """Write the folder next to `output` and rename it into place: never a half-written folder."""
    from .hub import write_model_card

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".build-")
    try:
        pipe.save_pretrained(tmp)
        with open(os.path.join(tmp, "results.json"), "w") as f:
            json.dump(results or [], f, indent=1)
        write_model_card(tmp, results=results or [], training=training, dataset=dataset, overwrite=True)
        if os.path.isdir(output):
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
