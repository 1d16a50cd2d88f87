"""Paired statistics for robustness claims: two settings (or two budgets) scored on the SAME images.

Only the discordant images carry information: `a_only` (robust under A, broken under B) and `b_only`.
The test is the exact McNemar test; the difference in robust accuracy gets Newcombe's score interval for
paired proportions (1998, method 10); the power statement is the smallest difference the study could
detect (Connor 1987). Facts and references: `shared/notes/statistics.md` in the development notes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Hashable

from ..metrics import wilson_interval

ALPHA, POWER = 0.05, 0.8
Z_ALPHA, Z_POWER = 1.959964, 0.841621  # two-sided 5% and one-sided 80% normal quantiles

# The three answers a paired comparison can give (a fixed vocabulary for tables, not composed prose).
VERDICTS = ("A better", "B better", "no difference found")


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under H0 `a_only` ~ Binomial(a_only + b_only, 1/2) (McNemar 1947)."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)


def paired_difference_ci(both: int, a_only: int, b_only: int, neither: int, z: float = Z_ALPHA) -> tuple:
    """95% interval of acc(A) - acc(B) on paired binary outcomes (Newcombe 1998, method 10: Wilson score
    intervals of both margins, combined with the phi correlation of the 2x2 table)."""
    n = both + a_only + b_only + neither
    if n == 0:
        return (float("nan"), float("nan"))
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    (l1, u1), (l2, u2) = wilson_interval(both + a_only, n, z), wilson_interval(both + b_only, n, z)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    cross = both * neither - a_only * b_only
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, low), min(1.0, high))


def detectable_difference(n: int, discordant: float, z_alpha: float = Z_ALPHA, z_power: float = Z_POWER) -> float:
    """The smallest difference in accuracy a paired study of `n` images detects at two-sided 5% with 80% power,
    given the fraction of discordant images (Connor 1987): n d^2 = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2.
    The discordant fraction is at least d itself (every difference is made of discordant images)."""
    if n <= 0:
        return float("nan")

    def shortfall(d: float) -> float:
        psi = max(discordant, d)
        return (z_alpha * math.sqrt(psi) + z_power * math.sqrt(max(0.0, psi - d * d))) ** 2 - n * d * d

    low, high = 0.0, 1.0
    if shortfall(high) > 0:
        return 1.0  # not even a difference of 100 points is detectable with so few images
    for _ in range(60):  # bisection: shortfall is > 0 below the answer and <= 0 above it
        mid = (low + high) / 2
        low, high = (mid, high) if shortfall(mid) > 0 else (low, mid)
    return high


@dataclass(frozen=True)
class PairedComparison:
    """A against B on the same images: counts, accuracies, paired difference, test and power."""

    n: int
    a_robust: int
    b_robust: int
    a_only: int
    b_only: int
    difference: float  # acc(A) - acc(B)
    ci95: tuple
    p_value: float
    detectable: float  # the smallest difference this study could detect (alpha 5%, power 80%)
    verdict: str  # one of VERDICTS

    def to_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}


# A comparison's cells in a markdown table row (`markdown_cells`), after the columns naming what was compared.
MARKDOWN_COLUMNS = (
    "A robust | B robust | A - B, points [95% CI] | A only / B only | exact McNemar p | answer | detectable"
)


def markdown_cells(c: dict) -> str:
    """The cells of `MARKDOWN_COLUMNS` for a comparison (`PairedComparison.to_dict()`), points to one decimal."""
    low, high = (100 * x for x in c["ci95"])
    return (
        f"{c['a_robust']} | {c['b_robust']} | {100 * c['difference']:+.1f} [{low:+.1f}, {high:+.1f}] | "
        f"{c['a_only']} / {c['b_only']} | {c['p_value']:.2g} | {c['verdict']} | {100 * c['detectable']:.0f}"
    )


def compare_paired(a: Dict[Hashable, bool], b: Dict[Hashable, bool], alpha: float = ALPHA) -> PairedComparison:
    """Compare per-image outcomes {image id: robust} of A and B, which must cover the same images.

    Args:
        a (`dict`): image id -> robust under setting A.
        b (`dict`): image id -> robust under setting B (the same ids).
        alpha (`float`): the two-sided level of the exact McNemar test.
    Returns:
        `PairedComparison`: "A better" or "B better" when the test rejects at `alpha`, else "no difference found",
        with the smallest difference the study could have detected.
    Example:
        >>> c = compare_paired({0: True, 1: True, 2: False}, {0: True, 1: False, 2: False})
        >>> c.a_only, c.b_only, c.verdict
        (1, 0, 'no difference found')
    """
    if set(a) != set(b):
        raise ValueError(
            f"a and b must hold the same image ids: {len(set(a) - set(b))} only in a, {len(set(b) - set(a))} only in b"
        )
    both = sum(a[i] and b[i] for i in a)
    a_only = sum(a[i] and not b[i] for i in a)
    b_only = sum(b[i] and not a[i] for i in a)
    n = len(a)
    p = mcnemar_exact_p(a_only, b_only)
    verdict = VERDICTS[2] if p >= alpha else VERDICTS[0] if a_only > b_only else VERDICTS[1]
    return PairedComparison(
        n=n,
        a_robust=both + a_only,
        b_robust=both + b_only,
        a_only=a_only,
        b_only=b_only,
        difference=(a_only - b_only) / n if n else float("nan"),
        ci95=paired_difference_ci(both, a_only, b_only, n - both - a_only - b_only),
        p_value=p,
        detectable=detectable_difference(n, (a_only + b_only) / n if n else 0.0),
        verdict=verdict,
    )
