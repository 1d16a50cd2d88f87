"""Pages of superseded results, each marked as such and kept for the record."""

from __future__ import annotations

import glob
import os

from .common import RESULTS, header, load, loose, params_text, pct, pct_ci, run_block
from .evaluation import eval_report

SUPERSEDED = "**Superseded.** {why} Kept for the record; do not cite these numbers for the shipped default."


def archive_t20() -> str:
    return eval_report(
        "eval-mnist-t20",
        SUPERSEDED.format(
            why="S = 20 inference steps, while the shipped default runs S = 100 (robust accuracy at S = 20 is far "
            "higher, see the fewest-steps study), and its exact attack keeps the guidance feedback, which attacks "
            "worse than the feedback cut."
        ),
    )


def archive_previous_attack() -> str:
    return eval_report(
        "eval-mnist-default-previous-attack",
        SUPERSEDED.format(
            why="The first 64-image run at S = 100 with the exact attack through a 20-step surrogate chain, feedback kept "
            "(`exact-pgd-eot`, gradient_steps=20), a weak attack on this defense; replaced by the feedback-cut attack through the "
            "full chain."
        ),
    )


def archive_table5_t20() -> str:
    paths = sorted(glob.glob(os.path.join(RESULTS, "table5", "*.summary.json")))
    text = header("`benchmarks/results/table5/*.summary.json`", "`benchmarks/results/table5/run.json`")
    text += (
        SUPERSEDED.format(
            why="S = 20 and a reduced budget (no AutoAttack, 5 iterations, EOT 1); replaced by the S = 100 ablation."
        )
        + "\n\n"
    )
    text += run_block(os.path.join(RESULTS, "table5", "run.json")) + "\n"
    text += (
        "Every accuracy scores the first purification of each of the N images.\n\n"
        "| row | N | standard | worst case eps=0.3 [95% CI] | per attack |\n|---|---|---|---|---|\n"
    )
    for p in paths:
        s = load(p)
        t = s["threats"]["Linf-0.3"]
        per = ", ".join(f"{label} {pct(a['accuracy'])}" for label, a in t["attacks"].items())
        text += f"| {os.path.basename(p)[: -len('.summary.json')]} | {t['n']} | {pct(s['clean']['accuracy'])} | {pct_ci(t['worst_case'])} | {per} |\n"
    return text


def archive_attack_tuning_t20() -> str:
    d, text, meta = loose("attack-tuning.json")
    text += (
        SUPERSEDED.format(why="S = 20, one purification per row, and the exact attack with the feedback kept.")
        + "\n\n"
    )
    text += (
        run_block(
            meta,
            extra=[
                f"- **N**: the first {d['num_images']} test images, l_inf eps {d['eps']:g}, S = {d['steps']}, "
                "one purification"
            ],
        )
        + "\n"
    )
    text += "| gradient at the clean images | mean L1 | zero-grad frac |\n|---|---|---|\n"
    for r in d["rows"]:
        if "gradient_mode" in r:
            text += f"| {r['gradient_mode']} | {r['grad_l1_mean']:.3g} | {r['zero_grad_fraction']:.2f} |\n"
    text += "\n| attack | budget | robust acc | mean L1 input grad | s |\n|---|---|---|---|---|\n"
    for r in d["rows"]:
        if "attack" in r:
            text += (
                f"| `{r['attack']}` | {params_text(r['params'])} | {pct(r['robust_accuracy'])} | {r['grad_l1_mean']:.3g} "
                f"| {r['seconds']:.0f} |\n"
            )
    return text
