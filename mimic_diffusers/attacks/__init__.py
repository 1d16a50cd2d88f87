"""Attacks on a purify-then-classify defense, one per file, created by name (timm-style registry).

Every attack is `attack = create_attack(name, pipe, eps=..., norm=..., seed=..., **params)`, then
`x_adv = attack(x, y)` with x in [0, 1]; `attack.diagnostics` holds its gradient diagnostics. Which
gradient an attack follows is part of its name (`ATTACKS[name].gradient`): no parameter changes it.
Every attack draws its randomness from generators seeded by `seed` alone, never from (or into) torch's
global RNG, so its result does not depend on what ran before it.

Some attacks judge success on ONE stochastic purification (`AttackEntry.single_draw`, see
`weak_against_randomized`): against a randomized defense they skip samples that one draw misclassifies
and keep perturbations on one lucky draw, so they are weak there. What they break still counts (the
evaluation scores every output on its own purifications), but they are never named the strongest attack.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .autoattack import AutoAttackAdapter
from .chain import DifferentiableChain
from .cw import CWL2
from .defense import GRADIENT_MODES, PurifyThenClassify, gradient_diagnostics, input_gradient, stream_seed
from .pgd_eot import PGDEOT, check_threat
from .square import Square


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack: its class, the defense gradient it follows, and its one-line definition."""

    cls: type
    gradient: str
    summary: str
    fixed: Dict = field(default_factory=dict)  # arguments the attack always gets
    defaults: Dict = field(default_factory=dict)  # defaults a config may override
    gradient_free: bool = False  # uses scores only: the check on every gradient attack
    adaptive: bool = True  # False: ignores the purifier (an upper bound, never a robustness claim)
    # False: the attack (library code) queries the defense on subsets of its batch, where per-sample noise
    # streams cannot follow a sample, so the evaluation runs it one sample at a time (batch independent)
    batch_independent: bool = True
    # True: success is judged on one stochastic forward (the initial check, each candidate, the final check), so
    # the attack is weak against a randomized defense and never named the strongest (`weak_against_randomized`)
    single_draw: bool = False
    # the parameter that makes a `single_draw` attack draw-aware when > 1 (mean logits over that many draws)
    draws_param: Optional[str] = None


_SINGLE_DRAW = "judges success on one purification draw, so weak against randomized defenses"
_CHAIN = "PGD-EOT (margin or CE loss) through every purification step, sign(.) given a surrogate derivative"
ATTACKS: Dict[str, AttackEntry] = {
    "pgd-classifier": AttackEntry(
        PGDEOT,
        "classifier",
        "PGD on the bare classifier, then purification (non-adaptive: an upper bound)",
        defaults={"steps": 40},
        adaptive=False,
    ),
    "autoattack-standard": AttackEntry(
        AutoAttackAdapter,
        "autograd",
        f"AutoAttack standard with plain autograd through the purifier (the paper's protocol); {_SINGLE_DRAW}",
        fixed={"version": "standard"},
        batch_independent=False,
        single_draw=True,
    ),
    "autoattack-rand": AttackEntry(
        AutoAttackAdapter,
        "autograd",
        "AutoAttack rand (APGD-CE/DLR with EOT gradients) "
        f"with plain autograd through the purifier; {_SINGLE_DRAW} (EOT averages its "
        "gradients only)",
        fixed={"version": "rand"},
        batch_independent=False,
        single_draw=True,
    ),
    "pgd-eot": AttackEntry(PGDEOT, "autograd", "PGD-EOT with plain autograd through the purifier"),
    "bpda-eot": AttackEntry(
        PGDEOT, "bpda", "PGD-EOT with BPDA: forward purifies, backward is the identity (Athalye et al. 2018)"
    ),
    "exact-pgd-eot": AttackEntry(PGDEOT, "exact", f"{_CHAIN}: the full chain-rule derivative"),
    "feedback-cut-pgd-eot": AttackEntry(
        PGDEOT,
        "feedback-cut",
        f"{_CHAIN}, dropping each guidance term's derivative w.r.t. x_t (keeps d g / d x_adv): not the exact gradient",
    ),
    "square": AttackEntry(
        Square,
        "autograd",
        "Square Attack: gradient-free, score based (Andriushchenko et al. "
        "2020); with `eot` > 1 each query is the mean of `eot` purifications, else it"
        f" {_SINGLE_DRAW}",
        gradient_free=True,
        batch_independent=False,
        single_draw=True,
        draws_param="eot",
    ),
    "cw-l2": AttackEntry(
        CWL2, "bpda", "Carlini-Wagner l2 with BPDA gradients; a perturbation over eps counts as a failed attack"
    ),
}

# Options of the defense (not the attack) each gradient mode accepts.
_STEPS = ("num_inference_steps",)
_CHAIN_OPTIONS = _STEPS + ("gradient_steps", "sign_surrogate", "tau", "checkpoint_steps")
DEFENSE_OPTIONS = {
    "autograd": _STEPS + ("checkpoint_steps",),
    "bpda": _STEPS,
    "classifier": _STEPS,
    "exact": _CHAIN_OPTIONS,
    "feedback-cut": _CHAIN_OPTIONS,
}


