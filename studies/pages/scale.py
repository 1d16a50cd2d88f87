"""The page of the full-size cost measurements and the projection of the paper's protocol."""

from __future__ import annotations

from .common import page


def cost_at_scale() -> str:
    return page("cost_at_scale.md.j2", "cost-at-scale.json")
