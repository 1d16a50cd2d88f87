"""mimic-diffusers: MimicDiffusion adversarial purification for the diffusers ecosystem.

The public names below are imported on first use (PEP 562), so `import mimic_diffusers` and the command
line's one-line errors do not wait for torch, diffusers and timm to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the module of this package that defines it
_EXPORTS = {
    "DiffPurePipeline": "pipeline_baselines",
    "GDMPPipeline": "pipeline_baselines",
    "MimicDiffusionPipeline": "pipeline_mimic_diffusion",
    "MimicDiffusionScheduler": "scheduling_mimic",
    "MimicSchedulerOutput": "scheduling_mimic",
    "ModuleClassifier": "classifier",
    "PRESETS": "presets",
    "RobustBenchClassifier": "classifier_robustbench",
    "TimmClassifier": "classifier",
    "TransformersClassifier": "classifier_transformers",
    "guidance_loss": "guidance",
    "in_guidance_window": "guidance",
    "l1_distance": "guidance",
    "l2_distance": "guidance",
    "load_pipeline": "defaults",
    "sr_operator": "guidance",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what type checkers and the API docs (griffe) read
    from .classifier import ModuleClassifier, TimmClassifier  # noqa: F401
    from .classifier_robustbench import RobustBenchClassifier  # noqa: F401
    from .classifier_transformers import TransformersClassifier  # noqa: F401
    from .defaults import load_pipeline  # noqa: F401
    from .guidance import guidance_loss, in_guidance_window, l1_distance, l2_distance, sr_operator  # noqa: F401
    from .pipeline_baselines import DiffPurePipeline, GDMPPipeline  # noqa: F401
    from .pipeline_mimic_diffusion import MimicDiffusionPipeline  # noqa: F401
    from .presets import PRESETS  # noqa: F401
    from .scheduling_mimic import MimicDiffusionScheduler, MimicSchedulerOutput  # noqa: F401
