"""Pages of the Table 5 ablation at S = 100 and of the DiffPure and GDMP baselines, from their stores."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from functools import lru_cache
from typing import Dict, List

from mimic_diffusers.evaluation import EvalConfig, attack_label, report_store, threat_key

from ..table5 import ROWS, row_config
from .common import RESULTS, ROOT, header, minutes, pct, run_block, run_meta, wall_text

COLUMNS = {
    "autoattack-standard": "AutoAttack (paper) [zero-grad]",
    "bpda-eot": "BPDA+EOT",
    "feedback-cut-pgd-eot": "feedback-cut PGD-EOT",
    "square": "Square",
}
DEFAULT_ROW = "default (l1-both-window)"


def table5_configs() -> Dict[str, EvalConfig]:
    """{row: its config} of every stored row of `studies/table5.py` (the earlier default's store first)."""
    base = EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-default.yaml"))
    folder = os.path.join(RESULTS, "table5-t100")
    return {r: row_config(base, r, folder) for r in ROWS if os.path.isdir(os.path.join(folder, r))}


@lru_cache(maxsize=None)
def table5_lines(rows: tuple, num_samples: int) -> tuple:
    """The table's rows, each summarized from its store on the first N images (a row with fewer is left out)."""
    configs = {DEFAULT_ROW: EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-default.yaml"))}
    configs.update(table5_configs())
    configs[DEFAULT_ROW] = dataclasses.replace(
        configs[DEFAULT_ROW], output_dir=os.path.join(RESULTS, "eval-mnist-default")
    )
    out = [
        "| row | N | clean | eps | "
        + " | ".join(COLUMNS.values())
        + " | worst case [95% CI] | worst case, all K | attack min |",
        "|---|---|---|---|" + "---|" * len(COLUMNS) + "---|---|---|",
    ]
    for name in rows:
        config = dataclasses.replace(configs[DEFAULT_ROW if name == "default" else name], num_samples=num_samples)
        summary = report_store(config, write=False)
        for threat in config.threats:
            t = summary["threats"].get(threat_key(threat))
            if t is None or t["n"] < num_samples:  # a row still growing: left out rather than mix sample sets
                continue
            cells = ["-" if t["attacks"].get(a) is None else pct(t["attacks"][a]["accuracy"]) for a in COLUMNS]
            aa = t["attacks"].get("autoattack-standard")
            cells[0] += f" [{aa['zero_grad_fraction']:.2f}]" if aa else ""
            all_k = t.get("worst_case_all_votes")
            out.append(
                f"| {DEFAULT_ROW if name == 'default' else name} | {t['n']} | {pct(summary['clean']['accuracy'])} | "
                f"{threat['eps']:g} | " + " | ".join(cells) + f" | **{pct(t['worst_case']['accuracy'])}** "
                f"[{t['worst_case']['ci95'][0]:.1%}, {t['worst_case']['ci95'][1]:.1%}] | "
                f"{pct(all_k['accuracy']) if all_k else '-'} | {attack_minutes(config, threat_key(threat)):.0f} |"
            )
    return tuple(out)


def attack_minutes(config: EvalConfig, key: str) -> float:
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


def table5_rows() -> List[str]:
    return [r for r in table5_configs()]


TABLE5_NOTE = (
    "Every accuracy scores the first purification of each of the N images, except the all-K column. "
    "Columns: N images (the first N test images, the same for every row), clean accuracy through the "
    "defense, eps (l_inf), robust accuracy under AutoAttack standard with plain autograd (the paper's "
    "protocol; in brackets the fraction of samples whose input gradient was exactly zero), BPDA+EOT, "
    "the feedback-cut chain gradient and Square, the worst case per sample with its 95% Wilson interval, "
    "the worst case when a sample must survive all K = 3 purifications (`-` where records predate that "
    "metric), and the attack minutes of the slowest process (summed from the store's records)."
)


def table5() -> str:
    rows = ("default",) + tuple(r for r in table5_rows() if r not in ("diffpure", "gdmp")) + ("diffpure", "gdmp")
    text = header(
        "`benchmarks/results/table5-t100/*/` (stores)",
        "`benchmarks/results/eval-mnist-default/` (store)",
        "`benchmarks/results/table5-t100/*/run.json`",
    )
    text += (
        "Computed from the stores, every row on the same first 64 test images. Every row: the attacks, votes and batches of "
        "`configs/mnist-default.yaml` (budgets: AutoAttack n_iter=5, n_queries=20, n_target_classes=1; BPDA+EOT "
        "10 iterations, EOT 2; feedback-cut PGD-EOT 10 iterations, EOT 2, STE surrogate tau 0.5, margin loss; "
        "Square 20 queries), S = 100 inference steps, with one scheduler change "
        "(`studies/table5.py`, `ROWS`).\n\n"
    )
    text += TABLE5_NOTE + "\n\n" + "\n".join(table5_lines(rows, 64)) + "\n\n"
    metas = {row: run_meta(os.path.join(RESULTS, "table5-t100", row, "run.json")) for row in table5_rows()}
    first = next(iter(metas))
    template = metas[first]["command"].replace(f"--rows {first} ", "--rows ROW ")
    text += (
        f"Wall time per row, minutes per process on {metas[first]['machine']} (from each row's `run.json`). "
        f"Command per row (one eps at a time with `--eps`): `{template}` (`--num-samples 256` for `diffpure` "
        "and `gdmp`). How each row's run went (halves, resumes, machines): its `run.json`.\n\n"
        "| row | wall time |\n|---|---|\n"
    )
    for row, meta in metas.items():
        wall = (
            wall_text(meta)
            if isinstance(meta["wall_time_min"], dict) or meta["wall_time_min"] is None
            else f"{minutes(meta['wall_time_min'])} (both eps)"
        )
        text += f"| {row} | {wall} |\n"
    return text


def baselines() -> str:
    text = header(
        "`benchmarks/results/table5-t100/{diffpure,gdmp}/` (stores)",
        "`benchmarks/results/eval-mnist-default/` (store)",
        "`benchmarks/results/table5-t100/{diffpure,gdmp}/run.json`",
    )
    text += (
        "Computed from the stores, every row on the same first 256 test images. The baselines take the attacks, "
        "votes and batches of `configs/mnist-default.yaml`; `diffpure` is DiffPure with t* = 0.1 (10 reverse steps "
        "of the same UNet), `gdmp` is GDMP (MSE guidance on x_t, t* = 0.36).\n\n"
    )
    text += TABLE5_NOTE + "\n\n" + "\n".join(table5_lines(("default", "diffpure", "gdmp"), 256)) + "\n\n"
    for row in ("diffpure", "gdmp"):
        text += f"`{row}`:\n\n" + run_block(os.path.join(RESULTS, "table5-t100", row, "run.json")) + "\n"
    return text
