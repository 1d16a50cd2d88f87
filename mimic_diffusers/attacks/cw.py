"""Carlini & Wagner l_2 attack (Carlini & Wagner 2017, "Towards Evaluating the Robustness of Neural Networks").

Written here rather than taken from torchattacks, whose pin of requests~=2.25.1 downgraded users'
requests/urllib3 to vulnerable releases. Untargeted, fixed constant c (no binary search over c).
"""

from __future__ import annotations

import torch

from .pgd_eot import margin


class CWL2:
    def __init__(
        self,
        model,
        eps: float = None,
        norm: str = "L2",
        c: float = 1.0,
        kappa: float = 0.0,
        steps: int = 50,
        lr: float = 0.01,
    ):
        if norm != "L2":
            raise ValueError("cw-l2 is an l_2 attack: use norm='L2'")
        self.model, self.eps, self.c, self.kappa, self.steps, self.lr = model, eps, c, kappa, steps, lr
        self.diagnostics = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        # tanh change of variables: every w maps into [0, 1], so Adam needs no clipping or projection
        w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        best = x.clone()  # a sample never misclassified keeps its clean input
        best_l2 = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
        for _ in range(self.steps):
            with torch.enable_grad():  # the evaluation may call attacks under no_grad
                adv = (torch.tanh(w) + 1) / 2
                l2 = (adv - x).flatten(1).pow(2).sum(1)
                logits = self.model(adv)
                # f = max(Z_y - max_{i!=y} Z_i, -kappa): pushes the margin below -kappa, then stops pushing
                f = margin(logits, y).clamp(min=-self.kappa)
                # a sum of per-sample terms: each sample's gradient (and Adam's per-element state) ignores the batch
                loss = (l2 + self.c * f).sum()
                opt.zero_grad()
                loss.backward()
            with torch.no_grad():  # keep the smallest-l2 adversarial iterate seen (the one just evaluated)
                better = (margin(logits.detach(), y) < -self.kappa) & (l2 < best_l2)  # success with confidence kappa
                best_l2 = torch.where(better, l2, best_l2)
                best[better] = adv[better]
            opt.step()
        adv = best.detach()
        if self.eps is not None:  # C&W is unbounded: count only perturbations inside the l_2 budget
            norms = (adv - x).flatten(1).norm(dim=1).view(-1, *[1] * (x.ndim - 1))
            adv = torch.where(norms <= self.eps, adv, x)
        return adv.clamp(0, 1)
