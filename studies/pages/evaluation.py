"""Pages of the evaluation reports: one report, a budget curve and the eps sweep, from their stores."""

from __future__ import annotations

from .common import page


def eval_report(folder: str) -> str:
    return page("eval_report.md.j2", f"{folder}/summary.json", meta=f"{folder}/run.json")


def curve(folder: str) -> str:
    """One compact row per attack run: iterations, EOT, step size, accuracy under each rule, gradient, time."""
    return page("curve.md.j2", f"{folder}/summary.json", meta=f"{folder}/run.json")


def eps_sweep() -> str:
    return page("eps_sweep.md.j2", "eval-mnist-eps-sweep/summary.json", meta="eval-mnist-eps-sweep/run.json")
