"""Safe loading: a pipeline folder may hold safetensors weights and JSON/Markdown only.

Pickle-based checkpoints (`.bin`, `.pt`, `.pth`, `.ckpt`, `.pkl`) can execute code when loaded, so a
folder that contains one is refused before diffusers looks at it; no Python file in it is imported.
"""

from __future__ import annotations

import os

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
