"""Typed results of an evaluation: `Results` holds the clean accuracy and one `ThreatResult` per threat (norm,
eps), which holds one `AttackResult` per attack; every proportion is an `Accuracy`.

`read_results` is the one place a store is read into this form. The stored form stays the dict that
`summarize` returns and summary.json holds: `Results.from_summary` reads it, `Results.to_summary` gives it back
key for key, in the same order.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple, Union

from .compare import RULE_NAMES
from .config import EvalConfig, attack_label, threat_key
from .summary import report_store, worst_case_samples

# each decision rule's accuracy: the attack field, the threat's worst case field and the clean field
_FIELDS = {
    "first": ("first", "worst_case", "clean"),
    "vote": ("vote", "worst_case_vote", "clean_vote"),
    "all": ("all_votes", "worst_case_all_votes", "clean_all_votes"),
}
assert set(_FIELDS) == set(RULE_NAMES)  # the rules of `compare`, by the same short names


def _rule(rule: str) -> Tuple[str, str, str]:
    if rule not in _FIELDS:
        raise ValueError(f"rule must be one of {sorted(_FIELDS)}, got {rule!r}")
    return _FIELDS[rule]


def _optional(d: Optional[dict]) -> Optional["Accuracy"]:
    return None if d is None else Accuracy.from_dict(d)


@dataclass(frozen=True)
class Accuracy:
    """A proportion of samples with its 95% Wilson interval (what `mimic_diffusers.metrics.accuracy` returns).

    Args:
        accuracy (`float`): `correct / n` (NaN when `n` is 0).
        n (`int`): the samples counted.
        correct (`int`): the samples counted correct (robust, for an attack).
        ci95 (`Tuple[float, float]`): the 95% Wilson score interval of `accuracy`.
    """

    accuracy: float
    n: int
    correct: int
    ci95: Tuple[float, float]

    @classmethod
    def from_dict(cls, d: dict) -> "Accuracy":
        return cls(accuracy=d["accuracy"], n=d["n"], correct=d["correct"], ci95=tuple(d["ci95"]))

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "correct": self.correct, "ci95": list(self.ci95)}


@dataclass(frozen=True)
class AttackResult:
    """One attack's results at one threat (in a cascade, cumulative: robust after it and every attack above it).

    Args:
        label (`str`): the attack's label in the config and the store (its name unless the config gives one).
        name (`str`): the registered attack (`mimic_diffusers.attacks.ATTACKS`).
        params (`dict`): its parameters as stored.
        first (`Accuracy`): robust accuracy under the first purification.
        vote (`Accuracy`): robust accuracy under the majority of K purifications.
        all_votes (`Accuracy`, *optional*): robust accuracy under all K; None where records lack that score.
        seconds (`float`): attack wall time summed over batches.
        grad_l1_mean (`float`, *optional*): mean absolute input gradient (None for gradient-free attacks).
        zero_grad_fraction (`float`, *optional*): fraction of samples with an exactly zero input gradient.
    """

    label: str
    name: str
    params: dict
    first: Accuracy
    vote: Accuracy
    all_votes: Optional[Accuracy]
    seconds: float
    grad_l1_mean: Optional[float]
    zero_grad_fraction: Optional[float]

    def under(self, rule: str) -> Optional[Accuracy]:
        """Robust accuracy under `rule`: "first", "vote" or "all" (None where not recorded)."""
        return getattr(self, _rule(rule)[0])

    @classmethod
    def from_dict(cls, label: str, d: dict) -> "AttackResult":
        return cls(
            label=label,
            name=d["name"],
            params=d["params"],
            first=Accuracy.from_dict(d),  # stored flat: the first purification's accuracy is the attack's own
            vote=Accuracy.from_dict(d["vote"]),
            all_votes=_optional(d.get("all_votes")),
            seconds=d["seconds"],
            grad_l1_mean=d["grad_l1_mean"],
            zero_grad_fraction=d["zero_grad_fraction"],
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            **self.first.to_dict(),
            "vote": self.vote.to_dict(),
            "all_votes": None if self.all_votes is None else self.all_votes.to_dict(),
            "seconds": self.seconds,
            "params": self.params,
            "grad_l1_mean": self.grad_l1_mean,
            "zero_grad_fraction": self.zero_grad_fraction,
        }


@dataclass(frozen=True)
class ThreatResult:
    """The results at one threat: each attack's and the worst case per sample over all of them.

    Args:
        norm (`str`): "Linf" or "L2".
        eps (`float`): the perturbation budget, as the config gives it.
        n (`int`): the samples with results at this threat.
        attacks (`Dict[str, AttackResult]`): label -> result, in the config's (the cascade's) order.
        worst_case (`Accuracy`, *optional*): robust after every attack, under the first purification.
        worst_case_vote (`Accuracy`, *optional*): the same under the majority of K (None where not recorded).
        worst_case_all_votes (`Accuracy`, *optional*): the same under all K (None where not recorded).
        cascade (`bool`): each attack ran only on the samples the ones above it left robust.
        warnings (`Tuple[str, ...]`): gradient-masking and incompleteness warnings, each prefixed by `key`.
    """

    norm: str
    eps: float
    n: int
    attacks: Dict[str, AttackResult]
    worst_case: Optional[Accuracy]
    worst_case_vote: Optional[Accuracy]
    worst_case_all_votes: Optional[Accuracy]
    cascade: bool
    warnings: Tuple[str, ...]

    @property
    def key(self) -> str:
        """The threat's name in the store and the summary, e.g. "Linf-0.3"."""
        return threat_key({"norm": self.norm, "eps": self.eps})

    def worst_case_under(self, rule: str) -> Optional[Accuracy]:
        """The worst case under `rule`: "first", "vote" or "all" (None where not recorded)."""
        return getattr(self, _rule(rule)[1])

    @classmethod
    def from_dict(cls, key: str, d: dict, config: EvalConfig) -> "ThreatResult":
        # eps as the config gives it (the key rounds it to 6 digits), else as the key spells it
        norm, eps = key.rsplit("-", 1)
        threat = next((t for t in config.threats if threat_key(t) == key), {"norm": norm, "eps": float(eps)})
        return cls(
            norm=threat["norm"],
            eps=threat["eps"],
            n=d["n"],
            attacks={label: AttackResult.from_dict(label, a) for label, a in d["attacks"].items()},
            worst_case=_optional(d.get("worst_case")),
            worst_case_vote=_optional(d.get("worst_case_vote")),
            worst_case_all_votes=_optional(d.get("worst_case_all_votes")),
            cascade=d.get("cascade", False),
            warnings=tuple(d["warnings"]),
        )

    def to_dict(self) -> dict:
        out = {"attacks": {label: a.to_dict() for label, a in self.attacks.items()}, "n": self.n}
        for field in ("worst_case", "worst_case_vote", "worst_case_all_votes"):  # left out where not recorded
            if getattr(self, field) is not None:
                out[field] = getattr(self, field).to_dict()
        return {**out, "cascade": self.cascade, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class Results:
    """An evaluation's results: clean accuracy through the defense and each threat's results.

    Args:
        config (`EvalConfig`): the evaluation the store was summarized under.
        clean (`Accuracy`): clean accuracy under the first purification.
        clean_vote (`Accuracy`): clean accuracy under the majority of K purifications.
        clean_all_votes (`Accuracy`, *optional*): clean accuracy under all K (None where not recorded).
        threats (`Tuple[ThreatResult, ...]`): the threats with results, in the config's order.

    Example:
        >>> results = read_results(EvalConfig.from_file("configs/mnist-default.yaml"))
        >>> t = results.threat("Linf", 0.3)
        >>> t.worst_case_vote.accuracy, t.worst_case_vote.ci95, list(t.attacks)
    """

    config: EvalConfig
    clean: Accuracy
    clean_vote: Accuracy
    clean_all_votes: Optional[Accuracy]
    threats: Tuple[ThreatResult, ...]

    def get(self, norm: str, eps: float) -> Optional[ThreatResult]:
        """The results at threat (norm, eps), or None where the store holds none."""
        key = threat_key({"norm": norm, "eps": eps})
        return next((t for t in self.threats if t.key == key), None)

    def threat(self, norm: str, eps: float) -> ThreatResult:
        """The results at threat (norm, eps); a ValueError naming the threats there are where it has none."""
        found = self.get(norm, eps)
        if found is None:
            held = ", ".join(t.key for t in self.threats) or "none"
            raise ValueError(
                f"no results at threat norm={norm!r}, eps={eps!r} ({threat_key({'norm': norm, 'eps': eps})}) in "
                f"{self.config.output_dir!r}; threats with results: {held}"
            )
        return found

    def complete(self, norm: str, eps: float) -> bool:
        """Whether the store holds every sample and every attack of the config at threat (norm, eps)."""
        t = self.get(norm, eps)
        labels = {attack_label(spec) for spec in self.config.attacks}
        return (
            t is not None
            and t.worst_case is not None
            and t.worst_case.n == self.config.num_samples
            and set(t.attacks) == labels
        )

    def clean_under(self, rule: str) -> Optional[Accuracy]:
        """Clean accuracy under `rule`: "first", "vote" or "all" (None where not recorded)."""
        return getattr(self, _rule(rule)[2])

    @property
    def warnings(self) -> Tuple[str, ...]:
        """Every threat's warnings, in threat order."""
        return tuple(w for t in self.threats for w in t.warnings)

    @classmethod
    def from_summary(cls, summary: dict) -> "Results":
        """The typed form of `summary`: the dict `summarize` and `report_store` return (summary.json's contents)."""
        if not isinstance(summary, dict):
            raise TypeError(f"summary must be the dict summarize() returns, got {type(summary).__name__}")
        missing = [k for k in ("config", "clean", "clean_vote", "threats") if k not in summary]
        if missing:
            raise ValueError(f"summary lacks {missing}: expected the dict summarize() returns")
        unknown = sorted(set(summary["config"]) - set(EvalConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"summary['config'] has options EvalConfig does not know: {unknown}")
        config = EvalConfig(**summary["config"])
        return cls(
            config=config,
            clean=Accuracy.from_dict(summary["clean"]),
            clean_vote=Accuracy.from_dict(summary["clean_vote"]),
            clean_all_votes=_optional(summary.get("clean_all_votes")),
            threats=tuple(ThreatResult.from_dict(key, t, config) for key, t in summary["threats"].items()),
        )

    def to_summary(self) -> dict:
        """The dict `summarize` returns for these results, keys in its order (summary.json is its JSON)."""
        out = {
            "config": asdict(self.config),
            "clean": self.clean.to_dict(),
            "clean_vote": self.clean_vote.to_dict(),
            "threats": {t.key: t.to_dict() for t in self.threats},
        }
        if self.clean_all_votes is not None:
            out["clean_all_votes"] = self.clean_all_votes.to_dict()
        return out


def read_results(config: Union[EvalConfig, str, os.PathLike]) -> Results:
    """Read a config's store into `Results`, as it stands: nothing is run and nothing is written.

    Args:
        config (`EvalConfig` or `str`): the evaluation, or the path of its YAML/JSON config file.
    Returns:
        `Results`: the store summarized under the config (threats and batches it lacks are left out).
    Example:
        >>> results = read_results("configs/mnist-default.yaml")
        >>> results.clean_vote.accuracy, [t.key for t in results.threats]
    """
    if isinstance(config, (str, os.PathLike)):
        config = EvalConfig.from_file(str(config))
    if not isinstance(config, EvalConfig):
        raise TypeError(f"config must be an EvalConfig or a config file path, got {type(config).__name__}")
    return Results.from_summary(report_store(config, write=False))


def per_sample(config: EvalConfig, threat: Union[ThreatResult, dict], rule: str = "vote") -> Dict[int, bool]:
    """{sample id: robust after every attack} of `config`'s store at `threat` under `rule`, the worst case per
    sample that paired comparisons use (`worst_case_samples`).

    Args:
        config (`EvalConfig`): the evaluation whose store is read.
        threat (`ThreatResult` or `dict`): the threat, or a config threat such as `{"norm": "Linf", "eps": 0.3}`.
        rule (`str`): "first" (the first purification), "vote" (the majority of K) or "all" (all K).
    Returns:
        `Dict[int, bool]`: per sample id, robust under `rule` after every attack of the config.
    """
    _rule(rule)
    if isinstance(threat, ThreatResult):
        threat = {"norm": threat.norm, "eps": threat.eps}
    return worst_case_samples(config, threat, RULE_NAMES[rule])
