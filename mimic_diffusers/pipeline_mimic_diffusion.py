"""MimicDiffusionPipeline: adversarial purification by guided reverse diffusion (Song & Lai).

One loop, one step (`denoise_step`) for purification and attacks: an attack passes `chain=` (see
`attacks/chain.py`) to run that same step with its graph, so it differentiates the deployed purifier.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, List, Optional, Tuple, Union

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from .hub import MimicHubMixin, looks_like_repo_id
from .image_io import postprocess, to_image_tensor
from .resources import check_fits
from .safety import check_pipeline_folder, import_component_modules
from .scheduling_mimic import PRESETS, MimicDiffusionScheduler, MimicSchedulerOutput
from .speedups import SpeedupsMixin


class MimicDiffusionPipeline(SpeedupsMixin, MimicHubMixin, DiffusionPipeline):
    r"""Purify images with MimicDiffusion, or with a baseline recipe held in the scheduler config.

    Components: `unet` (any diffusers `UNet2DModel`), `scheduler` (a `MimicDiffusionScheduler`; any
    other diffusers scheduler is converted, keeping its beta schedule), optional `classifier`
    (any `nn.Module` taking [0, 1] images, e.g. `TimmClassifier`). Speed-up toggles: `SpeedupsMixin`.
    """

    model_cpu_offload_seq = "unet"
    _optional_components = ["classifier"]
    _callback_tensor_inputs = ["latents", "x0_hat"]
    preset = "mimic"  # the scheduler recipe used when a non-Mimic scheduler is passed in
    # A baseline subclass runs its own recipe only: its preset's options, except these knobs, must hold.
    recipe_locked = False
    tunable_options: Tuple[str, ...] = ()

    def __init__(self, unet: UNet2DModel, scheduler, classifier: Optional[torch.nn.Module] = None):
        super().__init__()
        if not isinstance(scheduler, MimicDiffusionScheduler):
            scheduler = MimicDiffusionScheduler.from_preset(self.preset, base_config=scheduler.config)
        self.check_recipe(scheduler.config)
        self.register_modules(unet=unet, scheduler=scheduler, classifier=classifier)
        # Guidance and attacks need input gradients only: frozen weights save that work and memory.
        for module in (unet, classifier):
            if module is not None:
                module.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a local folder, or a Hub repo id (downloaded first: diffusers cannot import our classes
        for a repo id itself). Safetensors only; pickle weights are refused."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("use_safetensors=False is not allowed: this library loads safetensors weights only")
        if kwargs.pop("trust_remote_code", False):
            raise ValueError("trust_remote_code is not supported: no code is ever loaded from a pipeline folder")
        kwargs["use_safetensors"] = True
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            if not looks_like_repo_id(path):
                raise ValueError(f"pretrained_model_name_or_path={path!r} is not a pipeline folder or Hub repo id")
            from huggingface_hub import snapshot_download

            path = snapshot_download(
                path,
                revision=kwargs.pop("revision", None),
                allow_patterns=["*.json", "*.safetensors", "*.md", "*.txt"],
            )
        check_pipeline_folder(path)
        import_component_modules(path)
        if cls.recipe_locked and "scheduler" not in kwargs:
            config = MimicDiffusionScheduler.load_config(path, subfolder="scheduler")
            if cls.recipe_mismatch(config):
                # A folder of another recipe (e.g. MimicDiffusion's) gives a baseline only its beta schedule: the
                # recipe is the baseline's preset. A folder already of this recipe keeps its t* and other knobs.
                kwargs["scheduler"] = MimicDiffusionScheduler.from_preset(cls.preset, base_config=config)
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def recipe_mismatch(cls, config) -> dict:
        """{option: value} of a scheduler `config` that leaves this class's recipe: for a baseline, its preset's
        options other than `tunable_options`; empty for `MimicDiffusionPipeline`, which takes any recipe."""
        if not cls.recipe_locked:
            return {}
        fixed = {k: v for k, v in PRESETS[cls.preset].items() if k not in cls.tunable_options}
        return {k: config.get(k) for k, v in fixed.items() if config.get(k) != v}

    @classmethod
    def check_recipe(cls, config) -> None:
        """Raise ValueError naming each option where a scheduler `config` leaves this class's recipe."""
        wrong = cls.recipe_mismatch(config)
        if wrong:
            fixed = {k: v for k, v in PRESETS[cls.preset].items() if k not in cls.tunable_options}
            raise ValueError(
                f"{cls.__name__} runs the {cls.preset!r} recipe, which needs {fixed}, but its scheduler has {wrong} "
                f"(only {list(cls.tunable_options)} may change). Use "
                f"MimicDiffusionScheduler.from_preset({cls.preset!r}, base_config=...) or "
                "MimicDiffusionPipeline for another recipe"
            )

    def with_scheduler_options(self, preset: Optional[str] = None, **options) -> "MimicDiffusionPipeline":
        """This pipeline (same UNet and classifier, shared, not copied) with another scheduler recipe; this one
        is unchanged. With a `preset`: the library defaults, then the preset, then `options`, on this
        scheduler's beta schedule only (no option of this scheduler is kept, see
        `MimicDiffusionScheduler.from_preset`). Without one: this scheduler's options with `options` changed.

        Args:
            preset (`str`, *optional*): a key of `PRESETS`.
            options: MimicDiffusion scheduler options (`OPTION_DOCS`).
        Returns:
            A pipeline of the same class. A baseline (`DiffPurePipeline`, `GDMPPipeline`) refuses options
            that leave its recipe.

        Example:
            >>> diffpure = pipe.with_scheduler_options(preset="diffpure")
            >>> wide = pipe.with_scheduler_options(guidance_window_start=0.79, guidance_window_end=0.11)
        """
        config = self.scheduler.config
        scheduler = (
            MimicDiffusionScheduler.from_preset(preset, base_config=config, **options)
            if preset
            else MimicDiffusionScheduler.from_config(config, **options)
        )
        other = type(self)(unet=self.unet, scheduler=scheduler, classifier=self.classifier)
        other.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return other

    @property
    def size_multiple(self) -> int:
        multiple = 2 ** (len(self.unet.config.down_block_types) - 1)
        if self.scheduler.config.short_range and self.scheduler.config.sr_direction == "down":
            multiple = math.lcm(multiple, self.scheduler.config.sr_factor)
        return multiple

    def preprocess(self, image, keep_graph: bool = False) -> torch.Tensor:
        """User images -> validated float tensor in [0, 1] on the UNet's device. With `keep_graph`, a
        tensor that requires grad is returned as is (attacks: validating values would cut the graph)."""
        if keep_graph and isinstance(image, torch.Tensor) and image.requires_grad:
            to_image_tensor(image.detach(), self.unet.config.in_channels, self.size_multiple)  # shapes only
            return image
        x = to_image_tensor(image, self.unet.config.in_channels, self.size_multiple)
        return x.to(device=self._execution_device, dtype=self.unet.dtype)

    def classify(self, images01: torch.Tensor) -> torch.Tensor:
        """Logits of the attached classifier for images in [0, 1]."""
        if self.classifier is None:
            raise ValueError("this pipeline has no classifier component; pass classifier=... when building it")
        x = (
            to_image_tensor(images01, self.unet.config.in_channels, name="images")
            if not (isinstance(images01, torch.Tensor) and images01.requires_grad)
            else images01
        )
        return self.classifier(x.to(self._execution_device))

    def denoise_step(
        self,
        latents,
        reference,
        t,
        variance_noise,
        reference_noise=None,
        graph: bool = False,
        guidance_graph: bool = True,
        abs_fn: Callable = torch.abs,
    ) -> MimicSchedulerOutput:
        r"""One guided reverse step (Song & Lai): one UNet forward, the DDPM/DDIM step and, inside the window,
        g = -grad_{x_t} L(x0_hat, x_adv) (`scheduler.guided_step`). `reference` is x_adv in [-1, 1]; noise
        comes from the caller, so a recomputed step draws none. `graph=False` (purification): g differentiates
        a detached x_t, no graph leaves the step. `graph=True` (attacks, `chain=`): the graph w.r.t. `latents`
        and `reference` is kept, second order through g unless `guidance_graph=False` (g then a constant);
        `abs_fn`: |.| of the L1 guidance. Returns `MimicSchedulerOutput` (prev_sample, pred_original_sample, guidance).
        """
        needs_grad = self.scheduler.needs_model_gradient(t)
        if not graph and self.inference_mode_outside_window and not self.scheduler.in_window(t):
            with torch.inference_mode():  # no autograd bookkeeping at all for unguided steps
                return self.scheduler.guided_step(self._unet(latents, t), t, latents, variance_noise=variance_noise)
        if latents.is_inference():  # leaving inference mode: a normal tensor that autograd may use
            latents = latents.clone()
        if not graph or (needs_grad and not latents.requires_grad):  # a graph step keeps its input's graph
            latents = latents.detach().requires_grad_(needs_grad)
        # Fused attention kernels have no double backward: a graph step uses the math kernel (entered
        # here, so a checkpointed step recomputes under the same kernel).
        attention = sdpa_kernel(SDPBackend.MATH) if graph else contextlib.nullcontext()
        with torch.set_grad_enabled(graph or needs_grad), attention:
            out = self.scheduler.guided_step(
                self._unet(latents, t),
                t,
                latents,
                reference=reference,
                variance_noise=variance_noise,
                reference_noise=reference_noise,
                create_graph=graph and guidance_graph,
                retain_graph=graph,
                abs_fn=abs_fn,
            )
        return out if graph else MimicSchedulerOutput(**{k: v.detach() for k, v in out.items()})

    def check_inputs(self, num_inference_steps, output_type, chain, tensor_inputs):
        """Raise ValueError naming the argument for any `__call__` argument outside its domain."""
        self.check_recipe(self.scheduler.config)  # a baseline whose scheduler was replaced by assignment
        steps_max = self.scheduler.config.num_train_timesteps
        if not (isinstance(num_inference_steps, int) and 1 <= num_inference_steps <= steps_max):
            raise ValueError(f"num_inference_steps must be an integer in 1..{steps_max}, got {num_inference_steps!r}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        if chain is not None and output_type != "pt":
            raise ValueError("chain=... (a differentiable chain) needs output_type='pt'")
        if set(tensor_inputs) - set(self._callback_tensor_inputs):
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {tensor_inputs}"
            )

    @torch.no_grad()
    def __call__(
        self,
        image,
        num_inference_steps: int = 100,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        chain=None,
        callback_on_step_end: Optional[Callable] = None,
        callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
    ):
        r"""Purify `image`.

        Args:
            image (`torch.Tensor`, `PIL.Image.Image`, `np.ndarray` or a list of them): values in [0, 1].
            num_inference_steps (`int`, defaults to 100): reverse steps over the 1000-step training schedule.
            generator (`torch.Generator` or a list, *optional*): one per image: each result depends only on its own.
            output_type (`str`, defaults to "pil"): 'pil', 'np' (B, H, W, C) or 'pt' (B, C, H, W).
            return_dict (`bool`, defaults to True): an `ImagePipelineOutput` rather than a tuple.
            chain (`DifferentiableChain`, *optional*): the attack hook (`attacks/chain.py`; output_type 'pt'): each
                step runs as `chain.step(self, latents, reference, t, variance_noise, reference_noise)`, i.e.
                `self.denoise_step` with its graph, so the output keeps its graph w.r.t. `image` (a tensor that
                requires grad); `chain.graph_steps(n)` sizes the memory check.
            callback_on_step_end (`Callable`, *optional*): fn(pipe, i, t, {name: tensor}) -> dict, after each
                step; a returned "latents" replaces the latents.
            callback_on_step_end_tensor_inputs (`List[str]`, *optional*): among "latents", "x0_hat".
        Returns:
            `ImagePipelineOutput` (or a tuple): `images`, the purified images in [0, 1].

        Example:
            >>> pipe = mimic_diffusers.load_pipeline()
            >>> purified = pipe(images, generator=torch.Generator().manual_seed(0), output_type="pt").images
            >>> x = images.clone().requires_grad_(True)  # an attack: the same loop, differentiable
            >>> chain = mimic_diffusers.attacks.chain.DifferentiableChain(sign_surrogate="ste", checkpoint_steps=True)
            >>> (grad,) = torch.autograd.grad(pipe(x, output_type="pt", chain=chain).images.sum(), x)
        """
        names = callback_on_step_end_tensor_inputs or []
        self.check_inputs(num_inference_steps, output_type, chain, names)
        images01 = self.preprocess(image, keep_graph=chain is not None)
        if isinstance(generator, list) and len(generator) != images01.shape[0]:
            raise ValueError(f"generator: got a list of {len(generator)} generators for {images01.shape[0]} images")
        step = self.denoise_step if chain is None else lambda *args: chain.step(self, *args)

        with torch.set_grad_enabled(chain is not None):  # attacks: the graph from the input to the output
            reference = images01 * 2 - 1  # [0, 1] -> the UNet's [-1, 1]
            device, dtype, shape = reference.device, reference.dtype, reference.shape
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            timesteps = self.scheduler.purification_timesteps()
            graph_steps = 1 if chain is None else chain.graph_steps(len(timesteps))
            check_fits(self.unet, shape[0], shape[2], shape[3], device, graph_steps)
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            if self.scheduler.config.purification_start >= 1:
                latents = noise  # MimicDiffusion: x_T ~ N(0, I), x_adv enters only through the guidance
            else:  # DiffPure / GDMP: diffuse x_adv to t*
                latents = self.scheduler.add_noise(reference, noise, timesteps[:1])
            needs_reference_noise = self.scheduler.config.guidance_space == "xt"

            for i, t in enumerate(self.progress_bar(timesteps)):
                # Noise is drawn outside the step so a checkpointed step recomputes identically.
                variance_noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                reference_noise = (
                    randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                    if needs_reference_noise and self.scheduler.in_window(t)
                    else None
                )
                out = step(latents, reference, t, variance_noise, reference_noise)
                latents, x0_hat = out.prev_sample, out.pred_original_sample
                if callback_on_step_end is not None:
                    tensors = {k: {"latents": latents, "x0_hat": x0_hat}[k] for k in names}
                    latents = (callback_on_step_end(self, i, t, tensors) or {}).get("latents", latents)

            if latents.is_inference():
                latents = latents.clone()
            images = ((latents + 1) / 2).clamp(0, 1)  # [-1, 1] -> [0, 1]
        self.maybe_free_model_hooks()
        images = postprocess(images, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)
