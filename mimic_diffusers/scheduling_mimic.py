"""The guided scheduler: a diffusers `DDIMScheduler` that also owns every MimicDiffusion option.

`eta=1` gives the DDPM ancestral step on the strided timesteps (the paper's CIFAR setting: 100 steps of
a 1000-step schedule), `eta=0` the deterministic DDIM step. `guided_step` adds the guidance to the
ordinary x_{t-1}; all options live in `scheduler_config.json` via `register_to_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Union

import numpy as np
import torch
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers import DDIMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401  (the loader looks it up here)
from diffusers.utils import BaseOutput

from .guidance import guidance_loss, in_guidance_window, rule_scale, validate_guidance_options
from .presets import PRESETS

# Every MimicDiffusion option of the scheduler with what it does, in signature order: the one source the
# model card, the options page and the hub's config checks read (the class docstring repeats it for help()).
OPTION_DOCS = {
    "eta": "DDIM eta: 1 = DDPM ancestral step, 0 = deterministic DDIM.",
    "purification_start": "Start of the reverse process as a fraction of T: 1 = from pure noise; t* < 1 diffuses the "
    "input to t* first (DiffPure, GDMP).",
    "guidance_window_start": "Upper end of the guidance window as a fraction of T "
    "(guided: end * T <= t <= start * T).",
    "guidance_window_end": "Lower end of the guidance window as a fraction of T.",
    "distance": 'Distance between x0_hat and the adversarial image: "l1" (per-sample mean) or "l2".',
    "long_range": "The long-range term dist(x0_hat, x_adv).",
    "short_range": "The short-range term dist(H(x0_hat), H(x_adv)) through the bicubic operator H.",
    "sr_direction": 'H resamples "down" (DPS\'s forward operator) or "up" (the paper\'s wording).',
    "sr_factor": "Resampling factor of H.",
    "step_size_rule": 'How the guidance step size depends on t: "paper" (1 / alpha_bar^2), "dps", "constant", '
    '"official", "gdmp".',
    "guidance_scale": "Scale of the step size rule (None = the rule's default).",
    "guidance_space": '"x0" guides the predicted clean image; "xt" guides the noisy sample (GDMP).',
    "guidance_reference_steps": "Step sizes are for this many steps; other step counts rescale them so the total "
    "pull does not depend on T (None: fixed per step).",
}


@dataclass
class MimicSchedulerOutput(BaseOutput):
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor
    guidance: Optional[torch.Tensor] = None


class MimicDiffusionScheduler(DDIMScheduler):
    r"""A `DDIMScheduler` whose `guided_step` adds MimicDiffusion's guidance (Song & Lai) inside a window.

    The first 15 arguments are `DDIMScheduler`'s (`timestep_spacing="trailing"`: t = 999, ..., 9 at 100
    steps). The MimicDiffusion options below are those of `OPTION_DOCS`, which the model card and docs render.

    Args:
        eta (`float`, defaults to 1.0):
            DDIM eta: 1 = DDPM ancestral step, 0 = deterministic DDIM.
        purification_start (`float`, defaults to 1.0):
            Start of the reverse process as a fraction of T: 1 = from pure noise; t* < 1 diffuses the input to
            t* first (DiffPure, GDMP).
        guidance_window_start (`float`, defaults to 0.5):
            Upper end of the guidance window as a fraction of T (guided: end * T <= t <= start * T).
        guidance_window_end (`float`, defaults to 0.2):
            Lower end of the guidance window as a fraction of T.
        distance (`str`, defaults to "l1"):
            Distance between x0_hat and the adversarial image: "l1" (per-sample mean) or "l2".
        long_range (`bool`, defaults to True):
            The long-range term dist(x0_hat, x_adv).
        short_range (`bool`, defaults to True):
            The short-range term dist(H(x0_hat), H(x_adv)) through the bicubic operator H.
        sr_direction (`str`, defaults to "down"):
            H resamples "down" (DPS's forward operator) or "up" (the paper's wording).
        sr_factor (`int`, defaults to 4):
            Resampling factor of H.
        step_size_rule (`str`, defaults to "paper"):
            How the guidance step size depends on t: "paper" (1 / alpha_bar^2), "dps", "constant", "official", "gdmp".
        guidance_scale (`float`, *optional*):
            Scale of the step size rule (None = the rule's default).
        guidance_space (`str`, defaults to "x0"):
            "x0" guides the predicted clean image; "xt" guides the noisy sample (GDMP).
        guidance_reference_steps (`int`, *optional*, defaults to 100):
            Step sizes are for this many steps; other step counts rescale them so the total pull does not
            depend on T (None: fixed per step).

    Example:
        >>> scheduler = MimicDiffusionScheduler.from_preset("mimic-paper")
        >>> scheduler.set_timesteps(100)
    """

    _compatibles = ["DDIMScheduler", "DDPMScheduler", "PNDMScheduler"]

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Optional[Union[np.ndarray, List[float]]] = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "trailing",
        rescale_betas_zero_snr: bool = False,
        # --- purification and guidance options (MimicDiffusion) ---
        eta: float = 1.0,
        purification_start: float = 1.0,
        guidance_window_start: float = 0.5,
        guidance_window_end: float = 0.2,
        distance: str = "l1",
        long_range: bool = True,
        short_range: bool = True,
        sr_direction: str = "down",
        sr_factor: int = 4,
        step_size_rule: str = "paper",
        guidance_scale: Optional[float] = None,
        guidance_space: str = "x0",
        guidance_reference_steps: Optional[int] = 100,
    ):
        validate_guidance_options(
            eta=eta,
            purification_start=purification_start,
            guidance_window_start=guidance_window_start,
            guidance_window_end=guidance_window_end,
            distance=distance,
            sr_direction=sr_direction,
            sr_factor=sr_factor,
            step_size_rule=step_size_rule,
            guidance_scale=guidance_scale,
            guidance_space=guidance_space,
            guidance_reference_steps=guidance_reference_steps,
        )
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            clip_sample=clip_sample,
            set_alpha_to_one=set_alpha_to_one,
            steps_offset=steps_offset,
            prediction_type=prediction_type,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            clip_sample_range=clip_sample_range,
            sample_max_value=sample_max_value,
            timestep_spacing=timestep_spacing,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )

    @classmethod
    def from_preset(cls, preset: str = "mimic", base_config=None, **overrides) -> "MimicDiffusionScheduler":
        r"""A scheduler for a named recipe: the library defaults, then the preset's options (`PRESETS`), then
        `overrides`. Every MimicDiffusion option (`OPTION_DOCS`) not set by the preset or an override is reset
        to its library default, whatever `base_config` holds; of `base_config` only the beta schedule and the
        other DDIM settings are kept.

        Args:
            preset (`str`, defaults to "mimic"): a key of `PRESETS`.
            base_config (`dict` or `FrozenDict`, *optional*): another scheduler's config whose beta schedule
                (and DDIM settings) to keep, e.g. `pipe.scheduler.config`.
            overrides: MimicDiffusion options applied on top of the preset.
        Returns:
            `MimicDiffusionScheduler`.

        Example:
            >>> diffpure = MimicDiffusionScheduler.from_preset("diffpure", base_config=pipe.scheduler.config)
            >>> diffpure.config.long_range, diffpure.config.guidance_scale  # the pipeline's scale is not kept
            (False, None)
        """
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        options = {**PRESETS[preset], **overrides}
        if base_config is None:
            return cls(**options)
        schedule = {k: v for k, v in dict(base_config).items() if k not in OPTION_DOCS}
        return cls.from_config(schedule, **options)

    # ------------------------------------------------------------------ window and timesteps
    @property
    def is_guided(self) -> bool:
        return self.config.long_range or self.config.short_range

    def in_window(self, timestep) -> bool:
        """True when `timestep` gets guidance (inside [end, start] * T and some term enabled)."""
        return self.is_guided and in_guidance_window(
            int(timestep),
            self.config.num_train_timesteps,
            self.config.guidance_window_start,
            self.config.guidance_window_end,
        )

    def needs_model_gradient(self, timestep) -> bool:
        """The x0 guidance differentiates through the UNet; the x_t (GDMP) guidance does not."""
        return self.in_window(timestep) and self.config.guidance_space == "x0"

    def purification_timesteps(self) -> torch.Tensor:
        """The timesteps to run after `set_timesteps`: all of them from pure noise, or those <= t*."""
        if self.timesteps is None or self.num_inference_steps is None:
            raise RuntimeError("call set_timesteps(num_inference_steps) first")
        limit = self.config.purification_start * self.config.num_train_timesteps
        steps = self.timesteps[self.timesteps <= min(limit, self.config.num_train_timesteps - 1)]
        if len(steps) == 0:
            raise ValueError(
                f"purification_start={self.config.purification_start} leaves no timestep with "
                f"{self.num_inference_steps} inference steps; raise one of them"
            )
        return steps

    def effective_guidance_scale(self) -> float:
        """The rule's scale times reference_steps / num_inference_steps: the guidance acts like a drift
        over diffusion time, so T=20 steps (stride 50) get 5x the per-step pull of T=100 (stride 10) and
        the total pull does not depend on T. With `guidance_reference_steps=None` the per-step size is
        fixed whatever T (the paper's and the authors' code, which only ran T=100)."""
        scale = rule_scale(self.config.step_size_rule, self.config.guidance_scale)
        reference = self.config.guidance_reference_steps
        if reference is None or self.num_inference_steps is None:
            return scale
        return scale * reference / self.num_inference_steps

    def alpha_bar(self, timestep) -> float:
        return float(self.alphas_cumprod[int(timestep)])

    # ------------------------------------------------------------------ the guided step
    def guided_step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        reference: Optional[torch.Tensor] = None,
        variance_noise: Optional[torch.Tensor] = None,
        reference_noise: Optional[torch.Tensor] = None,
        generator=None,
        create_graph: bool = False,
        abs_fn: Callable = torch.abs,
        retain_graph: bool = False,
    ) -> MimicSchedulerOutput:
        """x_{t-1} = DDIM/DDPM step + g, with g = -grad_{x_t} guidance_loss inside the window.

        In x0 space `model_output` must have been computed from `sample` with autograd on: the gradient
        flows through the UNet. `create_graph=True` keeps the graph of g (exact-gradient attacks);
        `retain_graph=True` only keeps the UNet's graph alive for a later backward through the chain.
        """
        out = self.step(
            model_output, timestep, sample, eta=self.config.eta, generator=generator, variance_noise=variance_noise
        )
        prev, x0_hat = out.prev_sample, out.pred_original_sample
        if reference is None or not self.in_window(timestep):
            return MimicSchedulerOutput(prev_sample=prev, pred_original_sample=x0_hat)
        options = dict(
            alpha_bar=self.alpha_bar(timestep),
            distance=self.config.distance,
            long_range=self.config.long_range,
            short_range=self.config.short_range,
            sr_factor=self.config.sr_factor,
            sr_direction=self.config.sr_direction,
            step_size_rule=self.config.step_size_rule,
            guidance_scale=self.effective_guidance_scale(),
            abs_fn=abs_fn,
        )
        if self.config.guidance_space == "x0":
            if not sample.requires_grad or not x0_hat.requires_grad:
                raise RuntimeError("guided_step in x0 space needs model_output computed from sample with grad enabled")
            loss = guidance_loss(x0_hat, reference, **options)
            (grad,) = torch.autograd.grad(
                loss, sample, create_graph=create_graph, retain_graph=create_graph or retain_graph
            )
        else:
            if reference_noise is None:
                raise ValueError("guidance_space='xt' needs reference_noise to diffuse the reference")
            t = torch.as_tensor([int(timestep)], device=reference.device)
            reference_t = self.add_noise(reference, reference_noise, t)
            x = sample if sample.requires_grad else sample.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = guidance_loss(x, reference_t, **options)
                (grad,) = torch.autograd.grad(
                    loss, x, create_graph=create_graph, retain_graph=create_graph or retain_graph
                )
        return MimicSchedulerOutput(prev_sample=prev - grad, pred_original_sample=x0_hat, guidance=-grad)
