"""Attacks on a purify-then-classify defense, one per file, created by name (timm-style registry).

Every attack is `attack = create_attack(name, pipe, eps=..., norm=..., **params)`, then
`x_adv = attack(x, y)` with x in [0, 1]; `attack.diagnostics` holds its gradient diagnostics.
"""
from __future__ import annotations

import inspect

from .autoattack import AutoAttackAdapter
from .classifier_pgd import ClassifierPGD
from .cw import CWL2
from .defense import GRADIENT_MODES, PurifyThenClassify, gradient_diagnostics, input_gradient
from .pgd_eot import PGDEOT
from .square import Square

# name -> (attack class, gradient mode of the defense it attacks, fixed attack arguments)
ATTACKS = {
    "pgd-classifier": (ClassifierPGD, "classifier", {}),
    "autoattack-standard": (AutoAttackAdapter, "autograd", {"version": "standard"}),
    "autoattack-rand": (AutoAttackAdapter, "autograd", {"version": "rand"}),
    "pgd-eot": (PGDEOT, "autograd", {}),
    "bpda-eot": (PGDEOT, "bpda", {}),
    "exact-pgd-eot": (PGDEOT, "exact", {}),
    "square": (Square, "autograd", {}),
    "cw-l2": (CWL2, "bpda", {}),
}
DEFENSE_OPTIONS = ("num_inference_steps", "gradient_steps", "sign_surrogate", "tau", "checkpoint_steps", "gradient",
                   "guidance_feedback")


def create_attack(name: str, pipe, eps: float, norm: str = "Linf", seed: int = 0, **params):
    """Build attack `name` against `pipe` (a pipeline with a classifier). Unknown names/params raise."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {sorted(ATTACKS)}")
    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    cls, gradient, fixed = ATTACKS[name]
    defense_kw = {k: params.pop(k) for k in list(params) if k in DEFENSE_OPTIONS}
    defense_kw.setdefault("gradient", gradient)
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "eps", "norm", "seed"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"attack {name!r} got unknown parameters {sorted(unknown)}; it takes {sorted(allowed | set(DEFENSE_OPTIONS))}")
    defense = PurifyThenClassify(pipe, seed=seed, **defense_kw)
    kwargs = {**fixed, **params, "eps": eps, "norm": norm}
    if "seed" in inspect.signature(cls.__init__).parameters:
        kwargs["seed"] = seed
    attack = cls(defense, **kwargs)
    attack.defense, attack.name = defense, name
    return attack


def bpda_attack(pipe, images01, labels, eps, steps=10, eot=1, num_inference_steps=100, generator=None, norm="Linf"):
    """BPDA+EOT PGD against `pipe` (convenience for demos): adversarial images in [0, 1]."""
    seed = int(torch_seed(generator))
    attack = create_attack("bpda-eot", pipe, eps=eps, norm=norm, steps=steps, eot=eot,
                           num_inference_steps=num_inference_steps, seed=seed)
    return attack(images01, labels)


def torch_seed(generator) -> int:
    return 0 if generator is None else int(generator.initial_seed()) % (2**31)


__all__ = ["ATTACKS", "GRADIENT_MODES", "PurifyThenClassify", "bpda_attack", "create_attack",
           "gradient_diagnostics", "input_gradient"]
