"""Accuracy with Wilson intervals, worst case over attacks, majority vote: small pure functions."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple:
    """95% Wilson score interval for a binomial proportion (good at 0% and 100%, unlike Wald)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy(correct: Sequence[bool]) -> dict:
    n, k = len(correct), int(sum(bool(c) for c in correct))
    low, high = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "n": n, "correct": k, "ci95": [low, high]}


def majority_vote(votes: List[List[int]]) -> List[Optional[int]]:
    """`votes[k][i]` = label of sample i in purification k -> the most frequent label per sample, or None
    where two labels tie for most votes: a tie names no label, so it is never scored correct (the
    conservative rule; breaking it toward the smaller label would favour small classes)."""
    result = []
    for labels in zip(*votes):
        counts: Dict[int, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        top = max(counts.values())
        winners = [c for c, k in counts.items() if k == top]
        result.append(winners[0] if len(winners) == 1 else None)
    return result


def worst_case(per_attack: Dict[str, List[bool]]) -> List[bool]:
    """A sample is robust only if it survives every attack."""
    columns = list(per_attack.values())
    return [all(col[i] for col in columns) for i in range(len(columns[0]))] if columns else []
