"""Record an evaluation's numbers in a pipeline folder's `results.json` and regenerate its model card.

Each robust-accuracy line carries its attack (with parameters) and the command that measured it.
Lines recorded earlier by the same command are replaced; other lines are kept.

    python benchmarks/record_results.py runs/eval/mnist-default/summary.json --pipeline mimic_diffusers/pipelines/mnist-mimic \
        --command "mimic-diffusers evaluate --config configs/mnist-default.yaml (T=100, first 64 test images)"

`--supersedes COMMAND` drops the lines of an earlier command that this one replaces (say, the same
evaluation on fewer images).
"""

import argparse
import json
import os

from mimic_diffusers.hub import write_model_card
from mimic_diffusers.reports import atomic_write


def results_from_summary(summary: dict, command: str) -> list:
    """Per threat, the headline first: the worst case per sample, then each attack from strongest
    (lowest accuracy) to weakest. The attack column names the registered attack a label ran."""
    rows = []
    for key, threat in sorted(summary["threats"].items(), key=lambda kv: -float(kv[0].rsplit("-", 1)[1])):
        rows.append(
            {
                "metric": f"robust accuracy {key}, worst case per sample",
                "value": round(threat["worst_case"]["accuracy"], 4),
                "attack": "worst case over all attacks below",
                "n": threat["worst_case"]["n"],
                "command": command,
            }
        )
        for label, a in sorted(threat["attacks"].items(), key=lambda kv: kv[1]["accuracy"]):
            params = ", ".join(f"{k}={v}" for k, v in a["params"].items())
            name = label if a.get("name", label) == label else f"{label} = {a['name']}"
            row = {
                "metric": f"robust accuracy {key}",
                "value": round(a["accuracy"], 4),
                "attack": f"{name} ({params})",
                "n": a["n"],
                "command": command,
            }
            if a.get("zero_grad_fraction") is not None:  # shown in the card's details column
                row["zero_grad_fraction"] = round(a["zero_grad_fraction"], 2)
                if a["zero_grad_fraction"] == 1.0:
                    row["warning"] = "input gradient exactly zero on every sample: this attack measured nothing"
            rows.append(row)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--command", required=True)
    p.add_argument(
        "--rename-command",
        nargs=2,
        metavar=("OLD", "NEW"),
        action="append",
        default=[],
        help="rewrite the command text of earlier lines (e.g. a renamed config file)",
    )
    p.add_argument(
        "--supersedes",
        action="append",
        default=[],
        metavar="COMMAND",
        help="drop the lines recorded by this command (e.g. the same evaluation on fewer images)",
    )
    args = p.parse_args()
    with open(args.summary) as f:
        summary = json.load(f)
    path = os.path.join(args.pipeline, "results.json")
    data = json.load(open(path)) if os.path.exists(path) else []
    data = {"results": data} if isinstance(data, list) else data  # a dict also keeps dataset/training facts
    for row in data["results"]:
        for old, new in args.rename_command:
            row["command"] = row["command"].replace(old, new)
    dropped = {args.command, *args.supersedes}
    unknown = [c for c in args.supersedes if not any(r["command"] == c for r in data["results"])]
    if unknown:
        raise SystemExit(f"error: --supersedes {unknown[0]!r} matches no recorded line in {path}")
    kept = [r for r in data["results"] if r["command"] not in dropped]
    data["results"] = results_from_summary(summary, args.command) + kept  # the headline first
    atomic_write(path, json.dumps(data, indent=1))
    write_model_card(args.pipeline, overwrite=True)
    print(f"{path}: {len(kept)} kept, {len(summary['threats'])} threats recorded; model card regenerated")


if __name__ == "__main__":
    main()
