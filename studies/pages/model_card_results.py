"""The shipped pipeline's `results.json` and model card: the shipped default's frontier point (headline first:
the worst case under the vote of K, then its paired difference to the most robust DiffPure, then the cascade),
and the build's measurements (`benchmarks/results/mnist-mimic-build.json`)."""

from __future__ import annotations

import json
import os

from mimic_diffusers.defaults import shipped_pipeline_path
from mimic_diffusers.modelcard import model_card

from .common import RESULTS, load, rel
from .frontier_study import STUDY, shipped_point, study


def default_results() -> list:
    """One row per number, each with its attack, n and the command that measured it."""
    s, point, out = study(), shipped_point(), []
    best = {(c["eps"], c["a"]): c for c in s["comparisons"]}
    for r in sorted((r for r in s["table"] if r["point"] == point and r["complete"]), key=lambda r: -r["eps"]):
        key, votes = f"Linf-{r['eps']:g}", r["votes"]
        command = f"python -m studies.frontier --points {point} --eps {r['eps']:g} ({STUDY})"
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
        c = best[(r["eps"], point)]
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
