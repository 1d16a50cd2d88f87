"""PGD with Expectation over Transformation (l_inf and l_2), keeping each sample's best iterate.

Written here rather than taken from torchattacks because the evaluation needs, for a stochastic
defense: gradient averaging over EOT samples for both norms, the per-sample best (lowest-margin)
iterate rather than the last one, and the gradient diagnostics of every iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .defense import stream_seed

NORMS = ("Linf", "L2")


def check_threat(norm, eps, where: str = "") -> None:
    """Raise ValueError naming `norm` or `eps` unless norm is 'Linf' or 'L2' and eps a number >= 0."""
    if norm not in NORMS:
        raise ValueError(f"{where}norm must be 'Linf' or 'L2', got {norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"{where}eps must be a number >= 0, got {eps!r}")


def gradient_norms(grad: torch.Tensor) -> dict:
    """Mean per-sample L1 norm of an input gradient and the fraction of exactly-zero ones (masking)."""
    norms = grad.flatten(1).abs().sum(1)
    return {"grad_l1_mean": float(norms.mean()), "zero_grad_fraction": float((norms == 0).float().mean())}


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return delta.clamp(-eps, eps)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (delta.ndim - 1))
    return delta * (eps / norms).clamp(max=1.0)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct-class logit minus the best other logit: < 0 means misclassified."""
    correct = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return correct - other.max(1).values


# The loss each iteration ascends: cross-entropy, or minus the margin (Carlini-Wagner), whose gradient
# does not vanish when the softmax saturates on a confidently classified sample.
LOSSES = {
    "ce": lambda logits, y: F.cross_entropy(logits, y, reduction="sum"),
    "margin": lambda logits, y: -margin(logits, y).sum(),
}


class PGDEOT:
    def __init__(
        self,
        model,
        eps: float,
        norm: str = "Linf",
        steps: int = 20,
        step_size: float = None,
        eot: int = 1,
        random_start: bool = True,
        seed: int = 0,
        loss: str = "ce",
        relative_step_size: float = 2.5,
        eot_batch=None,
    ):
        check_threat(norm, eps)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        if steps < 1 or eot < 1:
            raise ValueError(f"need steps >= 1 and eot >= 1, got steps={steps}, eot={eot}")
        self.model, self.eps, self.norm, self.steps, self.eot = model, eps, norm, steps, eot
        if relative_step_size <= 0:
            raise ValueError(f"relative_step_size must be > 0, got {relative_step_size}")
        # the step as a multiple of eps / steps carries one setting across budgets and eps values
        self.step_size = step_size if step_size is not None else relative_step_size * eps / steps
        if not (eot_batch is None or eot_batch == "auto" or (isinstance(eot_batch, int) and eot_batch >= 1)):
            raise ValueError(f"eot_batch must be None, 'auto' or an integer >= 1, got {eot_batch!r}")
        if eot_batch is not None and not hasattr(model, "forward_draws"):
            raise ValueError("eot_batch needs a model with forward_draws (a PurifyThenClassify)")
        self.random_start, self.seed, self.loss = random_start, seed, LOSSES[loss]
        # None: EOT draws one after another from the defense's shared noise stream (what stores made
        # before batched EOT used). An int or 'auto' (most draws that fit half the free memory): draws
        # with a noise stream each, `eot_batch` per batched chain; any value gives the same result.
        self.eot_batch, self.draws = eot_batch, 0
        self.diagnostics = {}

    def _loss_grad(self, x, y):
        """The EOT-mean loss gradient and margin: draws one per call from the defense's shared stream
        (eot_batch None), or `per_call` at a time through `forward_draws` (a stream per draw and image;
        always so for a defense seeded per sample)."""
        batched = self.eot_batch is not None or getattr(self.model, "sample_seeds", None) is not None
        per_call = (
            1
            if self.eot_batch is None
            else self.model.max_draws_per_forward(x, self.eot)
            if self.eot_batch == "auto"
            else min(self.eot_batch, self.eot)
        )
        grad, score = torch.zeros_like(x), torch.zeros(len(x), device=x.device)
        for first in range(0, self.eot, per_call):
            draws = range(self.draws + first, self.draws + min(first + per_call, self.eot))
            xi, ys = x.detach().requires_grad_(True), y.repeat(len(draws))
            with torch.enable_grad():
                logits = self.model.forward_draws(xi, draws) if batched else self.model(xi)
                grad += torch.autograd.grad(self.loss(logits, ys), xi, allow_unused=True, materialize_grads=True)[0]
            score += margin(logits.detach(), ys).view(len(draws), len(x)).sum(0)
        self.draws += self.eot
        return grad / self.eot, score / self.eot

    def _uniform(self, x: torch.Tensor) -> torch.Tensor:
        """U[0, 1) noise shaped like `x` for the random start: one generator per sample when the seed is a
        list (one seed per sample: batch independent), else one for the batch."""
        if isinstance(self.seed, (list, tuple)):
            if len(self.seed) != len(x):
                raise ValueError(f"seed: got {len(self.seed)} per-sample seeds for a batch of {len(x)}")
            gens = [torch.Generator(device=x.device).manual_seed(stream_seed(s, "start")) for s in self.seed]
            return torch.stack([torch.rand(x.shape[1:], generator=g, device=x.device) for g in gens])
        return torch.rand(x.shape, generator=torch.Generator(device=x.device).manual_seed(self.seed), device=x.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.draws = 0
        delta = torch.zeros_like(x)
        if self.random_start and self.eps > 0:
            delta = project((self._uniform(x) * 2 - 1) * self.eps, self.eps, self.norm)
        x_adv = (x + delta).clamp(0, 1)
        best, best_score = x_adv.clone(), torch.full((len(x),), float("inf"), device=x.device)
        log = []
        for _ in range(self.steps):
            grad, score = self._loss_grad(x_adv, y)
            improved = score < best_score
            best[improved], best_score[improved] = x_adv[improved], score[improved]
            log.append(gradient_norms(grad))
            if self.norm == "Linf":
                step = self.step_size * grad.sign()
            else:
                step = self.step_size * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x_adv = (x + project(x_adv + step - x, self.eps, self.norm)).clamp(0, 1)
        _, score = self._loss_grad(x_adv, y)
        improved = score < best_score
        best[improved] = x_adv[improved]
        self.diagnostics = {**log[0], "grad_l1_per_iteration": [d["grad_l1_mean"] for d in log]}
        return best.detach()
