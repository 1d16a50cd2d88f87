"""Baselines in the same API and the same loop: only the scheduler recipe differs.

- `DiffPurePipeline` (Nie et al.): diffuse x_adv to t* (default 0.1 T), denoise, no guidance.
- `GDMPPipeline` (Wang et al.): diffuse to t*, then in every step pull x_t toward the equally
  diffused x_adv (L2), no gradient through the UNet.
"""
from __future__ import annotations

from .pipeline_mimic_diffusion import MimicDiffusionPipeline


class DiffPurePipeline(MimicDiffusionPipeline):
    preset = "diffpure"


class GDMPPipeline(MimicDiffusionPipeline):
    preset = "gdmp"
