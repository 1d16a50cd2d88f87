"""The evaluation loop: attacks x threat models x batches, resumable, data parallel, with reports.

Work is cut into units (batch, threat). Each finished attack of a unit is appended to this process's
JSONL shard as ONE line in one write (flushed and fsynced); on start, every shard is read, a torn last
line is cut off, and finished attacks are skipped, so a killed run resumes without losing or double
counting a sample, and loses at most the attack it interrupted. An attack added to the config later
runs only where its results are missing (records of a unit are merged on reading), so a store grows
across sessions: more samples, more attacks. Every attack reseeds the defense from (seed, batch,
threat, attack): results do not depend on which process ran it, on resumes, or on which other attacks
share the run. Attacks live in `attacks/`; this module
only schedules them.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import torch

from .attacks import ATTACKS, PurifyThenClassify, create_attack
from .metrics import accuracy, majority_vote, worst_case


@dataclass
class EvalConfig:
    pipeline: str
    output_dir: str
    dataset: str = "mnist5k"
    split: str = "test"
    num_samples: int = 64
    batch_size: int = 32
    num_inference_steps: int = 100
    votes: int = 1
    seed: int = 0
    scheduler_options: dict = field(default_factory=dict)
    threats: List[dict] = field(default_factory=lambda: [{"norm": "Linf", "eps": 0.1}])
    attacks: List[dict] = field(default_factory=lambda: [{"name": "bpda-eot", "params": {"steps": 10, "eot": 1}}])
    examples: int = 8
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
            raise ValueError(f"config {path!r}: unknown options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**raw).validate()

    def validate(self) -> "EvalConfig":
        for name in ("num_samples", "batch_size", "num_inference_steps", "votes"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for threat in self.threats:
            if threat.get("norm") not in ("Linf", "L2"):
                raise ValueError(f"threats: norm must be 'Linf' or 'L2', got {threat.get('norm')!r}")
            if not isinstance(threat.get("eps"), (int, float)) or threat["eps"] < 0:
                raise ValueError(f"threats: eps must be a number >= 0, got {threat.get('eps')!r}")
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


def threat_key(threat: dict) -> str:
    return f"{threat['norm']}-{threat['eps']:g}"


def unit_seed(*parts) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


# ----------------------------------------------------------------------------- the JSONL store


def read_records(output_dir: str) -> List[dict]:
    """All complete records of all shards; a torn last line (killed mid-write) is cut off the file."""
    records = []
    for path in sorted(glob.glob(os.path.join(output_dir, "results.rank*.jsonl"))):
        with open(path, "rb") as f:
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with open(path, "r+b") as f:
                f.truncate(len(complete))
        records.extend(upgrade_record(json.loads(line)) for line in complete.decode().splitlines() if line.strip())
    return records


def upgrade_record(record: dict) -> dict:
    """A record in today's names. Stores written before the feedback-cut attack had its own name hold it as
    `exact-pgd-eot` with the param `guidance_feedback: false` (labels `exact-pgd*`): it becomes
    `feedback-cut-pgd-eot` (labels `feedback-cut-pgd*`); `guidance_feedback: true` was the exact attack.
    `pgd-classifier` was torchattacks' PGD, whose random start came from the global RNG: those results are
    kept as `pgd-classifier-torchattacks`, so the seeded `pgd-classifier` of today runs where a config asks."""
    attacks = {}
    for label, result in record.get("attacks", {}).items():
        params = dict(result.get("params", {}))
        feedback = params.pop("guidance_feedback", None)
        if feedback is False and label.startswith("exact-pgd"):
            label = "feedback-cut-pgd" + label[len("exact-pgd"):]
        if label == "pgd-classifier" and "name" not in result:  # run by torchattacks, whose start was unseeded
            label = "pgd-classifier-torchattacks"
        attacks[label] = {**result, "params": params}
    return {**record, "attacks": attacks} if "attacks" in record else record


SCORES = ("correct", "vote_correct", "all_correct")


def merge_records(records: List[dict]) -> Dict[tuple, dict]:
    """(batch, threat) -> one record whose `attacks` joins those of every record of that unit (an attack
    added to the config later is stored in a record of its own). A clean pass rerun to add a score a
    record lacks (`all_correct`, say) completes it; a rerun that disagrees with the stored scores is an error."""
    merged: Dict[tuple, dict] = {}
    for r in records:
        key = (r["batch"], r["threat"])
        if key not in merged:
            merged[key] = {**r, "attacks": {}}
        for field in SCORES:
            if field in r and merged[key].setdefault(field, r[field]) != r[field]:
                raise ValueError(f"the store holds two records of batch {r['batch']} ({r['threat']}) whose {field!r} "
                                 "differ: the rerun did not reproduce the stored result")
        merged[key]["attacks"].update(r.get("attacks", {}))
    return merged


def attack_label(spec: dict) -> str:
    return spec.get("label", spec["name"])


def attack_params(spec: dict, config: "EvalConfig") -> dict:
    params = dict(spec.get("params", {}))
    params.setdefault("num_inference_steps", config.num_inference_steps)
    return params


def append_record(path: str, record: dict) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of one line: never interleaved with another record
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- running


def load_pipeline(config: EvalConfig, device=None):
    """The config's pipeline with its scheduler options (see `mimic_diffusers.defaults.load_pipeline`)."""
    from .defaults import load_pipeline as load

    return load(config.pipeline, config.scheduler_options, device)


