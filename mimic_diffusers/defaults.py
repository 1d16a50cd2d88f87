"""Where the shipped default pipeline lives, and the one loader every command, script and the Space use.

The MNIST default ships inside the package (`mimic_diffusers/pipelines/mnist-mimic/`, package data), so a
wheel install finds it offline. Anywhere a pipeline folder or Hub id is taken (`--pipeline`, a config's
`pipeline:`, `load_pipeline`), the shipped name `mnist-mimic` also works, from any working directory.
"""

from __future__ import annotations

import os
from typing import Optional

DEFAULT_PIPELINE_NAME = "mnist-mimic"
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipelines")
SHIPPED_PIPELINES = (DEFAULT_PIPELINE_NAME,)


def shipped_pipeline_path(name: str = DEFAULT_PIPELINE_NAME) -> str:
    """The folder of a pipeline shipped inside the package.

    Args:
        name (`str`, defaults to `"mnist-mimic"`): one of `SHIPPED_PIPELINES`.
    Returns:
        `str`: the absolute path of the folder (loadable with `MimicDiffusionPipeline.from_pretrained`).

    Example:
        >>> pipe = MimicDiffusionPipeline.from_pretrained(shipped_pipeline_path())
    """
    if name not in SHIPPED_PIPELINES:
        raise ValueError(f"name must be a shipped pipeline {list(SHIPPED_PIPELINES)}, got {name!r}")
    return os.path.join(SHIPPED_DIR, name)


def default_pipeline_path() -> str:
    """$MIMIC_PIPELINE (a folder, Hub id or shipped name), else the shipped `mnist-mimic`."""
    return resolve_pipeline(os.environ.get("MIMIC_PIPELINE") or DEFAULT_PIPELINE_NAME)


def resolve_pipeline(path_or_id: str | None) -> str:
    """What `from_pretrained` should load for `path_or_id`.

    Args:
        path_or_id (`str`, *optional*): a pipeline folder, a Hub repo id, or the name of a shipped pipeline
            (`mnist-mimic`). An existing local folder wins over a shipped name. None: `default_pipeline_path()`.
    Returns:
        `str`: a folder path or a Hub repo id.

    Example:
        >>> resolve_pipeline("mnist-mimic")  # '.../site-packages/mimic_diffusers/pipelines/mnist-mimic'
    """
    if path_or_id is None:
        return default_pipeline_path()
    if path_or_id in SHIPPED_PIPELINES and not os.path.isdir(path_or_id):
        path = shipped_pipeline_path(path_or_id)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"the shipped pipeline folder {path!r} is missing from this install of mimic-diffusers (it is "
                "package data of the wheel); reinstall the package, or pass --pipeline FOLDER_OR_HUB_ID or set "
                "MIMIC_PIPELINE"
            )
        return path
    return path_or_id


def is_shipped_pipeline(path: str) -> bool:
    """Whether `path` is a pipeline folder shipped inside the installed package, or a shipped name that resolves to
    one. Such a folder is package data: commands read it and never rewrite it.

    Args:
        path (`str`): a folder or a shipped pipeline's name (`mnist-mimic`).
    Returns:
        `bool`.

    Example:
        >>> is_shipped_pipeline("mnist-mimic"), is_shipped_pipeline("pipelines/cifar10-mimic")
        (True, False)
    """
    folder = shipped_pipeline_path(path) if path in SHIPPED_PIPELINES and not os.path.isdir(path) else path
    shipped = {os.path.realpath(shipped_pipeline_path(name)) for name in SHIPPED_PIPELINES}
    return os.path.realpath(folder) in shipped


def load_pipeline(
    path_or_id: Optional[str] = None, scheduler_options: Optional[dict] = None, device=None, progress_bar: bool = False
):
    """A `MimicDiffusionPipeline` from a folder, Hub id or shipped name (default: the shipped `mnist-mimic`),
    optionally with other scheduler options.

    Args:
        path_or_id (`str`, *optional*): see `resolve_pipeline`.
        scheduler_options (`dict`, *optional*): `{"preset": name, **overrides}`, see
            `MimicDiffusionPipeline.with_scheduler_options`.
        device (`str` or `torch.device`, *optional*): where to move the pipeline.
        progress_bar (`bool`, defaults to `False`): show the denoising loop's progress bar.
    Returns:
        `MimicDiffusionPipeline`.

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
