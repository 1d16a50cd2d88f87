"""Rewrite every committed evaluation report (summary.json, results.md, accuracy_vs_eps.png) from the
committed stores, so a change of metric definition or attack name reaches every table at once.

    python benchmarks/regenerate_reports.py           # rewrite the reports
    python benchmarks/regenerate_reports.py --check   # exit 1 if a summary.json or results.md would change

Each report is summarized exactly as `mimic-diffusers evaluate --config CONFIG --report-only` would, but
reads the committed store (`benchmarks/results/.../results.rank*.jsonl`) instead of the config's
`output_dir` under runs/. The Table 5 rows were run by benchmarks/table5_ablation.py on the default's
config with one scheduler override each; their stored summary.json holds that config.
"""

import argparse
import glob
import json
import os
import sys

from mimic_diffusers.evaluation import EvalConfig, read_records, summarize
from mimic_diffusers.reports import markdown_table, write_reports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DEFAULT_STORE = os.path.join(RESULTS, "eval-mnist-default")
# report folder -> the config that produced it (every one of these grows the default's store)
REPORTS = {
    "eval-mnist-default": "configs/mnist-default.yaml",
    "eval-mnist-bpda-budget-curve": "configs/mnist-bpda-budget-curve.yaml",
    "eval-mnist-feedback-cut-eot-curve": "configs/mnist-feedback-cut-eot-curve.yaml",
    "eval-mnist-step-size-curve": "configs/mnist-step-size-curve.yaml",
    "eval-mnist-tuned-bpda-256": "configs/mnist-tuned-bpda-256.yaml",
    "eval-mnist-worst-case-64": "configs/mnist-worst-case-64.yaml",
}


def jobs():
    """(report folder, config, store folder) for every committed report that has a committed store."""
    for folder, config in REPORTS.items():
        yield os.path.join(RESULTS, folder), EvalConfig.from_file(os.path.join(ROOT, config)), DEFAULT_STORE
    for store in sorted(glob.glob(os.path.join(RESULTS, "table5-t100", "*", "results.rank0.jsonl"))):
        folder = os.path.dirname(store)
        with open(os.path.join(folder, "summary.json")) as f:
            stored = json.load(f)["config"]
        yield folder, EvalConfig(**stored).validate(), folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a report would change")
    args = p.parse_args(argv)
    stale = []
    for folder, config, store in jobs():
        summary = summarize(read_records(store), config)
        if args.check:
            for name, text in (
                ("summary.json", json.dumps(summary, indent=1)),
                ("results.md", markdown_table(summary)),
            ):
                with open(os.path.join(folder, name)) as f:
                    if f.read() != text:
                        stale.append(os.path.relpath(os.path.join(folder, name), ROOT))
        else:
            write_reports(summary, folder)
            print(f"wrote {os.path.relpath(folder, ROOT)}")
    if stale:
        print("stale reports (run python benchmarks/regenerate_reports.py):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