def evaluate_unit(pipe, config: EvalConfig, batch: int, x, y, ids, threat: Optional[dict], attacks=None) -> dict:
    """One batch under one threat (or clean when threat is None) -> a JSON-able record.
    `attacks`: the attack specs to run (default: all of the config's)."""
    record = {"batch": batch, "threat": threat_key(threat) if threat else "clean", "ids": ids, "labels": y.tolist()}
    defense = PurifyThenClassify(pipe, num_inference_steps=config.num_inference_steps)
    if threat is None:
        defense.reseed(unit_seed(config.seed, batch, "clean"))
        record.update(score_votes(defense.predict(x, config.votes).tolist(), y.tolist()))
        return record
    record["attacks"] = {}
    for spec in config.attacks if attacks is None else attacks:
        params = attack_params(spec, config)
        seed = unit_seed(config.seed, batch, record["threat"], spec["name"])
        start = time.time()
        attack = create_attack(spec["name"], pipe, eps=threat["eps"], norm=threat["norm"], seed=seed, **params)
        x_adv = attack(x, y)
        defense.reseed(seed + 1)
        record["attacks"][attack_label(spec)] = {
            "name": spec["name"], **score_votes(defense.predict(x_adv, config.votes).tolist(), y.tolist()),
            "max_abs_perturbation": float((x_adv - x).abs().flatten(1).max(1).values.max()),
            "seconds": time.time() - start, "params": params,
            "diagnostics": {k: v for k, v in attack.diagnostics.items()},
        }
        if batch == 0 and config.examples:
            save_example_grid(pipe, defense, x[: config.examples], x_adv[: config.examples], y[: config.examples],
                              os.path.join(config.report_dir or config.output_dir, f"examples_{record['threat']}_{attack_label(spec)}.png"))
    return record


def score_votes(votes: List[List[int]], labels: List[int]) -> dict:
    """votes[k][i]: label of sample i in purification k. `correct` scores the first purification,
    `vote_correct` the majority, `all_correct` every one of the K (DiffBreak's reading: an attack that
    fools any purification has won, as it would on a user who purifies until the label changes)."""
    return {"correct": [p == t for p, t in zip(votes[0], labels)],
            "vote_correct": [p == t for p, t in zip(majority_vote(votes), labels)],
            "all_correct": [all(v[i] == t for v in votes) for i, t in enumerate(labels)]}


