"""The differentiable purification chain: how an attack runs each step of `MimicDiffusionPipeline.__call__`.

`pipe(x, output_type="pt", chain=DifferentiableChain(...))` keeps the autograd graph from an input `x`
that requires grad to the purified output. Every step is the pipeline's own `denoise_step` (the one
purification runs), kept with its graph: second order through the guidance, a surrogate derivative for
sign(.) if asked, optional per-step gradient checkpointing, and optionally the feedback cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch.utils.checkpoint import checkpoint

from ..guidance import make_abs

if TYPE_CHECKING:  # the chain needs no diffusers import of its own
    from ..scheduling_mimic import MimicSchedulerOutput


class _ReferencePath(torch.autograd.Function):
    """Zero in forward; in backward, the vector-Jacobian product of the guidance g(x_t, y) w.r.t. the
    reference y only (second order through the UNet, recomputed here: one more UNet forward and backward
    per guided step), so a step keeps two small tensors instead of the UNet's activations. Added to a step
    whose value already contains g."""

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


def _reference_path(pipe, latents, reference, t, variance_noise, reference_noise, abs_fn):
    """Feedback cut (docs/attack-choice.md, "The mechanism"): dg/dy of one guided step as a zero-valued term."""

    def guidance(x_t, ref):
        leaf = x_t.detach().requires_grad_(True)
        with torch.enable_grad():
            return pipe.denoise_step(leaf, ref, t, variance_noise, reference_noise, graph=True, abs_fn=abs_fn).guidance

    return _ReferencePath.apply(reference, latents.detach(), guidance)


class DifferentiableChain:
    r"""The attack hook of `MimicDiffusionPipeline.__call__`: runs each reverse step with its autograd graph.

    Args:
        sign_surrogate (`str`, *optional*): None (exact sign: the derivative purification has, zero for
            MimicDiffusion's L1 guidance), 'ste' or 'tanh' (surrogate derivative of |.|, `guidance.make_abs`).
        surrogate_tau (`float`, defaults to 0.05): the surrogate's temperature.
        checkpoint_steps (`bool`, defaults to False): recompute each step in backward (memory: O(T) states
            instead of T steps of UNet activations).
        guidance_feedback (`bool`, defaults to True): keep each guidance term's derivative w.r.t. x_t (the
            exact chain). False keeps only its derivative w.r.t. the input (the feedback-cut attack).

    Example:
        >>> chain = DifferentiableChain(sign_surrogate="ste", surrogate_tau=0.5, checkpoint_steps=True)
        >>> x = images.clone().requires_grad_(True)
        >>> purified = pipe(x, num_inference_steps=20, output_type="pt", chain=chain).images
        >>> (grad,) = torch.autograd.grad(loss_fn(purified), x)
    """

    def __init__(
        self,
        sign_surrogate: Optional[str] = None,
        surrogate_tau: float = 0.05,
        checkpoint_steps: bool = False,
        guidance_feedback: bool = True,
    ):
        self.abs_fn = make_abs(sign_surrogate, surrogate_tau)
        self.checkpoint_steps, self.guidance_feedback = checkpoint_steps, guidance_feedback

    def graph_steps(self, num_steps: int) -> int:
        """How many steps keep their UNet activations at once (for the pipeline's memory check)."""
        return 1 if self.checkpoint_steps else num_steps

    def step(self, pipe, latents, reference, t, variance_noise, reference_noise=None) -> MimicSchedulerOutput:
        """`pipe.denoise_step` with its graph kept, per-step checkpointed if asked (same arguments)."""
        if latents.is_inference():
            latents = latents.clone()  # checkpoint saves its inputs: no inference tensors there
        args = (pipe, latents, reference, t, variance_noise, reference_noise)
        if self.checkpoint_steps and (latents.requires_grad or reference.requires_grad):
            return checkpoint(self._step, *args, use_reentrant=False)
        return self._step(*args)

    def _step(self, pipe, latents, reference, t, variance_noise, reference_noise):
        """One step of the exact chain (second order through g) or of the feedback cut (dg/dx_t dropped)."""
        # The graph starts at the first step that depends on the input: earlier steps (pure noise
        # before the window) do not, and run as in purification.
        in_window = pipe.scheduler.in_window(t)
        graph = latents.requires_grad or (reference.requires_grad and in_window)
        # Feedback cut: g's value comes from this step's own UNet call, as in purification, but enters as
        # a constant (no dg/dx_t); its dg/dy is added by `_ReferencePath`.
        cut = graph and in_window and not self.guidance_feedback
        out = pipe.denoise_step(
            latents,
            reference.detach() if cut else reference,
            t,
            variance_noise,
            reference_noise,
            graph=graph,
            guidance_graph=not cut,
            abs_fn=self.abs_fn,
        )
        if not cut:
            return out
        path = _reference_path(pipe, latents, reference, t, variance_noise, reference_noise, self.abs_fn)
        return type(out)(  # the step's own MimicSchedulerOutput, with the reference path added
            prev_sample=out.prev_sample + path, pred_original_sample=out.pred_original_sample, guidance=out.guidance
        )
