"""Two evaluated settings compared on the same images: each store's worst case per sample, paired (exact
McNemar test, Newcombe's interval, the smallest detectable difference; see `statistics`)."""

from __future__ import annotations

from typing import List

from . import store
from .config import EvalConfig, threat_key
from .statistics import PairedComparison, compare_paired
from .summary import RULES, worst_case_samples

# the decision rules by their short names: the first purification, the majority of K, all K
RULE_NAMES = {"first": "correct", "vote": "vote_correct", "all": "all_correct"}
FLAT_DROP = 0.02  # the largest drop in robust accuracy at a larger budget that still counts as flattened


def compare_stores(a: EvalConfig, b: EvalConfig, eps: float, rule: str = "vote") -> PairedComparison:
    """Setting A against setting B at one eps, paired on the images both stores hold under every attack.

    Args:
        a (`EvalConfig`): the first evaluation (its store is `a.output_dir`).
        b (`EvalConfig`): the second, on the same images (same data set, split and samples).
        eps (`float`): the threat's eps; both configs must have it.
        rule (`str`): "first" (the first purification), "vote" (the majority of K) or "all" (all K).
    Returns:
        `PairedComparison`: the worst case per sample of A against that of B.
    Example:
        >>> c = compare_stores(EvalConfig.from_file("a.yaml"), EvalConfig.from_file("b.yaml"), eps=0.3)
        >>> c.verdict, c.difference, c.ci95, c.detectable
    """
    if rule not in RULE_NAMES:
        raise ValueError(f"rule must be one of {sorted(RULE_NAMES)}, got {rule!r}")
    samples = []
    for name, config in (("a", a), ("b", b)):
        # records made under other settings than the config says are refused (the pipeline is not loaded)
        store.check_header(config.output_dir, store.expected_header(config, None))
        threat = next((t for t in config.threats if abs(t["eps"] - eps) < 1e-9), None)
        if threat is None:
            raise ValueError(f"{name}: no threat with eps {eps:g} in {[threat_key(t) for t in config.threats]}")
        samples.append(worst_case_samples(config, threat, RULE_NAMES[rule]))
    return compare_paired(*samples)


def budget_flattened(comparisons: List[PairedComparison], max_drop: float = FLAT_DROP) -> bool:
    """A budget has flattened when, under every rule, the paired test finds no difference between it (A) and a
    larger budget (B) and robust accuracy drops by at most `max_drop` at the larger budget."""
    return all(c.verdict == "no difference found" and c.difference <= max_drop for c in comparisons)


assert set(RULE_NAMES.values()) == set(RULES)  # every rule of the metric definition has a short name
