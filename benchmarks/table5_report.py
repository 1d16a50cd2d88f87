"""The Table 5 ablation (and the DiffPure / GDMP rows) as one Markdown table, computed from the stored
records of each row, never typed by hand. Each row is summarized on its first N images (the same images
for every row); the shipped default's own store can be added as the `default` row on those images too.

    python benchmarks/table5_report.py benchmarks/results/table5-t100 \
        --default benchmarks/results/eval-mnist-default --num-samples 64

Columns: N, clean accuracy, eps, the robust accuracy under attacks 1 (AutoAttack, the paper's protocol,
with its zero-gradient fraction), 3 (BPDA+EOT), 4 (the feedback-cut chain gradient) and 5 (Square), the worst case per
sample with its 95% Wilson interval, the worst case when a sample must survive all K purifications, and
the attack time of the slowest process (minutes; clean pass and model loading not counted).
"""

import argparse
import dataclasses
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from table5_ablation import ROWS  # noqa: E402  (the row order of the ablation script)

from mimic_diffusers.evaluation import EvalConfig, attack_label, report_store, threat_key  # noqa: E402

COLUMNS = {
    "autoattack-standard": "AutoAttack (paper) [zero-grad]",
    "bpda-eot": "BPDA+EOT",
    "feedback-cut-pgd-eot": "feedback-cut PGD-EOT",
    "square": "Square",
}


def row_lines(name: str, store: str, num_samples: int) -> list:
    with open(os.path.join(store, "summary.json")) as f:
        stored = json.load(f)["config"]
    config = dataclasses.replace(EvalConfig(**stored), num_samples=num_samples, output_dir=store)
    summary = report_store(config, write=False)
    lines = []
    for threat in config.threats:
        key = threat_key(threat)
        t = summary["threats"].get(key)
        if t is None:
            continue
        if t["n"] < num_samples:  # a row still growing: say so rather than mix sample sets
            print(f"note: {name} {key}: only {t['n']} of {num_samples} images stored; row left out", file=sys.stderr)
            continue
        cells = []
        for attack in COLUMNS:
            a = t["attacks"].get(attack)
            cell = "-" if a is None else f"{a['accuracy']:.1%}"
            if a is not None and attack == "autoattack-standard":
                cell += f" [{a['zero_grad_fraction']:.2f}]"
            cells.append(cell)
        w = t["worst_case"]
        all_votes = t.get("worst_case_all_votes")
        all_k = f"{all_votes['accuracy']:.1%}" if all_votes else "-"
        lines.append(
            f"| {name} | {t['n']} | {summary['clean']['accuracy']:.1%} | {threat['eps']:g} | "
            + " | ".join(cells)
            + f" | **{w['accuracy']:.1%}** [{w['ci95'][0]:.1%}, {w['ci95'][1]:.1%}] | {all_k}"
            + f" | {attack_minutes(store, key, config):.0f} |"
        )
    return lines


def attack_minutes(store: str, key: str, config: EvalConfig) -> float:
    """Seconds of the config's attacks on the slowest shard (process) over the config's batches, in minutes."""
    batches = -(-config.num_samples // config.batch_size)
    labels = {attack_label(spec) for spec in config.attacks}  # a store may hold attacks since dropped
    per_shard = []
    for path in glob.glob(os.path.join(store, "results.rank*.jsonl")):
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        per_shard.append(
            sum(
                a["seconds"]
                for r in records
                if r["threat"] == key and r["batch"] < batches
                for name, a in r.get("attacks", {}).items()
                if name in labels
            )
        )
    return max(per_shard, default=0.0) / 60


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table_dir", help="the folder holding one store (summary.json + results.rank*.jsonl) per row")
    p.add_argument("--default", help="the shipped default's store, shown as the row 'default (l1-both-window)'")
    p.add_argument("--num-samples", type=int, default=64, help="summarize every row on its first N images")
    args = p.parse_args()
    if not os.path.isdir(args.table_dir):
        raise SystemExit(f"error: table_dir {args.table_dir!r} is not a folder")
    stores = {
        name: os.path.join(args.table_dir, name)
        for name in ROWS
        if os.path.isfile(os.path.join(args.table_dir, name, "summary.json"))
    }
    if args.default:
        if not os.path.isfile(os.path.join(args.default, "summary.json")):
            raise SystemExit(f"error: --default {args.default!r} holds no summary.json")
        stores = {"default (l1-both-window)": args.default, **stores}
    print(
        "| row | N | clean | eps | "
        + " | ".join(COLUMNS.values())
        + " | worst case [95% CI] | all-K worst | attack min |"
    )
    print("|---|---|---|---|" + "---|" * len(COLUMNS) + "---|---|---|")
    for name, store in stores.items():
        for line in row_lines(name, store, args.num_samples):
            print(line)


if __name__ == "__main__":
    main()
