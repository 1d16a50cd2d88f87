"""The frontier study's pages, the README's finding (the shipped default against DiffPure) and the plot."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from mimic_diffusers.defaults import shipped_pipeline_path
from mimic_diffusers.evaluation import EvalConfig
from mimic_diffusers.evaluation.compare import FLAT_DROP
from mimic_diffusers.evaluation.statistics import compare_paired

from ..frontier import POINTS
from ..frontier_plot import plot
from ..frontier_report import (
    BUDGET_CHECK,
    CONFIRM,
    CONFIRM_4X,
    FINALISTS,
    RULES,
    STUDY,
    analyze,
    per_sample,
    standing,
    stored_points,
)
from .common import ROOT, rel, render

PAPER_DIFFPURE = "diffpure-t0.1"  # DiffPure at the t* the MimicDiffusion paper compares with
CONFIRM_STEP = 32  # images a confirmation grows by, point after point (`studies.frontier --step`)
SOURCES = [
    f"the stores of `{STUDY}`, `{FINALISTS}`, `{BUDGET_CHECK}`, "
    + ", ".join(f"`{c}`" for c in (*CONFIRM, *CONFIRM_4X))
]


@lru_cache(maxsize=None)
def study() -> dict:
    return analyze()


def shipped_point() -> str:
    """The frontier point whose options are the shipped pipeline's guidance settings."""
    with open(os.path.join(shipped_pipeline_path(), "scheduler", "scheduler_config.json")) as f:
        shipped = json.load(f)
    for name, point in POINTS.items():
        window = point.options.get("guidance_window_start", 0.5), point.options.get("guidance_window_end", 0.2)
        if point.method == "mimic" and window == (shipped["guidance_window_start"], shipped["guidance_window_end"]):
            if all(shipped.get(k) == v for k, v in point.options.items()):
                return name
    raise ValueError("the shipped pipeline's guidance options are no point of studies/frontier.py: add and run it")


def flattened(budgets: str = STUDY) -> dict:
    """{(point, eps): "yes" or "no"} of the numbers measured at the budgets of config `budgets`: "yes" only where
    every budget check of that point and eps against larger budgets flattened."""
    checks = {}
    for c in (c for c in study()["budget_check"] if c["a_config"] == budgets):
        checks.setdefault((c["point"], c["eps"]), []).append(c["flattened"])
    return {key: "yes" if all(flat) else "no" for key, flat in checks.items()}


def values() -> dict:
    s = study()
    return {
        **{k: s[k] for k in ("table", "comparisons", "budget_check", "protocol")},
        "legacy": s["legacy_records"],
        "study_config": STUDY,
        "budget_config": BUDGET_CHECK,
        "flat_drop": FLAT_DROP,
        "rules": list(RULES),
        "flat": flattened(),
        "standing": standing(
            s["table"],
            shipped_point(),
            [p for p, v in POINTS.items() if v.method == "mimic"],
            lambda point, eps: per_sample(s["by_eps"][eps], point, eps, "vote"),
        ),
    }


def wall_times() -> list:
    """Per point: its runs, their summed wall time and the machine, from the store's runs.jsonl."""
    out = []
    for point in sorted({r["point"] for r in study()["table"]}):
        log = os.path.join(ROOT, study()["protocol"].output_dir, point, "runs.jsonl")
        if os.path.isfile(log):
            with open(log) as f:
                runs = [json.loads(line) for line in f if line.strip()]
            minutes = sum(r["wall_s"] for r in runs) / 60
            out.append(dict(point=point, runs=len(runs), minutes=minutes, machine=runs[-1]["machine"], log=rel(log)))
    return out


def frontier() -> str:
    return render("frontier.md.j2", SOURCES, walls=wall_times(), **values())


def frontier_answer() -> str:
    return render("frontier_answer.md.j2", SOURCES, **values())


def finding() -> str:
    """The shipped default against the most robust DiffPure point and DiffPure at the paper's t*, paired."""
    s, shipped, rule = study(), shipped_point(), "vote"
    rows = []
    for eps in sorted({r["eps"] for r in s["table"] if r["point"] == shipped and r["complete"]}):
        done = {r["point"]: r for r in s["table"] if r["complete"] and r["eps"] == eps}
        best = max(
            (r for r in done.values() if r["method"] == "diffpure"), key=lambda r: r[rule]["robust"]["accuracy"]
        )
        a = per_sample(s["by_eps"][eps], shipped, eps, rule)
        for rival in [p for p in dict.fromkeys([best["point"], PAPER_DIFFPURE]) if p in done]:
            c = compare_paired(a, per_sample(s["by_eps"][eps], rival, eps, rule)).to_dict()
            c.update(
                eps=eps, a=shipped, b=rival, b_best=rival == best["point"], a_accuracy=done[shipped][rule]["robust"]
            )
            rows.append({**c, "b_accuracy": done[rival][rule]["robust"]})
    return render(
        "finding.md.j2",
        SOURCES,
        rows=rows,
        confirm=s["confirmation"],
        shipped=shipped,
        paper_point=PAPER_DIFFPURE,
        votes=s["protocol"].votes,
        flat_at={c: flattened(c) for c in CONFIRM},
        **{k: v for k, v in values().items() if k not in ("comparisons",)},
    )


def frontier_commands() -> str:
    """The commands that rerun every point of the study and of its budget check: one command per set of eps
    values the points were run at, the points in the registry's order."""
    s = study()
    ran = {config: set() for config in (STUDY, FINALISTS)}
    for r in (r for r in s["table"] if r["n"]):
        ran[FINALISTS if s["by_eps"][r["eps"]] is not s["by_eps"][s["protocol"].threats[0]["eps"]] else STUDY].add(
            (r["point"], r["eps"])
        )
    ran[BUDGET_CHECK] = {(c["point"], c["eps"]) for c in s["budget_check"] if c["config"] == BUDGET_CHECK}
    commands = []
    for config, pairs in ran.items():
        by_eps = {}
        for point in POINTS:
            eps = tuple(sorted(e for q, e in pairs if q == point))
            if eps:
                by_eps.setdefault(eps, []).append(point)
        flag = "" if config == STUDY else f" --config {config}"
        commands += [(flag, points, eps, None) for eps, points in by_eps.items()]
    # the points grown together, so that a stop anywhere leaves them paired
    for config in (*CONFIRM, *CONFIRM_4X):
        protocol = EvalConfig.from_file(os.path.join(ROOT, config))
        points = stored_points(protocol)
        if points:
            commands.append((f" --config {config}", points, (protocol.threats[0]["eps"],), CONFIRM_STEP))
    return render("frontier_commands.md.j2", ["`studies/frontier.py` (`POINTS`)", *SOURCES], commands=commands)


def frontier_plots() -> dict:
    """{path: PNG bytes}: the study's plot, shown by the docs (so it lives in the docs folder)."""
    return {"docs/img/frontier.png": plot(study()["table"], shipped_point())}
