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
    text += frontier_report.markdown(d["table"], d["comparisons"], d["budget_check"], d["protocol"], d["legacy_records"])
    runs = []
    for point in sorted({r["point"] for r in d["table"]}):
        log = os.path.join(RESULTS, "frontier", point, "runs.jsonl")
        if os.path.isfile(log):
            with open(log) as f:
                records = [json.loads(line) for line in f if line.strip()]
            wall = sum(r["wall_s"] for r in records) / 60
            runs.append(f"- `{point}`: {len(records)} run(s), {wall:.0f} min wall on {records[-1]['machine']}:")
            # each run's own command, wall time and note: a store holds runs at several eps
            runs += [f"    - `{r['command']}` ({r['wall_s'] / 60:.0f} min)." + (f" Note: {r['note']}." if r.get("note") else "")
                     for r in records]
    return text + ("\nRuns (from each store's `runs.jsonl`):\n\n" + "\n".join(runs) + "\n" if runs else "")


def frontier_answer() -> str:
    path = os.path.join(RESULTS, "frontier", "frontier.json")
    return header(f"`{rel(path)}` (written by `python benchmarks/frontier_report.py` from the stores)") + load(path)["answer"]
