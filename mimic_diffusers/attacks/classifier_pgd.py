"""PGD on the bare classifier (torchattacks), then purification: the NON-adaptive attack of the demo.
It ignores the defense entirely, so its numbers are an upper bound, never a robustness claim."""
from __future__ import annotations

import torch


class ClassifierPGD:
    def __init__(self, model, eps: float, norm: str = "Linf", steps: int = 40, step_size: float = None, seed: int = 0):
        import torchattacks

        classifier = model.classifier if hasattr(model, "classifier") else model
        alpha = step_size if step_size is not None else 2.5 * eps / steps
        cls = torchattacks.PGD if norm == "Linf" else torchattacks.PGDL2
        self.attack = cls(classifier, eps=eps, alpha=alpha, steps=steps, random_start=True)
        self.diagnostics = {"adaptive": False}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.attack(x, y).detach()
