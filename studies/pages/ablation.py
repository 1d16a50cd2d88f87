"""Pages of the Table 5 ablation at S = 100 and of the DiffPure and GDMP baselines, from their stores."""

from __future__ import annotations

import dataclasses
import glob
import json
import os

from mimic_diffusers.evaluation import EvalConfig, attack_label, report_store, threat_key

from ..table5 import ROWS, row_config
from .common import RESULTS, ROOT, render, run_meta

DEFAULT = "default (l1-both-window)"
BASELINES = ("diffpure", "gdmp")


def configs() -> dict:
    """{row: its config}: the earlier default on its own store, then every stored row of `studies/table5.py`."""
    base = EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-default.yaml"))
    folder = os.path.join(RESULTS, "table5-t100")
    rows = {r: row_config(base, r, folder) for r in ROWS if os.path.isdir(os.path.join(folder, r))}
    return {DEFAULT: dataclasses.replace(base, output_dir=os.path.join(RESULTS, "eval-mnist-default")), **rows}


def lines(rows: dict, num_samples: int) -> list:
    """Per row and threat, its store summarized on the first N images (a row with fewer is left out rather than
    mix sample sets)."""
    out = []
    for row, config in rows.items():
        config = dataclasses.replace(config, num_samples=num_samples)
        summary = report_store(config, write=False)
        for threat in config.threats:
            key = threat_key(threat)
            t = summary["threats"].get(key)
            if t is not None and t["n"] >= num_samples:
                out.append(dict(row=row, eps=threat["eps"], clean=summary["clean"], t=t, minutes=minutes(config, key)))
    return out


def minutes(config: EvalConfig, key: str) -> float:
    """Seconds of the config's attacks on the slowest shard (process) over the config's batches, in minutes."""
    labels = {attack_label(spec) for spec in config.attacks}  # a store may hold attacks since dropped
    per_shard = []
    for path in glob.glob(os.path.join(config.output_dir, "results.rank*.jsonl")):
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        per_shard.append(
            sum(
                a["seconds"]
                for r in records
                if r["threat"] == key and r["batch"] < config.num_batches
                for name, a in r.get("attacks", {}).items()
                if name in labels
            )
        )
    return max(per_shard, default=0.0) / 60


def runs(rows) -> dict:
    return {row: run_meta(os.path.join(RESULTS, "table5-t100", row, "run.json")) for row in rows if row != DEFAULT}


def table5() -> str:
    stores = ["`benchmarks/results/table5-t100/*/` (stores)", "`benchmarks/results/eval-mnist-default/` (store)"]
    rows = configs()
    sources = stores + ["`benchmarks/results/table5-t100/*/run.json`"]
    return render("table5.md.j2", sources, lines=lines(rows, 64), runs=runs(rows))


def baselines() -> str:
    rows = {row: config for row, config in configs().items() if row in (DEFAULT, *BASELINES)}
    sources = [
        "`benchmarks/results/table5-t100/{diffpure,gdmp}/` (stores)",
        "`benchmarks/results/eval-mnist-default/` (store)",
        "`benchmarks/results/table5-t100/{diffpure,gdmp}/run.json`",
    ]
    return render("baselines.md.j2", sources, lines=lines(rows, 256), runs=runs(rows))
