"""`PurifyThenClassify`: the defended model as an `nn.Module` on [0, 1] inputs, for any attack library.

How its gradient w.r.t. the input is computed is the `gradient` mode:
- 'autograd': plain autograd through the whole purification (what an off-the-shelf attack sees; for
  MimicDiffusion this is exactly zero: x_adv enters only through sign(.)).
- 'bpda': forward = purify (no graph), backward = identity (Athalye et al.).
- 'exact': second-order autograd through the guidance with a surrogate derivative for sign
  ('ste' or 'tanh', temperature `tau`), per-step checkpointing, optionally through a purifier with
  fewer steps (`gradient_steps`, Lee & Kim's surrogate) while predictions use the full one: the full
  chain-rule derivative of that surrogate chain.
- 'feedback-cut': as 'exact', but each guidance term's derivative w.r.t. x_t (the linearised feedback
  of the sign pull) is dropped, its derivative w.r.t. the input kept. Not the exact gradient; measured
  on the shipped MNIST default it is the stronger attack (README, "Why the exact attack was weak").
- 'classifier': the gradient of the bare classifier (non-adaptive attacks: purification ignored).
Every forward draws fresh purification noise from the module's own generator (EOT sees new samples);
`reseed(seed)` fixes the stream so an evaluation batch is reproducible. `forward_draws(x, draws)` instead
gives every (draw, image) pair its own noise stream, seeded by (seed, draw, position in the batch), so K
EOT draws run as one batched chain and give what K single-draw calls give (batched EOT).
"""
from __future__ import annotations

import hashlib
from typing import List, Optional, Sequence

import torch

from ..resources import SAFETY_FACTOR, available_bytes, unet_activation_bytes_per_sample
from .chain import DifferentiableChain

GRADIENT_MODES = ("autograd", "bpda", "exact", "feedback-cut", "classifier")


class PurifyThenClassify(torch.nn.Module):
    def __init__(
        self,
        pipe,
        gradient: str = "autograd",
        num_inference_steps: int = 100,
        gradient_steps: Optional[int] = None,
        sign_surrogate: str = "ste",
        tau: float = 0.05,
        checkpoint_steps: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if gradient not in GRADIENT_MODES:
            raise ValueError(f"gradient must be one of {GRADIENT_MODES}, got {gradient!r}")
        if pipe.classifier is None:
            raise ValueError("the pipeline needs a classifier component to be attacked")
        self.unet, self.classifier = pipe.unet, pipe.classifier  # registered: attack libraries read the device
        self.pipe, self.gradient = pipe, gradient
        self.num_inference_steps = num_inference_steps
        self.gradient_steps = gradient_steps or num_inference_steps
        self.generator = torch.Generator(device=pipe.device).manual_seed(seed)
        self.seed = seed
        # how an autograd/exact/feedback-cut forward runs each step (bpda and classifier need no chain)
        self.chain = (DifferentiableChain(checkpoint_steps=checkpoint_steps) if gradient == "autograd" else
                      DifferentiableChain(sign_surrogate=sign_surrogate, surrogate_tau=tau, checkpoint_steps=checkpoint_steps,
                                          guidance_feedback=gradient == "exact"))

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))
        self.seed = int(seed)

    def purify(self, x: torch.Tensor, chain: Optional[DifferentiableChain] = None, steps: Optional[int] = None,
               generator=None) -> torch.Tensor:
        """Purified images (B, C, H, W); with `chain`, differentiable w.r.t. `x` (`pipe(..., chain=chain)`)."""
        return self.pipe(x, num_inference_steps=steps or self.num_inference_steps, generator=generator or self.generator,
                         output_type="pt", chain=chain).images

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        wants_grad = torch.is_grad_enabled() and x.requires_grad
        if not wants_grad:
            with torch.no_grad():
                return self.classifier(self.purify(x, generator=generator))
        if self.gradient == "classifier":
            return self.classifier(x)
        if self.gradient == "bpda":
            with torch.no_grad():
                purified = self.purify(x, generator=generator)
            return self.classifier(x + (purified - x).detach())  # identity backward
        steps = self.num_inference_steps if self.gradient == "autograd" else self.gradient_steps
        return self.classifier(self.purify(x, chain=self.chain, steps=steps, generator=generator))

    def forward_draws(self, x: torch.Tensor, draws: Sequence[int]) -> torch.Tensor:
        """Logits of `len(draws)` purifications of each image in one batch: (len(draws) * B, classes),
        draw-major. Each (draw, image) pair has its own noise stream, so the result does not depend on
        how draws are grouped into calls (up to float rounding)."""
        return self(x.repeat(len(draws), *[1] * (x.ndim - 1)), generator=self.stream_generators(draws, len(x)))

    def stream_generators(self, draws: Sequence[int], batch: int) -> List[torch.Generator]:
        def seed(draw, i):
            return int(hashlib.sha256(f"{self.seed}/{draw}/{i}".encode()).hexdigest()[:15], 16)

        return [torch.Generator(device=self.pipe.device).manual_seed(seed(d, i)) for d in draws for i in range(batch)]

    def max_draws_per_forward(self, x: torch.Tensor, limit: int, memory_fraction: float = 0.5) -> int:
        """The most EOT draws of batch `x` one chain can hold within `memory_fraction` of the free memory
        (the pipeline's own estimate of the UNet activations a step keeps)."""
        if self.gradient in ("classifier", "bpda"):
            return limit  # no graph through the purifier: memory is one purification step per image
        steps = self.num_inference_steps if self.gradient == "autograd" else self.gradient_steps
        per_draw = (unet_activation_bytes_per_sample(self.unet, x.shape[-2], x.shape[-1]) * len(x)
                    * self.chain.graph_steps(steps) * SAFETY_FACTOR)
        return int(max(1, min(limit, available_bytes(x.device) * memory_fraction // max(per_draw, 1))))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, votes: int = 1) -> torch.Tensor:
        """Labels from `votes` independent purifications: (votes, B)."""
        return torch.stack([self.classifier(self.purify(x)).argmax(1) for _ in range(votes)])


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d CE(model(x), y) / dx per sample (the attack's view of the loss surface)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x, allow_unused=True, materialize_grads=True)
    return grad.detach()


def gradient_diagnostics(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Mean per-sample L1 norm of the input gradient and the fraction of exactly-zero gradients."""
    from .pgd_eot import gradient_norms

    return gradient_norms(input_gradient(model, x, y))
