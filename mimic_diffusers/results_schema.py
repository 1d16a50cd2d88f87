"""The `results.json` schema of a pipeline folder and the MimicDiffusion options it is measured under.

Results are never made up: every number in a pipeline folder comes from `results.json`, which is either
a list of results or a dict `{"results": [...], "dataset": ..., "training": ...}`; one result is
`{"metric": "robust_accuracy", "value": 0.71, "attack": "BPDA+EOT, Linf eps=0.3", "n": 512, "command": "..."}`
(further keys, e.g. a label histogram, are kept and shown as details).
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
from typing import Optional

from .scheduling_mimic import OPTION_DOCS, PRESETS, MimicDiffusionScheduler

RESULTS_FILE = "results.json"
RESULT_KEYS = ("metric", "value", "attack", "n", "command")

# Every MimicDiffusion option of the scheduler config (the rest is the DDIM beta schedule), explained.
MIMIC_OPTIONS = OPTION_DOCS


def read_json(*parts):
    """The JSON file at `os.path.join(*parts)`, or None when there is no such file."""
    path = os.path.join(*parts)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_results(results=None, folder: Optional[str] = None) -> dict:
    """`{"results": [...] or None, "dataset": ..., "training": ...}` from `results` or `folder/results.json`."""
    if results is None and folder is not None:
        results = read_json(folder, RESULTS_FILE)
    if results is None:
        return {"results": None}
    if isinstance(results, dict):
        data = dict(results) if "results" in results else {"results": [results]}
    elif isinstance(results, (list, tuple)):
        data = {"results": list(results)}
    else:
        raise TypeError(f"results must be a list of dicts or a dict, got {type(results).__name__}")
    for i, entry in enumerate(data["results"]):
        missing = [k for k in RESULT_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ValueError(f"results[{i}] lacks {missing}: every number needs its metric, attack, n and command")
        if isinstance(entry["value"], bool) or not isinstance(entry["value"], numbers.Real):
            raise ValueError(f"results[{i}]['value'] must be a number, got {entry['value']!r}")
    return data


def matching_preset(options: dict) -> Optional[str]:
    """The name of the `PRESETS` recipe these options equal, if any."""
    defaults = {
        k: p.default
        for k, p in inspect.signature(MimicDiffusionScheduler.__init__).parameters.items()
        if k in MIMIC_OPTIONS
    }
    for name, overrides in PRESETS.items():
        if {**defaults, **overrides} == {k: options.get(k) for k in MIMIC_OPTIONS}:
            return name
    return None
