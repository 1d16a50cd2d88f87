"""Assemble a pipeline folder (Hub layout) from a UNet and a classifier: local folders or Hub ids."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional

# Where a classifier comes from: `<kind>:<id>` (a folder of any of the three components needs no prefix).
CLASSIFIER_SOURCES = {
    "timm": "timm:<name.tag>, timm:hf-hub:<org/name> or timm:local-dir:<folder> (or hf-hub:<org/name>): a timm "
    "model with its pretrained weights and normalisation",
    "transformers": "transformers:<Hub id or folder>: an AutoModelForImageClassification with its image "
    "processor's normalisation",
    "robustbench": "robustbench:<architecture> with weights=<RobustBench checkpoint (.pt, read with weights_only) "
    "or .safetensors>: a RobustBench CIFAR WideResNet",
}


def list_classifier_sources() -> list:
    return sorted(CLASSIFIER_SOURCES)


def load_classifier(
    spec: str,
    in_chans: int = 3,
    image_size: int = 32,
    num_classes: int = 10,
    weights: Optional[str] = None,
    model_kwargs: Optional[dict] = None,
    mean=None,
    std=None,
    options: Optional[dict] = None,
):
    """A classifier component (taking [0, 1] images) from `spec`: a saved component folder (TimmClassifier,
    TransformersClassifier or RobustBenchClassifier), `<source>:<id>` (`CLASSIFIER_SOURCES`), or a bare timm
    architecture name (weights from a safetensors file of the timm model's state dict, or random).
    `options`: extra config of a robustbench classifier (robustbench_name, dataset, threat_model)."""
    from . import RobustBenchClassifier, TimmClassifier, TransformersClassifier

    if os.path.isdir(spec):
        classes = {c.__name__: c for c in (TimmClassifier, TransformersClassifier, RobustBenchClassifier)}
        config = os.path.join(spec, "config.json")
        name = None
        if os.path.isfile(config):
            with open(config) as f:
                name = json.load(f).get("_class_name")
        if name not in classes:
            raise ValueError(
                f"classifier {spec!r}: a folder must hold a saved {' / '.join(classes)} (config.json names {name!r})"
            )
        return classes[name].from_pretrained(spec, use_safetensors=True).eval()
    source, _, rest = spec.partition(":")
    if source == "hf-hub":
        source, rest = "timm", spec
    if source == "timm":
        return TimmClassifier.from_timm(rest)
    if source == "transformers":
        return TransformersClassifier.from_transformers(rest)
    if source == "robustbench":
        if weights is None:
            raise ValueError(
                f"classifier {spec!r}: a robustbench classifier needs weights (a RobustBench checkpoint "
                "file, e.g. models/cifar10/Linf/Standard.pt from RobustBench's model zoo)"
            )
        if weights.endswith(".safetensors"):
            classifier = RobustBenchClassifier(architecture=rest, num_classes=num_classes, **(options or {}))
            classifier.model.load_state_dict(_safetensors(weights))
            return classifier.eval()
        return RobustBenchClassifier.from_checkpoint(
            weights, architecture=rest, num_classes=num_classes, **(options or {})
        )
    if ":" in spec:
        raise ValueError(f"classifier {spec!r}: unknown source {source!r}; choose from {list_classifier_sources()}")
    classifier = TimmClassifier(
        model_name=spec,
        num_classes=num_classes,
        in_chans=in_chans,
        image_size=image_size,
        mean=mean,
        std=std,
        model_kwargs=model_kwargs or {},
    )
    if weights is not None:
        classifier.model.load_state_dict(_safetensors(weights))
    return classifier


def _safetensors(path: str) -> dict:
    if not path.endswith(".safetensors"):
        raise ValueError(f"classifier weights must be a .safetensors file here, got {path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"classifier weights {path!r} do not exist")
    from safetensors.torch import load_file

    return load_file(path)


def assemble_pipeline(
    unet: str,
    classifier,
    scheduler_options: Optional[dict] = None,
    unet_subfolder: Optional[str] = None,
    **classifier_kwargs,
):
    """A MimicDiffusionPipeline from a UNet2DModel (a folder or a Hub id, safetensors only) and a classifier
    (a component, or a `load_classifier` spec with `classifier_kwargs`; its channels and size are the UNet's)."""
    from diffusers import UNet2DModel

    from .pipeline_mimic_diffusion import MimicDiffusionPipeline
    from .scheduling_mimic import MimicDiffusionScheduler

    try:
        unet_model = UNet2DModel.from_pretrained(unet, subfolder=unet_subfolder, use_safetensors=True)
    except OSError as error:  # diffusers' error for a folder or Hub repo without the files (a failed download too)
        raise ValueError(
            f"unet {unet!r}: no UNet2DModel loads from it (a folder, or Hub repo, with config.json and "
            f"diffusion_pytorch_model.safetensors{f' in {unet_subfolder!r}' if unet_subfolder else ''}): {error}"
        ) from None
    if isinstance(classifier, str):
        classifier = load_classifier(
            classifier, unet_model.config.in_channels, unet_model.config.sample_size, **classifier_kwargs
        )
    return MimicDiffusionPipeline(
        unet=unet_model, scheduler=MimicDiffusionScheduler(**(scheduler_options or {})), classifier=classifier
    )


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
