"""Square Attack (pyautoattack): gradient-free, score based. If it beats a gradient attack, that
gradient attack was masked or weak."""
from __future__ import annotations

import torch

from .rng import private_global_rng


class Square:
    def __init__(self, model, eps: float, norm: str = "Linf", n_queries: int = 1000, p_init: float = 0.8, seed: int = 0):
        from pyautoattack.square import SquareAttack

        device = next(model.parameters()).device
        self.attack = SquareAttack(model, norm=norm, n_queries=n_queries, eps=eps, p_init=p_init, n_restarts=1,
                                   seed=seed, verbose=False, device=device, resc_schedule=False)
        self.diagnostics = {"gradient_free": True}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), private_global_rng(x.device):  # Square reseeds the global RNG from `seed`
            return self.attack.perturb(x, y).detach()
