"""The shipped pipeline's `results.json` and model card: the shipped default's frontier point (headline first:
the worst case under the vote of K, then its paired difference to the most robust DiffPure, then the cascade),
and the build's measurements (`benchmarks/results/mnist-mimic-build.json`)."""

from __future__ import annotations

import json
import os

from mimic_diffusers.defaults import shipped_pipeline_path
from mimic_diffusers.modelcard import model_card

from .common import RESULTS, load, rel
from .frontier_study import CONFIRM_STEP, FINALISTS, STUDY, shipped_point, study


def current_rows() -> list:
    """(table row, paired comparison to the most robust DiffPure, command) of the shipped default at each eps,
    largest eps first: from its confirmation once that has paired at least the frontier's images (its first
    images are the frontier's, attacked with larger budgets: it supersedes the frontier's row), else from the
    frontier."""
    s, point = study(), shipped_point()
    best = {(c["eps"], c["a"]): c for c in s["comparisons"]}
    out = []
    for r in sorted((r for r in s["table"] if r["point"] == point and r["complete"]), key=lambda r: -r["eps"]):
        config = STUDY if r["eps"] in {t["eps"] for t in s["protocol"].threats} else FINALISTS  # eps 0.1: finalists
        command = f"python -m studies.frontier --config {config} --points {point} --eps {r['eps']:g}"
        out.append((r, best[(r["eps"], point)], command))
        for c in s["confirmation"]:
            done = [x for x in c["table"] if x["point"] == point and x["complete"]]
            pair = [p for p in c["pairs"] if p["a"] == point]
            if c["eps"] == r["eps"] and c["n"] >= r["n"] and done and pair:
                rivals = " ".join(p["b"] for p in pair)
                command = f"python -m studies.frontier --config {c['config']} --points {point} {rivals} --step {CONFIRM_STEP}"
                command += f" --num-samples {c['n']}" if c["n"] < c["planned"] else ""
                out[-1] = (done[0], dict(pair[0]["vote"], b=pair[0]["b"]), command)
    return out


def default_results() -> list:
    """One row per number, each with its attack, n and the command that measured it."""
    out = []
    for r, c, command in current_rows():
        key, votes = f"Linf-{r['eps']:g}", r["votes"]
        row = dict(n=r["n"], command=command)
        out.append(
            dict(
                metric=f"robust accuracy {key}, worst case per sample, vote of {votes}",
                value=round(r["vote"]["robust"]["accuracy"], 4),
                attack="worst case over the cascade below",
                ci95=[round(x, 4) for x in r["vote"]["robust"]["ci95"]],
                **row,
            )
        )
        out.append(
            dict(
                metric=f"paired difference to {c['b']} (the most robust DiffPure) {key}, vote of {votes}",
                value=round(c["difference"], 4),
                attack="the same cascade on the same images and attack seeds",
                ci95=[round(x, 4) for x in c["ci95"]],
                p_value=float(f"{c['p_value']:.2g}"),
                answer=c["verdict"],
                smallest_detectable=round(c["detectable"], 4),
                **row,
            )
        )
        out += [
            dict(
                metric=f"robust accuracy {key} after {label} and the attacks above it, vote of {votes}",
                value=round(a["vote"], 4),
                attack=label,
                **row,
            )
            for label, a in r["attacks"].items()
        ]
        out.append(
            dict(
                metric=f"clean accuracy through the purifier, vote of {votes}",
                value=r["vote"]["clean"]["accuracy"],
                attack="none",
                **row,
            )
        )
    return out


def model_card_files() -> dict:
    """{path: text} of the shipped pipeline's results.json and README.md (its model card)."""
    build = load(os.path.join(RESULTS, "mnist-mimic-build.json"))
    folder = shipped_pipeline_path()
    data = {
        "dataset": build["dataset"],
        "training": build["training"],
        "results": default_results() + build["results"],
    }
    return {
        f"{rel(folder)}/results.json": json.dumps(data, indent=1) + "\n",
        f"{rel(folder)}/README.md": str(model_card(folder, results=data)),
    }
