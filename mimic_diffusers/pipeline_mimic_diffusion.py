"""MimicDiffusionPipeline: adversarial purification by guided reverse diffusion (Song & Lai).

One loop serves purification and the attacks: with `differentiable=True` the purified output keeps its
autograd graph w.r.t. the input (second order through the guidance, optional surrogate for sign,
optional per-step gradient checkpointing), so exact-gradient attacks call this same `__call__`.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, List, Optional, Union

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from .guidance import make_abs
from .hub import MimicHubMixin
from .image_io import postprocess, to_image_tensor
from .resources import check_fits
from .scheduling_mimic import MimicDiffusionScheduler


class _ReferencePath(torch.autograd.Function):
    """Zero in forward; in backward, the vector-Jacobian product of the guidance g(x_t, y) w.r.t. the
    reference y only (second order through the UNet, recomputed here), so a step keeps two small tensors
    instead of the UNet's activations. Added to a step whose value already contains g."""

    @staticmethod
    def forward(ctx, reference, x_t, guidance):
        ctx.save_for_backward(reference, x_t)
        ctx.guidance = guidance
        return torch.zeros_like(x_t)

    @staticmethod
    def backward(ctx, grad_g):
        reference, x_t = ctx.saved_tensors
        with torch.enable_grad():
            ref = reference.detach().requires_grad_(True)
            (grad_ref,) = torch.autograd.grad(ctx.guidance(x_t, ref), ref, grad_g)
        return grad_ref, None, None


