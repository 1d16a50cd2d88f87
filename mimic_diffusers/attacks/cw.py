"""Carlini & Wagner l_2 (torchattacks) on the defended model; its gradient mode decides what it sees."""
from __future__ import annotations

import torch


class CWL2:
    def __init__(self, model, eps: float = None, norm: str = "L2", c: float = 1.0, kappa: float = 0.0,
                 steps: int = 50, lr: float = 0.01):
        import torchattacks

        if norm != "L2":
            raise ValueError("cw-l2 is an l_2 attack: use norm='L2'")
        self.attack = torchattacks.CW(model, c=c, kappa=kappa, steps=steps, lr=lr)
        self.eps, self.diagnostics = eps, {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        adv = self.attack(x, y).detach()
        if self.eps is not None:  # C&W is unbounded: count only perturbations inside the l_2 budget
            delta = adv - x
            norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            adv = torch.where(norms <= self.eps, adv, x)
        return adv
