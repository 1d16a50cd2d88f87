"""Where the shipped default pipeline lives and how a command finds it."""
from __future__ import annotations

import os

DEFAULT_PIPELINE_NAME = "mnist-mimic"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_pipeline_path() -> str:
    """$MIMIC_PIPELINE, else `pipelines/mnist-mimic` of this checkout (editable install)."""
    return os.environ.get("MIMIC_PIPELINE") or os.path.join(REPO_ROOT, "pipelines", DEFAULT_PIPELINE_NAME)


def resolve_pipeline(path_or_id: str | None) -> str:
    path = path_or_id or default_pipeline_path()
    if path_or_id is None and not os.path.isdir(path):
        raise FileNotFoundError(
            f"the shipped pipeline folder {path!r} was not found (it comes with a git checkout of "
            "mimic-diffusers); pass --pipeline FOLDER_OR_HUB_ID or set MIMIC_PIPELINE"
        )
    return path


def load_default_pipeline(path_or_id: str | None = None, device=None):
    from .pipeline_mimic_diffusion import MimicDiffusionPipeline

    pipe = MimicDiffusionPipeline.from_pretrained(resolve_pipeline(path_or_id))
    return pipe.to(device) if device is not None else pipe