def run_evaluation(config: EvalConfig, accelerator=None, run_eps=None) -> dict:
    """Run (or resume) every unit not yet in the store, then write the reports. Returns the summary.

    `run_eps` (the CLI's `--eps`) restricts which threats are *run*; the reports still cover every threat
    of the config found in the store, so running one eps never hides another eps's finished results."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from .data import load_image_dataset, to_tensors

    run_config = dataclasses.replace(config, threats=list(config.threats)).select_eps(run_eps) if run_eps else config
    accelerator = accelerator or Accelerator()
    os.makedirs(config.output_dir, exist_ok=True)
    os.makedirs(config.report_dir or config.output_dir, exist_ok=True)
    pipe = load_pipeline(config, accelerator.device)
    dataset = load_image_dataset(config.dataset, split=config.split)
    if config.num_samples > len(dataset):
        raise ValueError(f"num_samples={config.num_samples} exceeds the {len(dataset)} images of {config.dataset}/{config.split}")
    x_all, y_all = to_tensors(dataset, pipe.unet.config.in_channels, indices=range(config.num_samples))
    units = pending_units(run_config, merge_records(read_records(config.output_dir)))
    # Every process must split the SAME unit list: without this barrier a process that starts late
    # sees units another one has already finished, splits a shorter list, and a unit falls between
    # the two splits (seen: one (batch, threat) missing from a 2-process run).
    accelerator.wait_for_everyone()
    shard = os.path.join(config.output_dir, f"results.rank{accelerator.process_index}.jsonl")
    with accelerator.split_between_processes(units) as mine:
        for batch, threat, attacks in tqdm(mine, desc=f"evaluate[{accelerator.process_index}]",
                                           disable=not accelerator.is_local_main_process):
            lo, hi = batch * config.batch_size, min((batch + 1) * config.batch_size, config.num_samples)
            x, y = x_all[lo:hi].to(accelerator.device), y_all[lo:hi].to(accelerator.device)
            # One record per attack, not per unit: an exact-gradient attack runs for hours on a CPU, and a
            # kill then loses only the attack it interrupted (merge_records joins a unit's records).
            for spec in attacks or [None]:
                record = evaluate_unit(pipe, config, batch, x, y, list(range(lo, hi)), threat, spec and [spec])
                append_record(shard, record)
    accelerator.wait_for_everyone()
    return report_store(config, write=accelerator.is_main_process)


def report_store(config: EvalConfig, write: bool = True) -> dict:
    """Summarize the store as it stands (nothing is run) and write the reports; returns the summary.
    Threats or batches the store lacks are left out, and each threat states its own n."""
    records = read_records(config.output_dir)
    if not records:
        raise FileNotFoundError(f"output_dir {config.output_dir!r} holds no results.rank*.jsonl records to report on")
    summary = summarize(records, config)
    if write:
        from .reports import write_reports

        write_reports(summary, config.report_dir or config.output_dir)
    return summary


def pending_units(config: EvalConfig, stored: Dict[tuple, dict]) -> List[tuple]:
    """(batch, threat or None, attack specs to run) for every unit with results missing. A store made
    with other batches or other attack parameters under the same label is an error, not silently mixed."""
    units = []
    for batch in range(-(-config.num_samples // config.batch_size)):
        ids = list(range(batch * config.batch_size, min((batch + 1) * config.batch_size, config.num_samples)))
        for threat in [None] + list(config.threats):
            record = stored.get((batch, threat_key(threat) if threat else "clean"))
            if record is not None and record["ids"] != ids:
                raise ValueError(f"output_dir {config.output_dir!r} holds batch {batch} with samples {record['ids'][0]}.."
                                 f"{record['ids'][-1]}, but batch_size={config.batch_size}, num_samples={config.num_samples} "
                                 f"make it {ids[0]}..{ids[-1]}: keep the store's batch_size or use another output_dir")
            if threat is None:
                if record is None or any(field not in record for field in SCORES):
                    units.append((batch, None, None))
                continue
            done = record["attacks"] if record else {}
            for spec in config.attacks:
                label = attack_label(spec)
                if label in done and json.loads(json.dumps(attack_params(spec, config))) != done[label]["params"]:
                    raise ValueError(f"output_dir {config.output_dir!r} holds results of attack {label!r} with params "
                                     f"{done[label]['params']}, but the config gives {attack_params(spec, config)}: "
                                     "give the new setting its own 'label' or use another output_dir")
            missing = [spec for spec in config.attacks if attack_label(spec) not in done]
            if missing:
                units.append((batch, threat, missing))
    return units


# The one metric definition: under each decision rule (the first purification, the majority of K, all K),
# a sample counts as robust only if the rule classifies BOTH its clean and its attacked input correctly,
# so an attack is never credited with (nor blamed for) a sample the defense already got wrong.
RULES = {"correct": "accuracy", "vote_correct": "vote", "all_correct": "all_votes"}


def robust_under_rule(rows: List[dict], label: str, rule: str, clean_by_batch: Dict[int, dict]) -> Optional[List[bool]]:
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
    # the config's batches only: a store may hold more samples than this config asks for
    batches = -(-config.num_samples // config.batch_size)
    merged = {k: r for k, r in merge_records(records).items() if r["batch"] < batches}
    clean = sorted((r for r in merged.values() if r["threat"] == "clean"), key=lambda r: r["batch"])
    clean_by_batch = {r["batch"]: r for r in clean}
    out = {"config": asdict(config), "clean": accuracy([c for r in clean for c in r["correct"]]),
           "clean_vote": accuracy([c for r in clean for c in r["vote_correct"]]), "threats": {}}
    if all("all_correct" in r for r in clean):
        out["clean_all_votes"] = accuracy([c for r in clean for c in r["all_correct"]])
    names = {attack_label(spec): spec["name"] for spec in config.attacks}
    for threat in config.threats:
        key = threat_key(threat)
        # batches with a clean record only: robustness is defined against the clean prediction
        rows = sorted((r for r in merged.values() if r["threat"] == key and r["batch"] in clean_by_batch),
                      key=lambda r: r["batch"])
        if not rows:
            continue
        per_rule: Dict[str, Dict[str, List[bool]]] = {rule: {} for rule in RULES}
        result = {"attacks": {}, "n": sum(len(r["ids"]) for r in rows)}
        # the config's attacks, where every batch has them (a store may hold attacks since dropped)
        for label in [n for n in names if all(n in r["attacks"] for r in rows)]:
            scores = {rule: robust_under_rule(rows, label, rule, clean_by_batch) for rule in RULES}
            for rule, correct in scores.items():
                if correct is not None:
                    per_rule[rule][label] = correct
            diag = [r["attacks"][label]["diagnostics"] for r in rows]
            result["attacks"][label] = {
                "name": names[label], **accuracy(scores["correct"]),
                "vote": accuracy(scores["vote_correct"]),
                "all_votes": None if scores["all_correct"] is None else accuracy(scores["all_correct"]),
                "seconds": sum(r["attacks"][label]["seconds"] for r in rows),
                "params": rows[0]["attacks"][label]["params"],
                "grad_l1_mean": _mean([d.get("grad_l1_mean") for d in diag]),
                "zero_grad_fraction": _mean([d.get("zero_grad_fraction") for d in diag]),
            }
        for rule, field in (("correct", "worst_case"), ("vote_correct", "worst_case_vote"),
                            ("all_correct", "worst_case_all_votes")):
            if per_rule[rule].keys() == result["attacks"].keys():  # every attack has the rule's records
                result[field] = accuracy(worst_case(per_rule[rule]))
        result["warnings"] = [f"{key}: {w}" for w in _warnings(result["attacks"])]
        out["threats"][key] = result
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _warnings(attacks: dict) -> List[str]:
    """Masking checks, by each attack's registered type (`ATTACKS`), never by its label."""
    warnings = []
    for label, a in attacks.items():
        if a["zero_grad_fraction"] is not None and a["zero_grad_fraction"] > 0.5 and not ATTACKS[a["name"]].gradient_free:
            warnings.append(f"{label}: {a['zero_grad_fraction']:.0%} of samples had an exactly zero input gradient: "
                            "this attack measured nothing (gradient masking)")
    free = [a["accuracy"] for a in attacks.values() if ATTACKS[a["name"]].gradient_free]
    for label, a in attacks.items():
        entry = ATTACKS[a["name"]]
        if not entry.gradient_free and entry.adaptive and free and min(free) < a["accuracy"]:
            warnings.append(f"gradient-free attack beats {label} ({min(free):.1%} < {a['accuracy']:.1%}): "
                            f"{label}'s gradient is masked or the attack is too weak")
    return warnings


def save_example_grid(pipe, defense, x, x_adv, y, path):
    """PNG grid: clean | adversarial | purified(adversarial), with predicted labels."""
    from .reports import image_grid

    with torch.no_grad():
        purified = defense.purify(x_adv)
        labels = [pipe.classifier(v).argmax(1).tolist() for v in (x, x_adv, purified)]
    image_grid([x, x_adv, purified], labels, y.tolist(), ["clean", "adversarial", "purified"], path)
