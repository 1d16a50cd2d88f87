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
  on the earlier MNIST default (guidance_scale=16, sr_direction='down') it is the stronger attack
  (docs/attack-choice.md, "The mechanism").
- 'classifier': the gradient of the bare classifier (non-adaptive attacks: purification ignored).
Every forward draws fresh purification noise (EOT sees new samples). Seeded with one integer, the noise
comes from the module's own generator, so it depends on the batch; `forward_draws(x, draws)` gives every
(draw, position in the batch) its own stream (batched EOT). Seeded with one integer PER SAMPLE (`seed=[...]`,
what the evaluation does), every sample has its own streams, keyed by (its seed, purpose, draw): a sample's
result then depends neither on the batch size nor on which other samples share its batch.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import List, Optional, Sequence, Union

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
        seed: Union[int, Sequence[int]] = 0,
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
        self.generator = torch.Generator(device=pipe.device)
        self.reseed(seed)
        # how an autograd/exact/feedback-cut forward runs each step (bpda and classifier need no chain)
        self.chain = (
            DifferentiableChain(checkpoint_steps=checkpoint_steps)
            if gradient == "autograd"
            else DifferentiableChain(
                sign_surrogate=sign_surrogate,
                surrogate_tau=tau,
                checkpoint_steps=checkpoint_steps,
                guidance_feedback=gradient == "exact",
            )
        )

    def reseed(self, seed: Union[int, Sequence[int]]) -> None:
        """One integer: a shared stream. A sequence: one seed per sample of the batches to come (per-sample streams)."""
        shared = isinstance(seed, numbers.Integral)
        self.sample_seeds = None if shared else [int(s) for s in seed]
        self.seed = int(seed) if shared else stream_seed(*self.sample_seeds) % 2**63
        self.generator.manual_seed(self.seed)
        self.calls = 0  # forwards so far: the draw index of a per-sample forward without explicit draws

    def sample_generators(self, purpose: str, draws: Sequence[int], batch: int) -> Optional[List[torch.Generator]]:
        """Per-sample mode: a generator per (draw, sample), draw-major, keyed by (sample seed, purpose, draw);
        None in shared-stream mode. A batch that is not the seeded samples is an error, never a silent mix."""
        if self.sample_seeds is None:
            return None
        if batch != len(self.sample_seeds):
            raise ValueError(
                f"this defense was seeded for {len(self.sample_seeds)} samples (one seed each) but got a "
                f"batch of {batch}: attack the seeded samples together, or reseed it"
            )
        return [
            torch.Generator(device=self.pipe.device).manual_seed(stream_seed(s, purpose, d))
            for d in draws
            for s in self.sample_seeds
        ]

    def purify(
        self, x: torch.Tensor, chain: Optional[DifferentiableChain] = None, steps: Optional[int] = None, generator=None
    ) -> torch.Tensor:
        """Purified images (B, C, H, W); with `chain`, differentiable w.r.t. `x` (`pipe(..., chain=chain)`)."""
        return self.pipe(
            x,
            num_inference_steps=steps or self.num_inference_steps,
            generator=generator or self.generator,
            output_type="pt",
            chain=chain,
        ).images

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        if generator is None and self.sample_seeds is not None:
            generator = self.sample_generators("attack", [self.calls], len(x))
            self.calls += 1
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
        """A generator per (draw, image): per-sample streams when seeded per sample, else keyed by
        (seed, draw, position in the batch)."""
        per_sample = self.sample_generators("attack-draw", draws, batch)
        if per_sample is not None:
            return per_sample
        return [
            torch.Generator(device=self.pipe.device).manual_seed(stream_seed(self.seed, d, i))
            for d in draws
            for i in range(batch)
        ]

    def max_draws_per_forward(self, x: torch.Tensor, limit: int, memory_fraction: float = 0.5) -> int:
        """The most EOT draws of batch `x` one chain can hold within `memory_fraction` of the free memory
        (the pipeline's own estimate of the UNet activations a step keeps)."""
        if self.gradient in ("classifier", "bpda"):
            return limit  # no graph through the purifier: memory is one purification step per image
        steps = self.num_inference_steps if self.gradient == "autograd" else self.gradient_steps
        per_draw = (
            unet_activation_bytes_per_sample(self.unet, x.shape[-2], x.shape[-1])
            * len(x)
            * self.chain.graph_steps(steps)
            * SAFETY_FACTOR
        )
        return int(max(1, min(limit, available_bytes(x.device) * memory_fraction // max(per_draw, 1))))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, votes: int = 1) -> torch.Tensor:
        """Labels from `votes` independent purifications: (votes, B). Per-sample mode draws them from each
        sample's own "predict" streams, apart from any attack's."""
        gens = [self.sample_generators("predict", [k], len(x)) for k in range(votes)]
        return torch.stack([self.classifier(self.purify(x, generator=g)).argmax(1) for g in gens])


def stream_seed(*parts) -> int:
    """A 60-bit seed from any parts (seeds, purposes, draws, ids): independent streams for distinct parts."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:15], 16)


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
