"""`EvalConfig`: what one evaluation runs (pipeline, data, threats, attacks), read from YAML/JSON and
validated, and the names (threat keys, attack labels and params) under which the store keeps results."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

from ..attacks import ATTACKS
from ..attacks.pgd_eot import check_threat


@dataclass
class EvalConfig:
    pipeline: str
    output_dir: str
    dataset: str = "mnist5k"
    split: str = "test"
    num_samples: int = 64
    # fixes which samples form each batch of the store: a config whose batches differ from the store's is refused
    batch_size: int = 32
    num_inference_steps: int = 100
    # K purifications of each input, scored by the first one, their majority and all K
    votes: int = 1
    seed: int = 0
    scheduler_options: dict = field(default_factory=dict)
    threats: List[dict] = field(default_factory=lambda: [{"norm": "Linf", "eps": 0.1}])
    attacks: List[dict] = field(default_factory=lambda: [{"name": "bpda-eot", "params": {"steps": 10, "eot": 1}}])
    examples: int = 8
    # AutoAttack's order: each attack runs only on the samples that the clean pass and every earlier attack
    # of the config left robust under some decision rule. The worst case per sample is the same as with
    # every attack on every sample, at a fraction of the cost when the first attack breaks most samples;
    # per-attack accuracies become cumulative (robust after this attack and all before it).
    cascade: bool = False
    # where results.md, summary.json and the plots go (default: output_dir). A config that reads and
    # grows another config's store (the same output_dir) writes its reports apart from that config's.
    report_dir: Optional[str] = None

    @classmethod
    def from_file(cls, path: str, **overrides) -> "EvalConfig":
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file {path!r} does not exist")
        with open(path) as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                raw = yaml.safe_load(f)
            else:
                raw = json.load(f)
        if not isinstance(raw, dict):
            raise ValueError(f"config file {path!r} must hold a mapping of options")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"config {path!r}: unknown options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**raw).validate()

    def validate(self) -> "EvalConfig":
        for name in ("num_samples", "batch_size", "num_inference_steps", "votes"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.cascade, bool):
            raise ValueError(f"cascade must be true or false, got {self.cascade!r}")
        for threat in self.threats:
            check_threat(threat.get("norm"), threat.get("eps"), where="threats: ")
        for attack in self.attacks:
            if attack.get("name") not in ATTACKS:
                raise ValueError(f"attacks: unknown attack {attack.get('name')!r}; choose from {sorted(ATTACKS)}")
        return self

    def select_eps(self, eps_values) -> "EvalConfig":
        """Keep only the threats with these eps values; an eps the config lacks is an error."""
        available = [t["eps"] for t in self.threats]
        missing = [e for e in eps_values if not any(math.isclose(e, a) for a in available)]
        if missing:
            raise ValueError(f"--eps {missing}: not among the config's threat eps {available}")
        self.threats = [t for t in self.threats if any(math.isclose(t["eps"], e) for e in eps_values)]
        return self

    def select_attacks(self, labels) -> "EvalConfig":
        """Keep only the attacks with these labels; an unknown label is an error, and so is a selection that
        skips an attack of a cascade (each attack there needs the results of the ones above it)."""
        order = [attack_label(a) for a in self.attacks]
        unknown = [label for label in labels if label not in order]
        if unknown:
            raise ValueError(f"--attacks {unknown}: not among the config's attack labels {order}")
        if self.cascade and set(labels) != set(order[: len(set(labels))]):
            raise ValueError(
                f"--attacks {list(labels)}: a cascade runs its attacks in order, so choose its first "
                f"ones (a prefix of {order}); a later run without --attacks adds the rest"
            )
        self.attacks = [a for a in self.attacks if attack_label(a) in labels]
        return self

    @property
    def num_batches(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def batch_ids(self, batch: int) -> List[int]:
        """The sample indices of `batch` (the last batch may be short)."""
        return list(range(batch * self.batch_size, min((batch + 1) * self.batch_size, self.num_samples)))


def threat_key(threat: dict) -> str:
    return f"{threat['norm']}-{threat['eps']:g}"


def attack_label(spec: dict) -> str:
    return spec.get("label", spec["name"])


def attack_params(spec: dict, config: EvalConfig) -> dict:
    params = dict(spec.get("params", {}))
    params.setdefault("num_inference_steps", config.num_inference_steps)
    return params
