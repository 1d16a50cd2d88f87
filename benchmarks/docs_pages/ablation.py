"""Pages of the Table 5 ablation at S = 100 and of the DiffPure and GDMP baselines, from their stores."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import List

from .common import RESULTS, header, minutes, run_block, run_meta, wall_text


@lru_cache(maxsize=None)
def table5_lines(rows: tuple, num_samples: int) -> tuple:
    """The rows of `benchmarks/table5_report.py` (summarized from the stores on the first N images)."""
    import contextlib
    import io

    import table5_report

    out = [
        "| row | N | clean | eps | "
        + " | ".join(table5_report.COLUMNS.values())
        + " | worst case [95% CI] | worst case, all K | attack min |",
        "|---|---|---|---|" + "---|" * len(table5_report.COLUMNS) + "---|---|---|",
    ]
    for name in rows:
        store = (
            os.path.join(RESULTS, "eval-mnist-default")
            if name == "default"
            else os.path.join(RESULTS, "table5-t100", name)
        )
        shown = "default (l1-both-window)" if name == "default" else name
        with contextlib.redirect_stderr(io.StringIO()):  # notes about rows still growing
            out += table5_report.row_lines(shown, store, num_samples)
    return tuple(out)


def table5_command(n: int) -> str:
    return (
        f"python benchmarks/table5_report.py benchmarks/results/table5-t100 --default "
        f"benchmarks/results/eval-mnist-default --num-samples {n}"
    )


def table5_rows() -> List[str]:
    from table5_ablation import ROWS

    return [r for r in ROWS if os.path.isfile(os.path.join(RESULTS, "table5-t100", r, "summary.json"))]


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
        f"Computed from the stores by `{table5_command(64)}`. Every row: the attacks, votes and batches of "
        "`configs/mnist-default.yaml` (budgets: AutoAttack n_iter=5, n_queries=20, n_target_classes=1; BPDA+EOT "
        "10 iterations, EOT 2; feedback-cut PGD-EOT 10 iterations, EOT 2, STE surrogate tau 0.5, margin loss; "
        "Square 20 queries), S = 100 inference steps, with one scheduler change "
        "(`benchmarks/table5_ablation.py`, `ROWS`).\n\n"
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
        f"Computed from the stores by `{table5_command(256)}` (the rows below). The baselines take the attacks, "
        "votes and batches of `configs/mnist-default.yaml`; `diffpure` is DiffPure with t* = 0.1 (10 reverse steps "
        "of the same UNet), `gdmp` is GDMP (MSE guidance on x_t, t* = 0.36).\n\n"
    )
    text += TABLE5_NOTE + "\n\n" + "\n".join(table5_lines(("default", "diffpure", "gdmp"), 256)) + "\n\n"
    for row in ("diffpure", "gdmp"):
        text += f"`{row}`:\n\n" + run_block(os.path.join(RESULTS, "table5-t100", row, "run.json")) + "\n"
    return text
