"""Safe loading: a pipeline folder may hold safetensors weights and JSON/Markdown only.

Pickle-based checkpoints (`.bin`, `.pt`, `.pth`, `.ckpt`, `.pkl`) can execute code when loaded, so a
folder that contains one is refused before diffusers looks at it; no Python file in it is imported.
"""

from __future__ import annotations

import importlib
import json
import os

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# The modules of this package that define loadable components (a folder's model_index.json names them).
COMPONENT_MODULES = (
    "mimic_diffusers.classifier",
    "mimic_diffusers.classifier_robustbench",
    "mimic_diffusers.classifier_transformers",
    "mimic_diffusers.scheduling_mimic",
)


def check_pipeline_folder(path: str) -> None:
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise ValueError(f"{path!r} is not a pipeline folder: model_index.json is missing")
    for root, _, files in os.walk(path):
        for name in files:
            if name.endswith(PICKLE_SUFFIXES):
                bad = os.path.relpath(os.path.join(root, name), path)
                raise ValueError(
                    f"refusing to load {path!r}: it contains the pickle file {bad!r}, which could run code "
                    "when loaded. Convert it to safetensors (safetensors.torch.save_file) and remove it."
                )


def import_component_modules(path: str) -> None:
    """Import this package's modules that a pipeline folder's model_index.json names: diffusers looks a
    component's class up in `sys.modules` and never imports a module itself. Only `COMPONENT_MODULES` are
    imported, never a module a folder names from elsewhere (diffusers then refuses it with its own error)."""
    try:
        with open(os.path.join(path, "model_index.json")) as f:
            index = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path!r} is not a pipeline folder: its model_index.json is not valid JSON ({error})"
        ) from None
    if not isinstance(index, dict):
        raise ValueError(f"{path!r} is not a pipeline folder: its model_index.json is not a JSON object")
    named = {entry[0] for entry in index.values() if isinstance(entry, list) and entry and isinstance(entry[0], str)}
    for module in sorted(named.intersection(COMPONENT_MODULES)):
        importlib.import_module(module)
