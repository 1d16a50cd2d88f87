"""Which fragment of docs/results/ each page function writes, and the committed evaluation reports."""

from __future__ import annotations

import inspect
import json
import os
from functools import partial

from mimic_diffusers import PRESETS, MimicDiffusionScheduler
from mimic_diffusers.attacks import ATTACKS, DEFENSE_OPTIONS
from mimic_diffusers.evaluation import EvalConfig, read_records, summarize
from mimic_diffusers.reports import markdown_table
from mimic_diffusers.scheduling_mimic import OPTION_DOCS

from .ablation import baselines, table5
from .common import RESULTS, ROOT, load, page, render
from .frontier_study import SOURCES, finding, frontier, frontier_answer, frontier_commands, shipped_point, study


def report(template: str, folder: str) -> str:
    """An evaluation report (`eval_report.md.j2`) or a budget curve (`curve.md.j2`) of a report folder."""
    return page(template, f"{folder}/summary.json", meta=f"{folder}/run.json")


def training() -> str:
    """The trained default's bars: the classifier, the UNet's samples and the shipped point's clean accuracy."""
    shipped = next(r for r in study()["table"] if r["point"] == shipped_point() and r["complete"])
    sources = ["`benchmarks/results/mnist-mimic-build.json`", *SOURCES]
    return render("training.md.j2", sources, d=load(os.path.join(RESULTS, "mnist-mimic-build.json")), shipped=shipped)


def registries() -> dict:
    """The pages of the library's registries: attacks, presets and scheduler options."""
    defaults = inspect.signature(MimicDiffusionScheduler.__init__).parameters
    sources = ["`mimic_diffusers.attacks.ATTACKS`", "`mimic_diffusers.attacks.DEFENSE_OPTIONS`"]
    return {
        "attacks.md": partial(
            render, "attacks.md.j2", sources, attacks=sorted(ATTACKS.items()), options=DEFENSE_OPTIONS
        ),
        "presets.md": partial(render, "presets.md.j2", ["`mimic_diffusers.PRESETS`"], presets=PRESETS),
        "options.md": partial(
            render,
            "options.md.j2",
            ["`OPTION_DOCS` in `mimic_diffusers/scheduling_mimic.py`"],
            docs=OPTION_DOCS,
            defaults=defaults,
        ),
    }


FRAGMENTS = {
    "_finding.md": finding,
    "mnist-default.md": partial(report, "eval_report.md.j2", "eval-mnist-default"),
    "tuned-bpda-256.md": partial(report, "eval_report.md.j2", "eval-mnist-tuned-bpda-256"),
    "worst-case-64.md": partial(report, "eval_report.md.j2", "eval-mnist-worst-case-64"),
    "eot-curve.md": partial(report, "curve.md.j2", "eval-mnist-feedback-cut-eot-curve"),
    "bpda-budget-curve.md": partial(report, "curve.md.j2", "eval-mnist-bpda-budget-curve"),
    "step-size-curve.md": partial(report, "curve.md.j2", "eval-mnist-step-size-curve"),
    "eps-sweep.md": partial(report, "eps_sweep.md.j2", "eval-mnist-eps-sweep"),
    "baselines.md": baselines,
    "table5.md": table5,
    **registries(),
    "fewest-steps.md": partial(page, "fewest_steps.md.j2", "fewest-steps.json"),
    "bench.md": partial(page, "bench.md.j2", "bench-cpu.json"),
    "bench-speedups.md": partial(page, "bench_speedups.md.j2", "bench-cpu-speedups.json"),
    "attack-study.md": partial(page, "attack_study.md.j2", "exact-attack-study-t100.json"),
    "gradient-diagnostics.md": partial(page, "gradient_diagnostics.md.j2", "exact-gradient-diagnostics.json"),
    "l2-attack-tuning.md": partial(
        page, "l2_tuning.md.j2", "attack-tuning-l2-long-window.json", "attack-tuning-l2-long-window-budget.json"
    ),
    "training.md": training,
    "cost-at-scale.md": partial(page, "cost_at_scale.md.j2", "cost-at-scale.json"),
    "frontier.md": frontier,
    "_frontier_answer.md": frontier_answer,
    "_frontier_commands.md": frontier_commands,
}

# the configs of the earlier default's store (`output_dir`), each with its committed report (`report_dir`)
REPORT_CONFIGS = (
    "default",
    "bpda-budget-curve",
    "feedback-cut-eot-curve",
    "step-size-curve",
    "tuned-bpda-256",
    "worst-case-64",
)


def evaluation_reports() -> dict:
    """{path: text} of each config's committed summary.json and results.md, summarized from its store exactly
    as `mimic-diffusers evaluate --config CONFIG --report-only` writes them."""
    out = {}
    for name in REPORT_CONFIGS:
        config = EvalConfig.from_file(os.path.join(ROOT, "configs", f"mnist-{name}.yaml"))
        summary = summarize(read_records(os.path.join(ROOT, config.output_dir)), config)
        folder = config.report_dir or config.output_dir
        out[f"{folder}/summary.json"] = json.dumps(summary, indent=1)
        out[f"{folder}/results.md"] = markdown_table(summary)
    return out
