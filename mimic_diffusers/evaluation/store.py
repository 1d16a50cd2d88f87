"""The results store: one JSONL shard per process (`results.rank{i}.jsonl`), one line per finished attack
of a unit (batch, threat).

A line is appended in one write and fsynced. A torn last line (a kill mid-write) is skipped on reading,
which never writes, and cut off by the next append, so a killed run resumes without losing or double
counting a sample and loses at most the attack it interrupted. `store.json`, the header, holds what every
record of the store shares (seed, votes, steps, scheduler options, the pipeline's fingerprint, data,
batches): a config that disagrees with it is refused, so records made under other settings never mix. A unit's records are merged on reading, so a store grows across sessions: more samples
(batches), more attacks (an attack added to the config runs only where its results are missing).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Dict, List, Optional

from .config import EvalConfig, attack_label, attack_params, threat_key

# the per-sample scores of a record (see `runner.score_votes`)
SCORES = ("correct", "vote_correct", "all_correct")


HEADER = "store.json"
# what a store's records share: the config's settings (and the pipeline's fingerprint)
HEADER_FIELDS = ("seed", "votes", "num_inference_steps", "scheduler_options", "dataset", "split", "batch_size")


def read_records(output_dir: str) -> List[dict]:
    """All complete records of all shards. Reading never writes: a torn last line (killed mid-write) is
    skipped here and cut off by the next `append_record`."""
    records = []
    for path in sorted(glob.glob(os.path.join(output_dir, "results.rank*.jsonl"))):
        with open(path, "rb") as f:
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        records.extend(json.loads(line) for line in complete.decode().splitlines() if line.strip())
    return records


def merge_records(records: List[dict]) -> Dict[tuple, dict]:
    """(batch, threat) -> one record whose `attacks` joins those of every record of that unit (an attack
    added to the config later is stored in a record of its own). A clean pass rerun to add a score a
    record lacks (`all_correct`, say) completes it; a rerun that disagrees with the stored scores is an error."""
    merged: Dict[tuple, dict] = {}
    for r in records:
        key = (r["batch"], r["threat"])
        if key not in merged:
            merged[key] = {**r, "attacks": {}}
        for score in SCORES:
            if score in r and merged[key].setdefault(score, r[score]) != r[score]:
                raise ValueError(
                    f"the store holds two records of batch {r['batch']} ({r['threat']}) whose {score!r} "
                    "differ: the rerun did not reproduce the stored result"
                )
        merged[key]["attacks"].update(r.get("attacks", {}))
    return merged


def survivors(clean: dict, attacked: List[dict]) -> List[bool]:
    """Per sample: still robust under some decision rule (`SCORES`) after the clean record `clean` and the
    attack results `attacked` (a None score marks a sample a cascade skipped: broken under every rule)."""
    rules = [s for s in SCORES if s in clean and all(s in a for a in attacked)]
    return [any(clean[s][i] and all(a[s][i] for a in attacked) for s in rules) for i in range(len(clean["correct"]))]


def split_record(record: dict, batches: List[int], sizes: List[int]) -> List[dict]:
    """The records of the store's `batches` (of `sizes` samples) that one pass ran together as `record`: every
    per-sample list cut at the batch boundaries, an attack's seconds shared in proportion to the samples it
    attacked, and `pass_batches` naming the batches that shared the pass (and so its diagnostics and
    `max_abs_perturbation`)."""
    if len(batches) == 1:
        return [record]
    out, lo = [], 0
    for batch, n in zip(batches, sizes):
        cut = slice(lo, lo + n)
        part = {**record, "batch": batch, "ids": record["ids"][cut], "labels": record["labels"][cut]}
        part.update({s: record[s][cut] for s in SCORES if s in record}, pass_batches=list(batches))
        if "predictions" in record:
            part["predictions"] = [row[cut] for row in record["predictions"]]
        if "attacks" in record:
            part["attacks"] = {}
            for label, result in record["attacks"].items():
                targets = result.get("targets", [True] * len(record["ids"]))
                share = sum(targets[cut]) / sum(targets) if any(targets) else 1 / len(batches)
                part["attacks"][label] = {
                    **result,
                    **{s: result[s][cut] for s in SCORES},
                    "predictions": [row[cut] for row in result["predictions"]],
                    **({"targets": result["targets"][cut]} if "targets" in result else {}),
                    "seconds": result["seconds"] * share,
                }
        out.append(part)
        lo += n
    return out


def append_record(path: str, record: dict) -> None:
    """Append one record as one line; first cut off a torn last line that a killed writer left."""
    line = (json.dumps(record) + "\n").encode()
    if os.path.isfile(path) and os.path.getsize(path):
        with open(path, "r+b") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of one line: never interleaved with another record
        os.fsync(fd)
    finally:
        os.close(fd)


def pending_units(config: EvalConfig, stored: Dict[tuple, dict]) -> List[tuple]:
    """(batch, threat or None, attack specs to run) for every unit with results missing. A store made
    with other batches or other attack parameters under the same label is an error, not silently mixed."""
    check_ids(config, stored)
    units = []
    for batch in range(config.num_batches):
        for threat in [None] + list(config.threats):
            record = stored.get((batch, threat_key(threat) if threat else "clean"))
            if threat is None:
                if record is None or any(score not in record for score in SCORES):
                    units.append((batch, None, None))
                continue
            done = record["attacks"] if record else {}
            for spec in config.attacks:
                label = attack_label(spec)
                # compared as stored (through JSON): tuples become lists, int keys strings
                if label in done and json.loads(json.dumps(attack_params(spec, config))) != done[label]["params"]:
                    raise ValueError(
                        f"output_dir {config.output_dir!r} holds results of attack {label!r} with params "
                        f"{done[label]['params']}, but the config gives {attack_params(spec, config)}: "
                        "give the new setting its own 'label' or use another output_dir"
                    )
            missing = [spec for spec in config.attacks if attack_label(spec) not in done]
            if missing:
                units.append((batch, threat, missing))
    return units


def expected_header(config: EvalConfig, fingerprint: Optional[str]) -> dict:
    """The header a store of `config` must have (`fingerprint`: the pipeline's, None when not loaded). How
    each record was seeded is the record's own `seed_scheme`, not the header's."""
    header = {name: json.loads(json.dumps(getattr(config, name))) for name in HEADER_FIELDS}
    return {**header, "pipeline_fingerprint": fingerprint}


def read_header(output_dir: str) -> Optional[dict]:
    path = os.path.join(output_dir, HEADER)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def check_header(output_dir: str, expected: dict) -> None:
    """Refuse a config that disagrees with the store's header, naming each option that differs (a None in
    `expected` is not checked: `--report-only` does not load the pipeline)."""
    stored = read_header(output_dir)
    if stored is None:
        return
    differ = [k for k, v in expected.items() if v is not None and stored.get(k) != v]
    if differ:
        details = "; ".join(f"{k}: store {stored.get(k)!r}, config {expected[k]!r}" for k in differ)
        raise ValueError(
            f"output_dir {output_dir!r} holds records made with other settings ({details}): use the "
            "store's settings or another output_dir, so that records of different settings never mix"
        )


def write_header(output_dir: str, header: dict) -> None:
    """Write the header once, atomically (a store that has one keeps it)."""
    if read_header(output_dir) is not None:
        return
    path = os.path.join(output_dir, HEADER)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(header, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def check_ids(config: EvalConfig, stored: Dict[tuple, dict]) -> None:
    """Every stored batch the config covers holds the samples the config gives that batch."""
    for (batch, threat), record in sorted(stored.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if batch < config.num_batches and record["ids"] != config.batch_ids(batch):
            ids = config.batch_ids(batch)
            raise ValueError(
                f"output_dir {config.output_dir!r} holds batch {batch} ({threat}) with samples "
                f"{record['ids'][0]}..{record['ids'][-1]}, but batch_size={config.batch_size}, "
                f"num_samples={config.num_samples} make it {ids[0]}..{ids[-1]}: keep the store's "
                "batch_size or use another output_dir"
            )
