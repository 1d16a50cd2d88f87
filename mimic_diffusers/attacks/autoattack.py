"""AutoAttack (pyautoattack, the reference code) on the defended model.

'standard' with gradient='autograd' is the paper's protocol; 'rand' is APGD-CE/DLR with EOT for
randomized defenses. Budgets (iterations, restarts, EOT, queries) are parameters because on CPU the
published budgets are out of reach for a 100-step purifier; the evaluation records the values used.

Both versions judge success on ONE stochastic forward (`run_standard_evaluation`): a sample that one
purification misclassifies is never attacked, and a sub-attack's output is kept only if one check draw
misclassifies it (else the clean input comes back); 'rand' averages only its gradients over EOT draws. So
against a randomized defense they are weak: the registry marks them (`AttackEntry.single_draw`) and they
are never named the strongest attack.
"""

from __future__ import annotations

import logging

import torch

from .rng import private_global_rng


class AutoAttackAdapter:
    def __init__(
        self,
        model,
        eps: float,
        norm: str = "Linf",
        version: str = "standard",
        n_iter: int = 100,
        eot: int = 20,
        n_queries: int = 5000,
        n_target_classes: int = 9,
        seed: int = 0,
        batch_size: int = 256,
    ):
        from pyautoattack import AutoAttack

        if version not in ("standard", "rand"):
            raise ValueError(f"version must be 'standard' or 'rand', got {version!r}")
        device = next(model.parameters()).device
        self.attack = AutoAttack(model, norm=norm, eps=eps, version=version, device=device, seed=seed)
        self.attack.logger.setLevel(logging.WARNING)
        for apgd in (self.attack.apgd, self.attack.apgd_targeted):
            apgd.n_iter = n_iter
        self.attack.fab.n_iter = n_iter
        self.attack.fab.n_target_classes = self.attack.apgd_targeted.n_target_classes = n_target_classes
        self.attack.square.n_queries = n_queries
        if version == "rand":
            self.attack.apgd.eot_iter = eot
        self.batch_size, self.diagnostics = batch_size, {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from .defense import gradient_diagnostics

        # what AutoAttack's gradient steps see at the clean input (zero => masked, the attack measures nothing)
        self.diagnostics = gradient_diagnostics(self.attack.model, x, y)
        with private_global_rng(x.device):  # each sub-attack reseeds the global RNG from `seed`
            x_adv, _ = self.attack.run_standard_evaluation(x, y, batch_size=self.batch_size)
        return x_adv.detach()
