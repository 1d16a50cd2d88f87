"""Running an evaluation: the Accelerate loop over the units a store lacks, one unit's attacks and their
scores, and the example grids.

Seeds (`SEED_SCHEME`): each attack's seed comes from (seed, threat, attack label), so two labels of one attack
are independent restarts; each sample's random start, EOT noise and evaluation noise come from streams keyed
by (that seed, sample id, purpose, draw), so a result depends neither on the process, on resumes, on which
other attacks ran, nor on which other samples share its batch (a cascade's survivors). Every record states
its scheme and seeds; a record without `seed_scheme` was made by the earlier scheme (one stream per batch,
seeded by (seed, batch, threat, attack name), and vote ties given to the smallest label). Attacks live in
`attacks/`; this module only schedules them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shlex
import signal
import sys
import threading
import time
from typing import List, Optional

import torch

from ..attacks import PurifyThenClassify, create_attack, get_attack_entry
from ..defaults import load_pipeline
from ..metrics import majority_vote
from . import store
from .config import EvalConfig, attack_label, attack_params, threat_key
from .summary import report_store

# How the records of this code are seeded and voted (see the module docstring); stored in every record.
SEED_SCHEME = "per-sample-v2"
VOTE_RULE = "tie-not-robust"

# A process whose share of a pass is done waits at the next barrier for the others' units, which take hours on a
# CPU; torch's default of 30 minutes killed such a run (seen: a rank idle for 30 minutes behind a bpda unit).
BARRIER_TIMEOUT = datetime.timedelta(days=7)


class Terminated(KeyboardInterrupt):
    """A run stopped by SIGTERM. A `KeyboardInterrupt`, so whatever handles Ctrl-C handles it too."""

    exit_code = 128 + signal.SIGTERM  # what a shell reports for a process that SIGTERM ended (143)


@contextlib.contextmanager
def _sigterm_raises_terminated():
    """While the run goes, SIGTERM (`kill`, a batch scheduler's stop, torch.distributed.run passing a stop on)
    raises `Terminated` in the main thread, so the run ends as under Ctrl-C and keeps its line; Python's default
    would end it without one. A process started in the background of a script ignores SIGINT, so SIGTERM is how
    such a run is stopped."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    previous = signal.SIG_DFL if previous is None else previous  # a handler set outside Python reads as None

    def terminated(signum, frame):
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM acts as it would without the run
        raise Terminated

    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def unit_seed(*parts) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def sample_seeds(seed: int, ids: List[int]) -> List[int]:
    """One seed per sample id: the root of that sample's noise streams under `seed`."""
    return [unit_seed(seed, "sample", i) for i in ids]


def evaluate_unit(
    pipe,
    config: EvalConfig,
    batch: int,
    x,
    y,
    ids,
    threat: Optional[dict],
    attacks=None,
    targets: Optional[List[bool]] = None,
) -> dict:
    """One batch under one threat (or clean when threat is None) -> a JSON-able record.
    `attacks`: the attack specs to run (default: all of the config's). `targets`: the samples to attack (a
    cascade's survivors; default all); the others get None scores and the record lists `targets`."""
    record = {
        "batch": batch,
        "threat": threat_key(threat) if threat else "clean",
        "ids": ids,
        "labels": y.tolist(),
        "seed_scheme": SEED_SCHEME,
        "vote_rule": VOTE_RULE,
    }
    defense = PurifyThenClassify(pipe, num_inference_steps=config.num_inference_steps)
    if threat is None:
        record["seed"] = unit_seed(config.seed, "clean")
        defense.reseed(sample_seeds(record["seed"], ids))
        predictions = defense.predict(x, config.votes).tolist()
        record.update(score_votes(predictions, y.tolist()), predictions=predictions)
        return record
    record["attacks"] = {}
    picked = [i for i in range(len(ids)) if targets is None or targets[i]]
    x, y = x[picked], y[picked]
    for spec in config.attacks if attacks is None else attacks:
        params, label = attack_params(spec, config), attack_label(spec)
        seed = unit_seed(config.seed, record["threat"], label)
        seeds = sample_seeds(seed, [ids[i] for i in picked])
        start = time.time()
        result = {
            "name": spec["name"],
            "seed": seed,
            **{score: [None] * len(ids) for score in store.SCORES},
            "predictions": [[None] * len(ids) for _ in range(config.votes)],
            "max_abs_perturbation": 0.0,
            "diagnostics": {},
        }
        if picked:
            x_adv, diagnostics = run_attack(pipe, spec["name"], threat, seeds, params, x, y)
            defense.reseed(seeds)
            predictions = defense.predict(x_adv, config.votes).tolist()
            for score, values in score_votes(predictions, y.tolist()).items():
                for i, value in zip(picked, values):
                    result[score][i] = value
            for k, row in enumerate(predictions):
                for i, value in zip(picked, row):
                    result["predictions"][k][i] = value
            result.update(
                max_abs_perturbation=float((x_adv - x).abs().flatten(1).max(1).values.max()), diagnostics=diagnostics
            )
            if batch == 0 and config.examples:
                save_example_grid(
                    pipe,
                    defense,
                    x[: config.examples],
                    x_adv[: config.examples],
                    y[: config.examples],
                    os.path.join(config.report_dir or config.output_dir, f"examples_{record['threat']}_{label}.png"),
                )
        record["attacks"][label] = {
            **result,
            "seconds": time.time() - start,
            "params": params,
            **({} if targets is None else {"targets": list(targets)}),
        }
    return record


def run_attack(pipe, name: str, threat: dict, seeds: List[int], params: dict, x, y) -> tuple:
    """(x_adv, diagnostics) of attack `name` on `x`, one seed per sample. An attack that queries the defense on
    subsets of its batch (`AttackEntry.batch_independent` False) runs one sample at a time, so that no result
    depends on the batch; its numeric diagnostics are then averaged over the samples."""

    def attack(xs, ys, ss):
        a = create_attack(name, pipe, eps=threat["eps"], norm=threat["norm"], seed=ss, **params)
        return a(xs, ys), dict(a.diagnostics)

    if get_attack_entry(name).batch_independent:
        return attack(x, y, seeds)
    runs = [attack(x[i : i + 1], y[i : i + 1], seeds[i : i + 1]) for i in range(len(x))]
    first = runs[0][1]
    diagnostics = {
        k: (sum(r[1][k] for r in runs) / len(runs) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
        for k, v in first.items()
    }
    return torch.cat([r[0] for r in runs]), diagnostics


def score_votes(votes: List[List[int]], labels: List[int]) -> dict:
    """`votes[k][i]`: label of sample i in purification k. `correct` scores the first purification,
    `vote_correct` the majority (a tie is not correct: `majority_vote`), `all_correct` every one of the K
    (DiffBreak's reading: an attack that fools any purification has won, as it would on a user who purifies
    until the label changes)."""
    return {
        "correct": [p == t for p, t in zip(votes[0], labels)],
        "vote_correct": [p == t for p, t in zip(majority_vote(votes), labels)],
        "all_correct": [all(v[i] == t for v in votes) for i, t in enumerate(labels)],
    }


def run_evaluation(
    config: EvalConfig,
    accelerator=None,
    run_eps=None,
    run_attacks=None,
    note: Optional[str] = None,
    batches_per_pass: int = 1,
) -> dict:
    """Run (or resume) every unit not yet in the store, then write the reports.

    Args:
        config (`EvalConfig`): pipeline, data, threats, attacks, votes and where the store and reports go.
        accelerator (`accelerate.Accelerator`, *optional*): one per process when data parallel.
        run_eps (`list[float]`, *optional*): run only these threats (the CLI's `--eps`); the reports still
            cover every threat of the config found in the store.
        run_attacks (`list[str]`, *optional*): run only the attacks with these labels (the CLI's `--attacks`;
            in a cascade, its first ones): a screen whose reports flag the attacks still missing.
        note (`str`, *optional*): kept with this run's line in `runs.jsonl` (say what makes its wall time not
            comparable: shared cores, a resumed run). A run stopped by Ctrl-C or SIGTERM (`kill`, a batch
            scheduler's stop, torch.distributed.run passing a stop on) writes its line too, with the units it
            finished and a `stopped` entry, then raises `KeyboardInterrupt` (`Terminated` for SIGTERM).
        batches_per_pass (`int`, defaults to 1): how many of the store's batches one forward pass runs together
            (the CLI's `--batches-per-pass`). Only speed and memory change: each sample's noise streams make its
            result independent of its batch, and the store keeps one record per batch. Worth it where a batch
            of `batch_size` leaves a GPU idle; a kill then loses the attack of every batch in the pass.
    Returns:
        `dict`: the summary (also written as summary.json next to results.md).
    Example:
        >>> config = EvalConfig.from_file("configs/mnist-smoke.yaml")
        >>> summary = run_evaluation(config)  # worst case at eps 0.3: summary's threats, "Linf-0.3"
    """
    from accelerate import Accelerator, InitProcessGroupKwargs
    from tqdm.auto import tqdm

    from ..data import load_image_dataset, to_tensors

    if isinstance(batches_per_pass, bool) or not isinstance(batches_per_pass, int) or batches_per_pass < 1:
        raise ValueError(f"batches_per_pass must be an integer >= 1, got {batches_per_pass!r}")
    run_config = dataclasses.replace(config, threats=list(config.threats), attacks=list(config.attacks))
    run_config = run_config.select_eps(run_eps) if run_eps else run_config
    run_config = run_config.select_attacks(run_attacks) if run_attacks else run_config
    accelerator = accelerator or Accelerator(kwargs_handlers=[InitProcessGroupKwargs(timeout=BARRIER_TIMEOUT)])
    os.makedirs(config.output_dir, exist_ok=True)
    os.makedirs(config.report_dir or config.output_dir, exist_ok=True)
    pipe = load_pipeline(config.pipeline, config.scheduler_options, accelerator.device)
    header = store.expected_header(config, pipeline_fingerprint(pipe))
    store.check_header(config.output_dir, header)
    dataset = load_image_dataset(config.dataset, split=config.split)
    if config.num_samples > len(dataset):
        raise ValueError(
            f"num_samples={config.num_samples} exceeds the {len(dataset)} images of {config.dataset}/{config.split}"
        )
    x_all, y_all = to_tensors(dataset, pipe.unet.config.in_channels, indices=range(config.num_samples))
    units = store.pending_units(run_config, store.merge_records(store.read_records(config.output_dir)))
    accelerator.wait_for_everyone()  # every process has checked the store before the header is written
    if units and accelerator.is_main_process:
        store.write_header(config.output_dir, header)
    started = time.time()
    shard = os.path.join(config.output_dir, f"results.rank{accelerator.process_index}.jsonl")
    with _sigterm_raises_terminated():
        try:
            # Clean passes first: an attack is scored against the clean prediction, and a cascade attacks only
            # the samples its clean pass (and the earlier attacks) got right.
            for phase in ([u for u in units if u[1] is None], [u for u in units if u[1] is not None]):
                # Every process reads the store and splits the SAME unit list, then writes: without the barriers
                # a process that starts late sees units another one has finished (or a line it is writing), and
                # a unit falls between the two splits (seen: one (batch, threat) missing from a 2-process run).
                accelerator.wait_for_everyone()
                stored = store.merge_records(store.read_records(config.output_dir)) if config.cascade else {}
                accelerator.wait_for_everyone()
                with accelerator.split_between_processes(phase) as mine:
                    for group in tqdm(
                        passes(mine, batches_per_pass),
                        desc=f"evaluate[{accelerator.process_index}]",
                        disable=not accelerator.is_local_main_process,
                    ):
                        run_pass(pipe, config, group, x_all, y_all, stored, shard, accelerator.device)
            accelerator.wait_for_everyone()
        except KeyboardInterrupt as stop:  # a stopped run keeps its line too: what ran, where, for how long
            if accelerator.is_main_process:
                left = store.pending_units(run_config, store.merge_records(store.read_records(config.output_dir)))
                how = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
                run = dict(units=len(units) - len(left), stopped=f"{how} with {len(left)} of {len(units)} units left")
                _record_run(config, accelerator, started, note, batches_per_pass, **run)
            raise
    if units and accelerator.is_main_process:  # the store keeps how each of its runs was made
        _record_run(config, accelerator, started, note, batches_per_pass, units=len(units))
    return report_store(config, write=accelerator.is_main_process)


def _record_run(config, accelerator, started: float, note, batches_per_pass: int, **facts) -> None:
    """Append this run's line to the store's `runs.jsonl`: its command, `facts` (units run, a stop), wall time,
    machine, and the note."""
    store.append_record(
        os.path.join(config.output_dir, "runs.jsonl"),
        {
            "command": command_line(),
            **facts,
            "wall_s": round(time.time() - started, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {accelerator.num_processes} process(es), "
            f"device {accelerator.device.type}, torch {torch.__version__}",
            **({"note": note} if note else {}),
            **({"batches_per_pass": batches_per_pass} if batches_per_pass > 1 else {}),
        },
    )


def command_line(argv: Optional[List[str]] = None, orig_argv: Optional[List[str]] = None, env=None) -> str:
    """This process's command, quoted as a shell takes it. A module run (`python -m pkg.mod`, which leaves the
    module's file in `sys.argv[0]`) reads as typed, and a process started by torch.distributed.run (or
    `accelerate launch`) as the launcher's command with its process count."""
    argv, orig = list(sys.argv if argv is None else argv), list(sys.orig_argv if orig_argv is None else orig_argv)
    env = os.environ if env is None else env
    interpreter = orig[1 : len(orig) - len(argv) + 1]  # the interpreter's own options: ["-u", "-m", "pkg.mod"]
    launched = "TORCHELASTIC_RUN_ID" in env
    if interpreter[-2:-1] == ["-m"]:
        target = ["-m", interpreter[-1]]
    elif argv[0].endswith(".py") or launched:  # a launcher needs a console script's path
        target = [argv[0]]
    else:  # a console script (`mimic-diffusers evaluate ...`), by its name
        return shlex.join([os.path.basename(argv[0]), *argv[1:]])
    launcher = (
        ["-m", "torch.distributed.run", "--nproc_per_node", env.get("LOCAL_WORLD_SIZE", "?")] if launched else []
    )
    return shlex.join(["python", *launcher, *target, *argv[1:]])


def passes(units: List[tuple], size: int) -> List[List[tuple]]:
    """The units (batch, threat, attacks) in passes of at most `size`, each pass one threat and one list of
    attacks to run, in the order the units first need them (one unit a pass keeps the units' own order)."""
    if size == 1:
        return [[unit] for unit in units]
    groups: dict = {}
    for unit in units:
        groups.setdefault(json.dumps(unit[1:], sort_keys=True), []).append(unit)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


def run_pass(pipe, config: EvalConfig, group: List[tuple], x_all, y_all, stored: dict, shard: str, device) -> None:
    """Run the units of one pass together and append one record per batch and attack to `shard`."""
    batches, threat, attacks = [u[0] for u in group], group[0][1], group[0][2]
    sizes = [len(config.batch_ids(b)) for b in batches]
    ids = [i for b in batches for i in config.batch_ids(b)]
    x, y = x_all[ids].to(device), y_all[ids].to(device)
    key = threat_key(threat) if threat else "clean"
    done = {b: dict(stored.get((b, key), {}).get("attacks", {})) for b in batches}
    # One record per attack, not per unit: a chain-gradient attack runs for hours on a CPU, and a kill then
    # loses only the attack it interrupted (merge_records joins a unit's records).
    for spec in attacks or [None]:
        targets = None
        if config.cascade and spec is not None:
            earlier = [attack_label(s) for s in config.attacks[: config.attacks.index(spec)]]
            targets = [
                t
                for b in batches
                for t in store.survivors(stored[(b, "clean")], [done[b][k] for k in earlier if k in done[b]])
            ]
        record = evaluate_unit(pipe, config, batches[0], x, y, ids, threat, spec and [spec], targets)
        for batch, part in zip(batches, store.split_record(record, batches, sizes)):
            store.append_record(shard, part)
            done[batch].update(part.get("attacks", {}))


def pipeline_fingerprint(pipe) -> str:
    """sha256 of what makes the defense: every component's config and weights (the scheduler's config with
    the evaluation's options applied), so a store never mixes records of two pipelines."""
    h = hashlib.sha256()
    for name in ("unet", "scheduler", "classifier"):
        component = getattr(pipe, name, None)
        if component is None:
            continue
        config = getattr(component, "config", None)
        items = canonical_config(config) if config is not None else None
        h.update(f"{name}:{items if items is not None else type(component).__name__}".encode())
        if isinstance(component, torch.nn.Module):
            for key, tensor in sorted(component.state_dict().items()):
                h.update(key.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def canonical_config(config) -> list:
    """A component's config as sorted (key, value) pairs, less what is no part of the defense: where the weights
    were loaded from (a store resumes from any install path) and the order in which diffusers lists the defaults
    it filled in (taken from a set, so it changes with each process's hash seed)."""
    return sorted(
        (k, sorted(v) if k == "_use_default_values" else v) for k, v in dict(config).items() if k != "_name_or_path"
    )


def save_example_grid(pipe, defense, x, x_adv, y, path):
    """PNG grid: clean | adversarial | purified(adversarial), with predicted labels."""
    from ..reports import image_grid

    with torch.no_grad():
        purified = defense.purify(x_adv)
        labels = [pipe.classifier(v).argmax(1).tolist() for v in (x, x_adv, purified)]
    image_grid([x, x_adv, purified], labels, y.tolist(), ["clean", "adversarial", "purified"], path)
