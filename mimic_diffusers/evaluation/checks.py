"""Gradient-masking warnings of a threat's summary. Each check reads the attack's registered type
(`attacks.ATTACKS`: gradient-free, adaptive), never its label, so a relabelled attack is checked alike."""

from __future__ import annotations

from typing import List

from ..attacks import ATTACKS


def masking_warnings(attacks: dict, cumulative: bool = False) -> List[str]:
    """`attacks`: label -> summary entry (`name`, `accuracy`, `zero_grad_fraction`) of one threat.
    `cumulative`: the accuracies are a cascade's (robust after each attack and all before it), which
    cannot compare two attacks: only the zero-gradient check runs."""
    warnings = []
    for label, a in attacks.items():
        if (
            a["zero_grad_fraction"] is not None
            and a["zero_grad_fraction"] > 0.5
            and not ATTACKS[a["name"]].gradient_free
        ):
            warnings.append(
                f"{label}: {a['zero_grad_fraction']:.0%} of samples had an exactly zero input gradient: "
                "this attack measured nothing (gradient masking)"
            )
    # A gradient-free attack that beats an adaptive gradient attack shows that attack's gradient is masked
    # (or its budget too small). A non-adaptive attack ignores the purifier, so losing says nothing of masking.
    free = [a["accuracy"] for a in attacks.values() if ATTACKS[a["name"]].gradient_free and not cumulative]
    for label, a in attacks.items():
        entry = ATTACKS[a["name"]]
        if not entry.gradient_free and entry.adaptive and free and min(free) < a["accuracy"]:
            warnings.append(
                f"gradient-free attack beats {label} ({min(free):.1%} < {a['accuracy']:.1%}): "
                f"{label}'s gradient is masked or the attack is too weak"
            )
    return warnings
