"""The frontier study's page and the README's answer table, from `frontier.json` and the stores' run logs."""

from __future__ import annotations

import json
import os

from .common import RESULTS, header, load, rel


def frontier() -> str:
    import frontier_report

    path = os.path.join(RESULTS, "frontier", "frontier.json")
    d = load(path)
    text = header(f"`{rel(path)}` (written by `python benchmarks/frontier_report.py` from the stores)")
    text += frontier_report.markdown(
        d["table"], d["comparisons"], d["budget_check"], d["protocol"], d["legacy_records"]
    )
    runs = []
    for point in sorted({r["point"] for r in d["table"]}):
        log = os.path.join(RESULTS, "frontier", point, "runs.jsonl")
        if os.path.isfile(log):
            with open(log) as f:
                records = [json.loads(line) for line in f if line.strip()]
            wall = sum(r["wall_s"] for r in records) / 60
            # the count and the wall time; each run's command and notes (pauses, resumes) stay in the log
            runs.append(f"| `{point}` | {len(records)} | {wall:.0f} | {records[-1]['machine']} | `{rel(log)}` |")
    return text + (
        "\nWall time per point, summed over its runs (each run's command and notes: the store's "
        "`runs.jsonl`):\n\n| point | runs | wall min | machine | run log |\n|---|---|---|---|---|\n"
        + "\n".join(runs)
        + "\n"
        if runs
        else ""
    )


def frontier_commands() -> str:
    """The commands that rerun every point of the study and of its budget check: one command per set of eps
    values the points were run at, the points in the registry's order."""
    from frontier import POINTS
    from frontier_report import BUDGET_CHECK, CONFIGS, STUDY

    path = os.path.join(RESULTS, "frontier", "frontier.json")
    d = load(path)
    text = header(f"`{rel(path)}`", "`benchmarks/frontier.py` (`POINTS`)")
    ran = {
        STUDY: {(r["point"], r["eps"]) for r in d["table"] if r["n"]},
        BUDGET_CHECK: {(c["point"], c["eps"]) for c in d["budget_check"]},
    }
    lines = []
    for folder, pairs in ran.items():
        by_eps = {}
        for point in POINTS:
            eps = tuple(sorted(e for q, e in pairs if q == point))
            if eps:
                by_eps.setdefault(eps, []).append(point)
        config = "" if folder == STUDY else f" --config {CONFIGS[folder]}"
        lines += [
            f"python -m torch.distributed.run --nproc_per_node 2 benchmarks/frontier.py{config} \\\n"
            f"  --points {' '.join(points)} \\\n  --eps {' '.join(f'{e:g}' for e in eps)} --output-dir {folder}"
            for eps, points in by_eps.items()
        ]
    return text + "```bash\n" + "\n".join(lines) + "\npython benchmarks/frontier_report.py\n```\n"


def frontier_answer() -> str:
    path = os.path.join(RESULTS, "frontier", "frontier.json")
    return (
        header(f"`{rel(path)}` (written by `python benchmarks/frontier_report.py` from the stores)")
        + load(path)["answer"]
    )
