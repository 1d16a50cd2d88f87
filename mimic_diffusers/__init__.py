"""mimic-diffusers: MimicDiffusion adversarial purification for the diffusers ecosystem."""

__version__ = "0.1.0"

from .classifier import ModuleClassifier, TimmClassifier
from .classifier_robustbench import RobustBenchClassifier
from .classifier_transformers import TransformersClassifier
from .defaults import load_pipeline
from .guidance import guidance_loss, in_guidance_window, l1_distance, l2_distance, sr_operator
from .pipeline_baselines import DiffPurePipeline, GDMPPipeline
from .pipeline_mimic_diffusion import MimicDiffusionPipeline
from .scheduling_mimic import PRESETS, MimicDiffusionScheduler, MimicSchedulerOutput

__all__ = [
    "DiffPurePipeline",
    "GDMPPipeline",
    "MimicDiffusionPipeline",
    "MimicDiffusionScheduler",
    "MimicSchedulerOutput",
    "ModuleClassifier",
    "PRESETS",
    "RobustBenchClassifier",
    "TimmClassifier",
    "TransformersClassifier",
    "guidance_loss",
    "in_guidance_window",
    "l1_distance",
    "l2_distance",
    "load_pipeline",
    "sr_operator",
]
