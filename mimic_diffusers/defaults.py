"""Where the shipped default pipeline lives, and the one loader every command, script and the Space use."""
from __future__ import annotations

import os
from typing import Optional

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


def load_pipeline(path_or_id: Optional[str] = None, scheduler_options: Optional[dict] = None, device=None,
                  progress_bar: bool = False):
    """A `MimicDiffusionPipeline` from a folder or Hub id (default: the shipped one), optionally with other
    scheduler options (`{"preset": name, **overrides}`, see `MimicDiffusionPipeline.with_scheduler_options`).

    Example:
        >>> pipe = load_pipeline(scheduler_options={"preset": "diffpure"})
    """
    from .pipeline_mimic_diffusion import MimicDiffusionPipeline

    pipe = MimicDiffusionPipeline.from_pretrained(resolve_pipeline(path_or_id))
    if scheduler_options:
        pipe = pipe.with_scheduler_options(**scheduler_options)
    pipe.set_progress_bar_config(disable=not progress_bar)
    return pipe.to(device) if device is not None else pipe


def load_default_pipeline(path_or_id: str | None = None, device=None):
    """The shipped pipeline (or `path_or_id`) with its own scheduler and a progress bar."""
    return load_pipeline(path_or_id, device=device, progress_bar=True)
