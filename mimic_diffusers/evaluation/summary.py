"""The summary of a store under a config: the one metric definition, applied under each decision rule,
per attack and worst case per sample, with diagnostics and masking warnings; `report_store` writes it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Dict, List, Optional

from ..metrics import accuracy, worst_case
from . import store
from .checks import masking_warnings
from .config import EvalConfig, attack_label, threat_key

# The one metric definition: under each decision rule (the first purification, the majority of K, all K),
# a sample counts as robust only if the rule classifies BOTH its clean and its attacked input correctly,
# so an attack is never credited with (nor blamed for) a sample the defense already got wrong.
RULES = {"correct": "accuracy", "vote_correct": "vote", "all_correct": "all_votes"}


def robust_under_rule(
    rows: List[dict], label: str, rule: str, clean_by_batch: Dict[int, dict]
) -> Optional[List[bool]]:
    """Per sample of `rows`: attacked AND clean input correct under `rule`; None where a record predates it."""
    out = []
    for r in rows:
        attacked, clean = r["attacks"][label].get(rule), clean_by_batch[r["batch"]].get(rule)
        if attacked is None or clean is None:
            return None
        out += [bool(a and c) for a, c in zip(attacked, clean)]
    return out


def summarize(records: List[dict], config: EvalConfig) -> dict:
    """Per threat: accuracy per attack under each rule, worst case per sample, diagnostics, warnings."""
    merged = _merged(records, config)
    clean = sorted((r for r in merged.values() if r["threat"] == "clean"), key=lambda r: r["batch"])
    clean_by_batch = {r["batch"]: r for r in clean}
    out = {
        "config": asdict(config),
        "clean": accuracy([c for r in clean for c in r["correct"]]),
        "clean_vote": accuracy([c for r in clean for c in r["vote_correct"]]),
        "threats": {},
    }
    if all("all_correct" in r for r in clean):
        out["clean_all_votes"] = accuracy([c for r in clean for c in r["all_correct"]])
    names = {attack_label(spec): spec["name"] for spec in config.attacks}
    for threat in config.threats:
        key = threat_key(threat)
        rows = _threat_rows(merged, key, clean_by_batch)
        if not rows:
            continue
        per_rule: Dict[str, Dict[str, List[bool]]] = {rule: {} for rule in RULES}
        result = {"attacks": {}, "n": sum(len(r["ids"]) for r in rows)}
        # the config's attacks, where every batch has them (a store may hold attacks since dropped)
        # a store a cascade wrote is read as one whatever the config says (its skipped samples hold None)
        cascade = config.cascade or any("targets" in a for r in rows for a in r["attacks"].values())
        before: Dict[str, Optional[List[bool]]] = {}
        for label in [n for n in names if all(n in r["attacks"] for r in rows)]:
            scores = {rule: robust_under_rule(rows, label, rule, clean_by_batch) for rule in RULES}
            if cascade:  # cumulative: robust after this attack and every earlier one
                scores = before = {
                    rule: c if rule not in before else _and(before[rule], c) for rule, c in scores.items()
                }
            for rule, correct in scores.items():
                if correct is not None:
                    per_rule[rule][label] = correct
            diag = [r["attacks"][label]["diagnostics"] for r in rows]
            result["attacks"][label] = {
                "name": names[label],
                **accuracy(scores["correct"]),
                "vote": accuracy(scores["vote_correct"]),
                "all_votes": None if scores["all_correct"] is None else accuracy(scores["all_correct"]),
                "seconds": sum(r["attacks"][label]["seconds"] for r in rows),
                "params": rows[0]["attacks"][label]["params"],
                "grad_l1_mean": _mean([d.get("grad_l1_mean") for d in diag]),
                "zero_grad_fraction": _mean([d.get("zero_grad_fraction") for d in diag]),
            }
        for rule, field in (
            ("correct", "worst_case"),
            ("vote_correct", "worst_case_vote"),
            ("all_correct", "worst_case_all_votes"),
        ):
            if per_rule[rule].keys() == result["attacks"].keys():  # every attack has the rule's records
                result[field] = accuracy(worst_case(per_rule[rule]))
        result["cascade"] = cascade
        result["warnings"] = [f"{key}: {w}" for w in masking_warnings(result["attacks"], cumulative=cascade)]
        missing = [label for label in names if label not in result["attacks"]]
        if missing:  # a screen (`--attacks`) or a run still going: its worst case is only an upper bound
            result["warnings"].append(
                f"{key}: no results of {', '.join(missing)} on every batch; the worst case "
                "covers only the attacks above, so it is an upper bound"
            )
        out["threats"][key] = result
    return out


def worst_case_samples(
    config: EvalConfig, threat: dict, rule: str = "vote_correct", through: Optional[int] = None
) -> Dict[int, bool]:
    """{sample id: robust under `rule` after every attack of `config` in its store}, the worst case per
    sample, so that stores of the same images (restarts, other budgets) combine per sample; `through=k`:
    after the config's first k attacks only (a cascade's cumulative result at that stage)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {sorted(RULES)}, got {rule!r}")
    if through is not None and not 1 <= through <= len(config.attacks):
        raise ValueError(f"through must be None or 1..{len(config.attacks)} (the config's attacks), got {through!r}")
    merged = _merged(store.read_records(config.output_dir), config)
    clean_by_batch = {r["batch"]: r for r in merged.values() if r["threat"] == "clean"}
    rows = _threat_rows(merged, threat_key(threat), clean_by_batch)
    specs = config.attacks[:through]
    labels = [attack_label(spec) for spec in specs if all(attack_label(spec) in r["attacks"] for r in rows)]
    if not rows or not labels:
        raise ValueError(f"the store {config.output_dir!r} holds no attack results at {threat_key(threat)}")
    scores = [robust_under_rule(rows, label, rule, clean_by_batch) for label in labels]
    if any(s is None for s in scores):
        raise ValueError(f"the store {config.output_dir!r} has records without {rule!r} scores")
    return dict(zip((i for r in rows for i in r["ids"]), worst_case(dict(zip(labels, scores)))))


def _merged(records: List[dict], config: EvalConfig) -> Dict[tuple, dict]:
    # the config's batches only: a store may hold more samples than this config asks for
    return {k: r for k, r in store.merge_records(records).items() if r["batch"] < config.num_batches}


def _threat_rows(merged: Dict[tuple, dict], key: str, clean_by_batch: Dict[int, dict]) -> List[dict]:
    # batches with a clean record only: robustness is defined against the clean prediction
    return sorted(
        (r for r in merged.values() if r["threat"] == key and r["batch"] in clean_by_batch), key=lambda r: r["batch"]
    )


def _and(a: Optional[List[bool]], b: Optional[List[bool]]) -> Optional[List[bool]]:
    return None if a is None or b is None else [x and y for x, y in zip(a, b)]


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def report_store(config: EvalConfig, write: bool = True) -> dict:
    """Summarize the store as it stands (nothing is run) and write the reports; returns the summary.
    Threats or batches the store lacks are left out, and each threat states its own n."""
    records = store.read_records(config.output_dir)
    if not records:
        raise FileNotFoundError(f"output_dir {config.output_dir!r} holds no results.rank*.jsonl records to report on")
    # the store's header and sample ids must match the config (the pipeline is not loaded: not checked here)
    store.check_header(config.output_dir, store.expected_header(config, None))
    store.check_ids(config, store.merge_records(records))
    summary = summarize(records, config)
    if write:
        from ..reports import write_reports

        write_reports(summary, config.report_dir or config.output_dir)
    return summary