class MimicDiffusionPipeline(MimicHubMixin, DiffusionPipeline):
    r"""Purify images with MimicDiffusion, or with a baseline recipe held in the scheduler config.

    Components: `unet` (any diffusers `UNet2DModel`), `scheduler` (a `MimicDiffusionScheduler`; any
    other diffusers scheduler is converted, keeping its beta schedule), optional `classifier`
    (any `nn.Module` taking [0, 1] images, e.g. `TimmClassifier`).
    """

    model_cpu_offload_seq = "unet"
    _optional_components = ["classifier"]
    _callback_tensor_inputs = ["latents", "x0_hat"]
    preset = "mimic"  # the scheduler recipe used when a non-Mimic scheduler is passed in

    # Speed-ups that keep results identical (tests compare them to the plain path).
    inference_mode_outside_window = True
    # Batched kernels sum in a batch-size dependent order (~1e-6 differences); per-sample UNet calls
    # make a result bit-identical whatever batch it is in, at the cost of batching speed.
    batch_invariant = False
    # Opt-in mixed precision for the UNet forward (None: full precision). Not bit-identical: see
    # `enable_autocast`.
    autocast_dtype: Optional[torch.dtype] = None

    def __init__(self, unet: UNet2DModel, scheduler, classifier: Optional[torch.nn.Module] = None):
        super().__init__()
        if not isinstance(scheduler, MimicDiffusionScheduler):
            scheduler = MimicDiffusionScheduler.from_preset(self.preset, base_config=scheduler.config)
        self.register_modules(unet=unet, scheduler=scheduler, classifier=classifier)
        # Guidance and attacks need input gradients only: frozen weights save the weight-gradient work
        # and the activations kept for it.
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
            if os.path.exists(path) or path.startswith((".", "/")) or path.count("/") > 1:
                raise ValueError(f"pretrained_model_name_or_path={path!r} is not a pipeline folder or Hub repo id")
            from huggingface_hub import snapshot_download

            path = snapshot_download(path, revision=kwargs.pop("revision", None),
                                     allow_patterns=["*.json", "*.safetensors", "*.md", "*.txt"])
        from .safety import check_pipeline_folder

        check_pipeline_folder(path)
        return super().from_pretrained(path, **kwargs)

    def with_scheduler_options(self, preset: Optional[str] = None, **options) -> "MimicDiffusionPipeline":
        """This pipeline (same UNet and classifier, shared, not copied) with another scheduler recipe: a
        named `preset` and/or option overrides on this scheduler's beta schedule. This one is unchanged.

        Example:
            >>> diffpure = pipe.with_scheduler_options(preset="diffpure")
            >>> wide = pipe.with_scheduler_options(guidance_window_start=0.79, guidance_window_end=0.11)
        """
        config = self.scheduler.config
        scheduler = (MimicDiffusionScheduler.from_preset(preset, base_config=config, **options) if preset
                     else MimicDiffusionScheduler.from_config(config, **options))
        other = type(self)(unet=self.unet, scheduler=scheduler, classifier=self.classifier)
        other.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return other

    # ------------------------------------------------------------------ helpers
    def enable_channels_last(self):
        """Store UNet weights channels-last (faster convolutions on many CPUs/GPUs; same results)."""
        self.unet.to(memory_format=torch.channels_last)
        return self

    def enable_batch_invariance(self, enabled: bool = True):
        """Bit-identical outputs across batch compositions (UNet called per sample; slower)."""
        self.batch_invariant = enabled
        return self

    def enable_autocast(self, dtype: Optional[torch.dtype] = torch.bfloat16):
        """Opt-in mixed precision: the UNet runs under `torch.autocast(dtype)` (fp16/bf16 on GPU, bf16
        on CPU); its output is cast back, so the scheduler step and the guidance stay in full precision.
        Results change at the level of the lower precision (tests bound the difference on the smooth,
        unguided path); `dtype=None` turns it off."""
        if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"enable_autocast: dtype must be torch.float16, torch.bfloat16 or None, got {dtype!r}")
        device_type = self._execution_device.type
        if dtype is not None and not torch.amp.is_autocast_available(device_type):
            raise ValueError(f"enable_autocast: torch has no autocast for device type {device_type!r}")
        self.autocast_dtype = dtype
        return self

    def _unet(self, latents, t):
        if self.autocast_dtype is not None:
            with torch.autocast(latents.device.type, dtype=self.autocast_dtype):
                return self._unet_forward(latents, t).to(latents.dtype)
        return self._unet_forward(latents, t)

    def _unet_forward(self, latents, t):
        if self.batch_invariant and latents.shape[0] > 1:
            return torch.cat([self.unet(latents[i:i + 1], t).sample for i in range(latents.shape[0])])
        return self.unet(latents, t).sample

    def compile_unet(self, **compile_kwargs):
        """Opt-in `torch.compile` of the UNet (first call is slow; not used by the attack path's double
        backward, which compiled graphs do not support)."""
        self.unet = torch.compile(self.unet, **compile_kwargs)
        return self

    @property
    def size_multiple(self) -> int:
        multiple = 2 ** (len(self.unet.config.down_block_types) - 1)
        if self.scheduler.config.short_range and self.scheduler.config.sr_direction == "down":
            multiple = math.lcm(multiple, self.scheduler.config.sr_factor)
        return multiple

    def preprocess(self, image) -> torch.Tensor:
        """User images -> validated float tensor in [0, 1] on the UNet's device."""
        x = to_image_tensor(image, self.unet.config.in_channels, self.size_multiple)
        return x.to(device=self._execution_device, dtype=self.unet.dtype)

    def classify(self, images01: torch.Tensor) -> torch.Tensor:
        """Logits of the attached classifier for images in [0, 1]."""
        if self.classifier is None:
            raise ValueError("this pipeline has no classifier component; pass classifier=... when building it")
        x = to_image_tensor(images01, self.unet.config.in_channels, name="images") if not (
            isinstance(images01, torch.Tensor) and images01.requires_grad) else images01
        return self.classifier(x.to(self._execution_device))

    def _denoise_step(self, latents, reference, variance_noise, reference_noise, t, differentiable, abs_fn,
                      guidance_feedback=True):
        """One reverse step: UNet forward once, scheduler step, guidance inside the window.

        Purification: the guided steps differentiate w.r.t. a detached x_t only (input gradient, no
        parameter gradients) and no graph leaves the step. Attacks (`differentiable`): the graph is
        kept from the first step that depends on the input onwards; earlier steps (pure noise before
        the window) do not depend on it and run without a graph.
        """
        needs_grad = self.scheduler.needs_model_gradient(t)
        graph = differentiable and (latents.requires_grad or (reference.requires_grad and self.scheduler.in_window(t)))
        if not graph and self.inference_mode_outside_window and not self.scheduler.in_window(t):
            with torch.inference_mode():  # no autograd bookkeeping at all for unguided steps
                out = self.scheduler.guided_step(self._unet(latents, t), t, latents, variance_noise=variance_noise)
            return out.prev_sample, out.pred_original_sample
        if latents.is_inference():  # leaving inference mode: a normal tensor that autograd may use
            latents = latents.clone()
        if not graph:
            latents = latents.detach().requires_grad_(needs_grad)
        elif needs_grad and not latents.requires_grad:
            latents = latents.detach().requires_grad_(True)
        # Fused attention kernels have no double backward: a graph step uses the math kernel (entered
        # here, so a checkpointed step recomputes under the same kernel).
        attention = sdpa_kernel(SDPBackend.MATH) if graph else contextlib.nullcontext()
        # guidance_feedback=False (attack option): the step's graph keeps dg/dy but not dg/dx_t. g's value
        # comes from this step's own UNet call (as in purification); its y-path is added by `_ReferencePath`.
        cut_feedback = graph and not guidance_feedback and self.scheduler.in_window(t)
        with torch.set_grad_enabled(graph or needs_grad), attention:
            model_output = self._unet(latents, t)
            out = self.scheduler.guided_step(
                model_output, t, latents, reference=reference.detach() if cut_feedback else reference,
                variance_noise=variance_noise, reference_noise=reference_noise,
                create_graph=graph and not cut_feedback, retain_graph=cut_feedback, abs_fn=abs_fn,
            )
        if cut_feedback:
            reference_path = self._reference_path(latents, reference, variance_noise, reference_noise, t, abs_fn)
            return out.prev_sample + reference_path, out.pred_original_sample
        if graph:
            return out.prev_sample, out.pred_original_sample
        return out.prev_sample.detach(), out.pred_original_sample.detach()

    def _reference_path(self, latents, reference, variance_noise, reference_noise, t, abs_fn):
        """Zero-valued term carrying dg/dy of this guided step (README, "Why the exact attack was weak":
        with the sign surrogate, the dropped feedback term dg/dx_t linearises a bang-bang pull). Its
        backward costs one more UNet forward and backward per guided step."""

        def guidance(x_t, ref):
            leaf = x_t.detach().requires_grad_(True)
            with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
                return self.scheduler.guided_step(
                    self._unet(leaf, t), t, leaf, reference=ref, variance_noise=variance_noise,
                    reference_noise=reference_noise, create_graph=True, abs_fn=abs_fn,
                ).guidance

        return _ReferencePath.apply(reference, latents.detach(), guidance)

    # ------------------------------------------------------------------ the loop
    @torch.no_grad()
    def __call__(
        self,
        image,
        num_inference_steps: int = 100,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        differentiable: bool = False,
        sign_surrogate: Optional[str] = None,
        surrogate_tau: float = 0.05,
        checkpoint_steps: bool = False,
        guidance_feedback: bool = True,
        callback_on_step_end: Optional[Callable] = None,
        callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
    ):
        r"""Purify `image` (see `image_io` for accepted types; values in [0, 1]).

        Args:
            num_inference_steps: reverse steps over the 1000-step training schedule (paper: 100).
            generator: a generator, or one per image (then each image's result depends only on its own
                generator: purifying [a, b] and [a] gives the same output for a).
            output_type: 'pil', 'np' (B, H, W, C) or 'pt' (B, C, H, W); values in [0, 1].
            differentiable: keep the graph from input to output (attacks); implies output_type 'pt'.
            sign_surrogate: None (exact sign, purification), 'ste' or 'tanh' (attack derivative of |.|).
            checkpoint_steps: with `differentiable`, recompute each step in backward (memory O(T) states).
            guidance_feedback: with `differentiable`, keep the guidance's derivative w.r.t. x_t in the graph
                (True: the exact chain). False keeps only its derivative w.r.t. the input (an attack option).
            callback_on_step_end: fn(pipe, step_index, timestep, {name: tensor}) -> dict, after each step.
        """
        if not (isinstance(num_inference_steps, int) and 1 <= num_inference_steps <= self.scheduler.config.num_train_timesteps):
            raise ValueError(f"num_inference_steps must be an integer in 1..{self.scheduler.config.num_train_timesteps}, got {num_inference_steps!r}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        if differentiable and output_type != "pt":
            raise ValueError("differentiable=True needs output_type='pt'")
        names = callback_on_step_end_tensor_inputs or []
        if set(names) - set(self._callback_tensor_inputs):
            raise ValueError(f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {names}")
        abs_fn = make_abs(sign_surrogate, surrogate_tau)
        if differentiable and isinstance(image, torch.Tensor) and image.requires_grad:
            images01 = image  # attacks: validation of values would break the graph; shapes still checked
            to_image_tensor(image.detach(), self.unet.config.in_channels, self.size_multiple)
        else:
            images01 = self.preprocess(image)
        if isinstance(generator, list) and len(generator) != images01.shape[0]:
            raise ValueError(f"generator: got a list of {len(generator)} generators for {images01.shape[0]} images")
        grad_context = torch.enable_grad() if differentiable else torch.no_grad()
        with grad_context:
            reference = images01 * 2 - 1  # [0, 1] -> the UNet's [-1, 1]
        device, dtype, shape = reference.device, reference.dtype, reference.shape

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.purification_timesteps()
        graph_steps = len(timesteps) if differentiable and not checkpoint_steps else 1
        check_fits(self.unet, shape[0], shape[2], shape[3], device, graph_steps)
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if self.scheduler.config.purification_start >= 1:
            latents = noise  # MimicDiffusion: x_T ~ N(0, I), x_adv enters only through the guidance
        else:
            with grad_context:  # DiffPure / GDMP: diffuse x_adv to t*
                latents = self.scheduler.add_noise(reference, noise, timesteps[:1])
        needs_reference_noise = self.scheduler.config.guidance_space == "xt"

        with grad_context:
            for i, t in enumerate(self.progress_bar(timesteps)):
                # Noise is drawn outside the step so a checkpointed step recomputes identically.
                variance_noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                reference_noise = (randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                                   if needs_reference_noise and self.scheduler.in_window(t) else None)
                if latents.is_inference() and differentiable:
                    latents = latents.clone()  # checkpoint saves its inputs: no inference tensors there
                args = (latents, reference, variance_noise, reference_noise, t, differentiable, abs_fn, guidance_feedback)
                if differentiable and checkpoint_steps and (latents.requires_grad or reference.requires_grad):
                    latents, x0_hat = checkpoint(self._denoise_step, *args, use_reentrant=False)
                else:
                    latents, x0_hat = self._denoise_step(*args)
                if callback_on_step_end is not None:
                    local = {"latents": latents, "x0_hat": x0_hat}
                    outputs = callback_on_step_end(self, i, t, {k: local[k] for k in names}) or {}
                    latents = outputs.get("latents", latents)

        if latents.is_inference():
            latents = latents.clone()
        with grad_context:
            images = ((latents + 1) / 2).clamp(0, 1)  # [-1, 1] -> [0, 1]
        self.maybe_free_model_hooks()
        images = postprocess(images, output_type)
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
