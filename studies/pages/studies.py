"""Pages of the studies and benchmarks stored as JSON in `benchmarks/results/`, and of the trained default."""

from __future__ import annotations

import os
from functools import partial

from .common import RESULTS, load, page, render
from .frontier_study import SOURCES, shipped_point, study

fewest_steps = partial(page, "fewest_steps.md.j2", "fewest-steps.json")
bench = partial(page, "bench.md.j2", "bench-cpu.json")
bench_speedups = partial(page, "bench_speedups.md.j2", "bench-cpu-speedups.json")
attack_study = partial(page, "attack_study.md.j2", "exact-attack-study-t100.json")
gradient_diagnostics = partial(page, "gradient_diagnostics.md.j2", "exact-gradient-diagnostics.json")
l2_tuning = partial(
    page, "l2_tuning.md.j2", "attack-tuning-l2-long-window.json", "attack-tuning-l2-long-window-budget.json"
)


def training() -> str:
    """The trained default's bars: the classifier, the UNet's samples and the shipped point's clean accuracy."""
    shipped = next(r for r in study()["table"] if r["point"] == shipped_point() and r["complete"])
    sources = ["`benchmarks/results/mnist-mimic-build.json`", *SOURCES]
    return render("training.md.j2", sources, d=load(os.path.join(RESULTS, "mnist-mimic-build.json")), shipped=shipped)
