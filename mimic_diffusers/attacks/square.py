"""Square Attack (pyautoattack): gradient-free, score based. If it beats a gradient attack, that
gradient attack was masked or weak.

Against a randomized defense (every purification draws new noise), pyautoattack's Square judges every
query on ONE draw: a sample that one draw misclassifies is never attacked, a candidate is accepted on one
lucky draw, and a perturbation is kept only if one final draw misclassifies it (else the clean input comes
back). With `eot > 1` every query is instead the mean logits of `eot` fresh purifications, so a candidate
is accepted only when the mean margin says so, and the best point found (lowest mean margin) is returned
for every sample rather than the clean input. `eot=1` runs pyautoattack's Square unchanged.
"""

from __future__ import annotations

import torch

from .rng import private_global_rng


class MeanOverDraws(torch.nn.Module):
    r"""A model whose forward is the mean logits of `eot` independent forwards of a randomized `model`.

    Args:
        model (`torch.nn.Module`): a randomized classifier (new noise on every forward), e.g. `PurifyThenClassify`.
        eot (`int`): draws averaged per query.

    Example:
        >>> averaged = MeanOverDraws(defense, eot=4)
        >>> logits = averaged(x)  # (B, classes), mean over 4 purifications of each image
    """

    def __init__(self, model: torch.nn.Module, eot: int):
        super().__init__()
        self.model, self.eot, self.draws = model, eot, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "forward_draws"):  # a defense: all draws in one batched purification
            draws = range(self.draws, self.draws + self.eot)
            self.draws += self.eot
            return self.model.forward_draws(x, draws).view(self.eot, len(x), -1).mean(0)
        return torch.stack([self.model(x) for _ in range(self.eot)]).mean(0)


class Square:
    r"""Square Attack on `model`, optionally judged on the mean of `eot` draws of a randomized defense.

    Args:
        model (`torch.nn.Module`): the defended classifier on [0, 1] inputs.
        eps (`float`): the perturbation budget.
        norm (`str`, defaults to "Linf"): "Linf" or "L2".
        n_queries (`int`, defaults to 1000): Square iterations (each costs `eot` forwards).
        p_init (`float`, defaults to 0.8): initial fraction of pixels a square covers.
        eot (`int`, defaults to 1): purifications averaged per query. 1 is pyautoattack's Square, weak
            against a randomized defense (the registry says so); > 1 is draw-aware.
        seed (`int`, defaults to 0): seeds the squares and the random start.
    """

    def __init__(
        self,
        model,
        eps: float,
        norm: str = "Linf",
        n_queries: int = 1000,
        p_init: float = 0.8,
        eot: int = 1,
        seed: int = 0,
    ):
        from pyautoattack.square import SquareAttack

        if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
            raise ValueError(f"eot must be an integer >= 1 (purifications averaged per query), got {eot!r}")
        device = next(model.parameters()).device
        self.eot, self.seed = eot, seed
        self.model = model if eot == 1 else MeanOverDraws(model, eot)
        self.attack = SquareAttack(
            self.model,
            norm=norm,
            n_queries=n_queries,
            eps=eps,
            p_init=p_init,
            n_restarts=1,
            seed=seed,
            verbose=False,
            device=device,
            resc_schedule=False,
        )
        # `eot` goes into every record's diagnostics, so records of the single-draw Square stay distinguishable
        self.diagnostics = {"gradient_free": True, "eot": eot}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), private_global_rng(x.device):  # Square reseeds the global RNG from `seed`
            if self.eot == 1:
                return self.attack.perturb(x, y).detach()
            # perturb() would filter and keep points on single checks; the search itself, on mean logits,
            # attacks every sample still (mean-)correct and returns its best point for all of them.
            self.attack.init_hyperparam(x)
            torch.random.manual_seed(self.seed)
            torch.cuda.random.manual_seed(self.seed)
            _, x_best = self.attack.attack_single_run(x, y.detach().long().to(x.device))
            return x_best.detach()
