"""Which fragment of docs/results/ each page function writes, and the committed evaluation reports."""

from __future__ import annotations

import json
import os

from mimic_diffusers.evaluation import EvalConfig, read_records, summarize
from mimic_diffusers.reports import markdown_table

from .ablation import baselines, table5
from .common import RESULTS, ROOT, rel
from .evaluation import curve, eps_sweep, eval_report
from .frontier_study import finding, frontier, frontier_answer, frontier_commands
from .registries import attacks, options, presets
from .scale import cost_at_scale
from .studies import attack_study, bench, bench_speedups, fewest_steps, gradient_diagnostics, l2_tuning, training

FRAGMENTS = {
    "_finding.md": finding,
    "mnist-default.md": lambda: eval_report("eval-mnist-default"),
    "tuned-bpda-256.md": lambda: eval_report("eval-mnist-tuned-bpda-256"),
    "worst-case-64.md": lambda: eval_report("eval-mnist-worst-case-64"),
    "eot-curve.md": lambda: curve("eval-mnist-feedback-cut-eot-curve"),
    "bpda-budget-curve.md": lambda: curve("eval-mnist-bpda-budget-curve"),
    "step-size-curve.md": lambda: curve("eval-mnist-step-size-curve"),
    "eps-sweep.md": eps_sweep,
    "baselines.md": baselines,
    "table5.md": table5,
    "attacks.md": attacks,
    "presets.md": presets,
    "options.md": options,
    "fewest-steps.md": fewest_steps,
    "bench.md": bench,
    "bench-speedups.md": bench_speedups,
    "attack-study.md": attack_study,
    "gradient-diagnostics.md": gradient_diagnostics,
    "l2-attack-tuning.md": l2_tuning,
    "training.md": training,
    "cost-at-scale.md": cost_at_scale,
    "frontier.md": frontier,
    "_frontier_answer.md": frontier_answer,
    "_frontier_commands.md": frontier_commands,
}

# report folder -> the config whose view of the earlier default's store it summarizes
REPORTS = {
    "eval-mnist-default": "configs/mnist-default.yaml",
    "eval-mnist-bpda-budget-curve": "configs/mnist-bpda-budget-curve.yaml",
    "eval-mnist-feedback-cut-eot-curve": "configs/mnist-feedback-cut-eot-curve.yaml",
    "eval-mnist-step-size-curve": "configs/mnist-step-size-curve.yaml",
    "eval-mnist-tuned-bpda-256": "configs/mnist-tuned-bpda-256.yaml",
    "eval-mnist-worst-case-64": "configs/mnist-worst-case-64.yaml",
}


def evaluation_reports() -> dict:
    """{path: text} of each committed report folder's summary.json and results.md, summarized from its store
    exactly as `mimic-diffusers evaluate --config CONFIG --report-only` would."""
    out, records = {}, read_records(os.path.join(RESULTS, "eval-mnist-default"))
    for folder, config in REPORTS.items():
        summary = summarize(records, EvalConfig.from_file(os.path.join(ROOT, config)))
        out[f"{rel(os.path.join(RESULTS, folder))}/summary.json"] = json.dumps(summary, indent=1)
        out[f"{rel(os.path.join(RESULTS, folder))}/results.md"] = markdown_table(summary)
    return out
