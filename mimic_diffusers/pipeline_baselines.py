"""Baselines in the same API and the same loop: only the scheduler recipe differs.

- `DiffPurePipeline` (Nie et al.): diffuse x_adv to t* (default 0.1 T), denoise, no guidance.
- `GDMPPipeline` (Wang et al.): diffuse to t*, then in every step pull x_t toward the equally
  diffused x_adv (L2), no gradient through the UNet.

Each runs its own recipe whatever it is given: `from_pretrained` of a folder of another recipe keeps only
its beta schedule and applies the preset (a MimicDiffusion folder loaded as `DiffPurePipeline` runs
DiffPure; a folder already of the recipe keeps its t*), another diffusers scheduler is converted, and a
`MimicDiffusionScheduler` outside the recipe is refused with the options that differ. Only
`tunable_options` (t*, and GDMP's guidance scale) may differ from the preset.

Example:
    >>> from mimic_diffusers.defaults import shipped_pipeline_path
    >>> diffpure = DiffPurePipeline.from_pretrained(shipped_pipeline_path())  # guidance off, t* = 0.1
    >>> deeper = diffpure.with_scheduler_options(purification_start=0.2)
"""

from __future__ import annotations

from .pipeline_mimic_diffusion import MimicDiffusionPipeline


class DiffPurePipeline(MimicDiffusionPipeline):
    preset = "diffpure"
    recipe_locked = True
    tunable_options = ("purification_start",)


class GDMPPipeline(MimicDiffusionPipeline):
    preset = "gdmp"
    recipe_locked = True
    tunable_options = ("purification_start", "guidance_scale")