def list_attacks(gradient_free: bool = None) -> List[str]:
    """Registered attack names (optionally only the gradient-free ones, or only the others)."""
    return sorted(n for n, e in ATTACKS.items() if gradient_free is None or e.gradient_free == gradient_free)


def get_attack_entry(name: str) -> AttackEntry:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {sorted(ATTACKS)}")
    return ATTACKS[name]


def weak_against_randomized(name: str, params: Optional[dict] = None) -> bool:
    """Whether attack `name`, run with `params` (as stored in a record), judges success on one purification
    draw: then it is weak against a randomized defense and must not be named the strongest attack.

    Args:
        name: a registered attack name.
        params: the attack's parameters; for an attack with a `draws_param`, its value (else the attack's
            default) decides.
    Returns:
        `bool`.
    Example:
        >>> weak_against_randomized("square", {"n_queries": 20}), weak_against_randomized("square", {"eot": 4})
        (True, False)
    """
    entry = get_attack_entry(name)
    if entry.draws_param is None:
        return entry.single_draw
    default = inspect.signature(entry.cls.__init__).parameters[entry.draws_param].default
    draws = {entry.draws_param: default, **entry.defaults, **(params or {})}[entry.draws_param]
    return entry.single_draw and int(draws) <= 1


def create_attack(name: str, pipe, eps: float, norm: str = "Linf", seed: int = 0, **params):
    """Build attack `name` against `pipe` (a pipeline with a classifier). Unknown names/params raise.

    Args:
        name: a registered name (`list_attacks()`).
        pipe: a `MimicDiffusionPipeline` with a classifier component.
        eps: the perturbation budget (>= 0) in [0, 1] pixel units.
        norm: 'Linf' or 'L2'.
        seed: seeds the attack's random start and the defense's purification noise: one integer, or one per
            sample of the batch to attack (per-sample streams: each result independent of the batch).
        params: the attack's own parameters (e.g. steps, eot, step_size, loss) and the defense options its
            gradient accepts (`DEFENSE_OPTIONS[ATTACKS[name].gradient]`, e.g. num_inference_steps, tau).
    Returns:
        A callable `attack(x, y) -> x_adv` with `.diagnostics`, `.defense` and `.name`.
    Example:
        >>> attack = create_attack("feedback-cut-pgd-eot", pipe, eps=0.3, steps=10, eot=2, loss="margin")
        >>> x_adv = attack(images01, labels)
    """
    entry = get_attack_entry(name)
    check_threat(norm, eps)
    moved = {
        "guidance_feedback": "exact-pgd-eot (feedback kept) or feedback-cut-pgd-eot (feedback cut)",
        "gradient": f"an attack name whose gradient you want ({sorted(ATTACKS)})",
    }
    for key in set(params) & set(moved):
        raise ValueError(
            f"attack {name!r}: the parameter {key!r} no longer exists, because an attack's gradient "
            f"is fixed by its name: use {moved[key]}"
        )
    accepted = DEFENSE_OPTIONS[entry.gradient]
    defense_kw = {k: params.pop(k) for k in list(params) if k in accepted}
    signature = inspect.signature(entry.cls.__init__).parameters
    allowed = set(signature) - {"self", "model", "eps", "norm", "seed"} - set(entry.fixed)
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"attack {name!r} got unknown parameters {sorted(unknown)}; it takes "
            f"{sorted(allowed | set(accepted))} (its gradient, {entry.gradient!r}, is fixed by its name)"
        )
    defense = PurifyThenClassify(pipe, gradient=entry.gradient, seed=seed, **defense_kw)
    kwargs = {**entry.defaults, **params, **entry.fixed, "eps": eps, "norm": norm}
    if "seed" in signature:  # one seed per sample reaches an attack that cannot use a list as one integer
        kwargs["seed"] = seed if isinstance(seed, int) or entry.batch_independent else stream_seed(*seed) % 2**31
    attack = entry.cls(defense, **kwargs)
    attack.defense, attack.name = defense, name
    return attack


def bpda_attack(pipe, images01, labels, eps, steps=10, eot=1, num_inference_steps=100, generator=None, norm="Linf"):
    """BPDA+EOT PGD against `pipe` (convenience for demos): adversarial images in [0, 1]."""
    seed = int(torch_seed(generator))
    attack = create_attack(
        "bpda-eot", pipe, eps=eps, norm=norm, steps=steps, eot=eot, num_inference_steps=num_inference_steps, seed=seed
    )
    return attack(images01, labels)


def torch_seed(generator) -> int:
    return 0 if generator is None else int(generator.initial_seed()) % (2**31)


__all__ = [
    "ATTACKS",
    "AttackEntry",
    "DEFENSE_OPTIONS",
    "DifferentiableChain",
    "GRADIENT_MODES",
    "PurifyThenClassify",
    "bpda_attack",
    "create_attack",
    "get_attack_entry",
    "gradient_diagnostics",
    "input_gradient",
    "list_attacks",
    "weak_against_randomized",
]
