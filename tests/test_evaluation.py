"""Evaluation loop: metrics, reports, resume after a kill, data parallel over 2 CPU processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from conftest import start_forked_cli

from mimic_diffusers.evaluation import (
    EvalConfig,
    merge_records,
    pending_units,
    read_records,
    run_evaluation,
    score_votes,
)
from mimic_diffusers.metrics import accuracy, majority_vote, wilson_interval, worst_case

USES_FORK_SERVER = True  # children from the fork server (tests/conftest.py: start_forked_cli)


def test_wilson_interval_known_values():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert accuracy([True, False, True, True])["accuracy"] == 0.75


def test_majority_vote_and_worst_case():
    assert majority_vote([[1, 2, 3], [1, 0, 3], [4, 0, 3]]) == [1, 0, 3]
    assert majority_vote([[1], [2]]) == [None]  # a tie names no label
    assert worst_case({"a": [True, True, False], "b": [True, False, True]}) == [True, False, False]
    scored = score_votes([[1, 2, 3], [1, 0, 3], [4, 2, 3]], [1, 2, 3])
    assert scored == {
        "correct": [True, True, True],
        "vote_correct": [True, True, True],
        "all_correct": [False, False, True],
    }


@pytest.fixture(scope="module")
def pipeline_dir(tiny_pipeline_dir):
    return tiny_pipeline_dir


def make_config(pipeline_dir, output_dir, **kw):
    config = dict(
        pipeline=pipeline_dir,
        output_dir=str(output_dir),
        num_samples=6,
        batch_size=2,
        num_inference_steps=2,  # 999 and 499: the second step is guided
        votes=3,
        threats=[{"norm": "Linf", "eps": 0.1}, {"norm": "Linf", "eps": 0.3}],
        attacks=[
            {"name": "pgd-classifier", "params": {"steps": 3}},
            {"name": "bpda-eot", "params": {"steps": 1}},
            {"name": "square", "params": {"n_queries": 3}},
        ],
        examples=0,  # the example grids are drawn (and checked) once, in a store of one attack
    )
    config.update(kw)
    return config


@pytest.fixture(scope="module")
def reference_store(pipeline_dir, tmp_path_factory):
    """One uninterrupted run of the default config: its folder and summary."""
    output_dir = tmp_path_factory.mktemp("reference")
    summary = run_evaluation(EvalConfig(**make_config(pipeline_dir, output_dir)).validate())
    return output_dir, summary


def normalized(records):
    """Results keyed by (batch, threat, attack), without timings (which legitimately differ between runs) and
    with gradient diagnostics to 5 significant digits."""
    out = {}
    for r in json.loads(json.dumps(records)):
        for name, result in r.pop("attacks", {"clean": {}}).items():
            result.pop("seconds", None)
            # gradient norms are sums over a batch: two processes may round their last bit differently
            result["diagnostics"] = json.loads(
                json.dumps(result.get("diagnostics", {})), parse_float=lambda v: float(f"{float(v):.5g}")
            )
            key = (r["batch"], r["threat"], name)
            assert key not in out, f"{key} counted twice"
            out[key] = {**r, "result": result}
    return out


def test_reports_written(reference_store):
    tmp_path, summary = reference_store
    for name in ("summary.json", "results.md", "accuracy_vs_eps.png", "results.rank0.jsonl"):
        assert os.path.isfile(tmp_path / name), name
    assert set(summary["threats"]) == {"Linf-0.1", "Linf-0.3"}
    t = summary["threats"]["Linf-0.1"]
    assert t["n"] == 6 and t["worst_case"]["accuracy"] <= min(a["accuracy"] for a in t["attacks"].values())
    # fooling any one of the 3 purifications counts: never above the first purification's accuracy
    assert all(a["all_votes"]["accuracy"] <= a["accuracy"] for a in t["attacks"].values())
    assert t["worst_case_all_votes"]["accuracy"] <= t["worst_case"]["accuracy"]
    assert "worst case" in open(tmp_path / "results.md").read()
    run = json.loads((tmp_path / "runs.jsonl").read_text().splitlines()[-1])  # how the store was made
    assert run["units"] == 9 and run["wall_s"] > 0 and "CPU cores" in run["machine"]


def evaluate_in_child(config_path, output_dir, log_path, records: int):
    """`mimic-diffusers evaluate` in a child process (from the fork server: imports done), returned once its store
    holds `records` records, to be stopped mid-run."""
    proc = start_forked_cli(["evaluate", "--config", str(config_path)], log_path)
    shard = output_dir / "results.rank0.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not shard.exists() or shard.read_text().count("\n") < records):
        time.sleep(0.02)
    return proc


def test_killed_run_resumes_without_loss_or_double_counting(pipeline_dir, reference_store, tmp_path):
    (reference_dir, _), killed_dir = reference_store, tmp_path / "killed"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(make_config(pipeline_dir, killed_dir)))
    proc = evaluate_in_child(config_path, killed_dir, tmp_path / "killed.out", records=2)
    shard = killed_dir / "results.rank0.jsonl"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    done_before = shard.read_text().count("\n")
    # one record per attack: 3 clean + 3 batches x 2 threats x 3 attacks
    assert 2 <= done_before < 21, "the kill must land mid-run"
    with open(shard, "a") as f:  # a record torn by the kill mid-write
        f.write('{"batch": 2, "threat": "Linf-0.3", "ids": [4, ')
    run_evaluation(EvalConfig.from_file(str(config_path)))
    assert shard.read_text().endswith("\n") and shard.read_text().count("\n") == 21
    assert normalized(read_records(str(killed_dir))) == normalized(read_records(str(reference_dir)))
    ref = json.loads((reference_dir / "summary.json").read_text())
    got = json.loads((killed_dir / "summary.json").read_text())
    for key in ref["threats"]:
        for name in ref["threats"][key]["attacks"]:
            assert got["threats"][key]["attacks"][name]["correct"] == ref["threats"][key]["attacks"][name]["correct"]
        assert got["threats"][key]["worst_case"] == ref["threats"][key]["worst_case"]


def test_a_stopped_run_records_its_line_and_resumes(pipeline_dir, reference_store, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) mid-run: the store's runs.jsonl still gets the run's line (units finished, the
    stop, wall time, note), the interrupt propagates, and a rerun finishes the store as an uninterrupted run."""
    from mimic_diffusers.evaluation import runner

    real_run_pass, passes_run = runner.run_pass, []

    def stopped_after_two(*args, **kwargs):
        if len(passes_run) == 2:
            raise KeyboardInterrupt
        passes_run.append(real_run_pass(*args, **kwargs))

    config = EvalConfig(**make_config(pipeline_dir, tmp_path, threats=[{"norm": "Linf", "eps": 0.3}])).validate()
    monkeypatch.setattr(runner, "run_pass", stopped_after_two)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(config, note="stopped on purpose")
    assert signal.getsignal(signal.SIGTERM) is handler  # SIGTERM raises Terminated only while a run goes
    (run,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert run["units"] == 2 and run["stopped"] == "interrupted with 4 of 6 units left", run
    assert run["note"] == "stopped on purpose" and run["wall_s"] > 0 and "CPU cores" in run["machine"]
    monkeypatch.setattr(runner, "run_pass", real_run_pass)
    run_evaluation(config)
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 and runs[1]["units"] == 4 and "stopped" not in runs[1]
    reference = normalized(read_records(str(reference_store[0])))  # the reference store also holds eps 0.1
    assert normalized(read_records(str(tmp_path))) == {k: v for k, v in reference.items() if k[1] != "Linf-0.1"}


def test_sigterm_stops_a_run_as_ctrl_c_does_and_keeps_its_line(pipeline_dir, tmp_path):
    """`kill` (SIGTERM, what a batch scheduler and torch.distributed.run send) on `mimic-diffusers evaluate`
    mid-run: the command exits 143, as a shell expects of a process SIGTERM ended, and the store's runs.jsonl
    gets the run's line with the units it finished, as after Ctrl-C (Python's default would leave none)."""
    output_dir, config_path = tmp_path / "store", tmp_path / "config.json"
    config_path.write_text(json.dumps(make_config(pipeline_dir, output_dir)))
    proc = evaluate_in_child(config_path, output_dir, tmp_path / "stopped.out", records=4)
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(timeout=240)
    assert proc.exitcode == 143, (tmp_path / "stopped.out").read_text()
    (run,) = [json.loads(line) for line in (output_dir / "runs.jsonl").read_text().splitlines()]
    # 9 units (3 clean passes, 3 batches x 2 threats); those the store holds in full are the ones the run finished
    left = pending_units(EvalConfig.from_file(str(config_path)), merge_records(read_records(str(output_dir))))
    assert 3 <= run["units"] == 9 - len(left) < 9, run
    assert run["stopped"] == f"stopped by SIGTERM with {len(left)} of 9 units left" and run["wall_s"] > 0
    assert "interrupted" in (tmp_path / "stopped.out").read_text()


def test_attack_added_later_runs_alone_and_matches_a_run_with_it_from_the_start(
    pipeline_dir, reference_store, tmp_path
):
    """A store grows: adding an attack to the config runs only that attack (one record more per unit),
    and the merged results equal those of a run that had the attack from the start (the reference store)."""
    attacks = make_config(pipeline_dir, tmp_path)["attacks"]
    first, grown = attacks[:2], tmp_path / "grown"
    run_evaluation(EvalConfig(**make_config(pipeline_dir, grown, attacks=first, num_samples=4)).validate())
    before, first_report = read_records(str(grown)), (grown / "results.md").read_text()
    # a second config grows the first one's store and writes its reports apart (report_dir)
    summary = run_evaluation(
        EvalConfig(**make_config(pipeline_dir, grown, num_samples=6, report_dir=str(tmp_path / "reports"))).validate()
    )
    assert (grown / "results.md").read_text() == first_report
    assert "square" in (tmp_path / "reports" / "results.md").read_text()
    after = read_records(str(grown))
    assert after[: len(before)] == before  # nothing rewritten
    added = after[len(before) :]
    # batches 0-1: only the new attack on each threat; batch 2: clean + every attack on each threat,
    # one record per attack
    assert sorted((r["batch"], r["threat"], tuple(r.get("attacks", {}))) for r in added) == [
        (0, "Linf-0.1", ("square",)),
        (0, "Linf-0.3", ("square",)),
        (1, "Linf-0.1", ("square",)),
        (1, "Linf-0.3", ("square",)),
        (2, "Linf-0.1", ("bpda-eot",)),
        (2, "Linf-0.1", ("pgd-classifier",)),
        (2, "Linf-0.1", ("square",)),
        (2, "Linf-0.3", ("bpda-eot",)),
        (2, "Linf-0.3", ("pgd-classifier",)),
        (2, "Linf-0.3", ("square",)),
        (2, "clean", ()),
    ]
    expected = reference_store[1]
    for key, threat in expected["threats"].items():
        got = summary["threats"][key]
        assert list(got["attacks"]) == ["pgd-classifier", "bpda-eot", "square"] and got["n"] == 6
        for name, result in threat["attacks"].items():
            assert got["attacks"][name]["correct"] == result["correct"], (key, name)
        assert got["worst_case"] == threat["worst_case"]
    # a config asking for fewer samples than the store holds reports its own N
    smaller = run_evaluation(
        EvalConfig(**make_config(pipeline_dir, grown, num_samples=4, report_dir=str(tmp_path / "reports4"))).validate()
    )
    assert smaller["threats"]["Linf-0.1"]["n"] == 4 and smaller["threats"]["Linf-0.1"]["attacks"]["square"]["n"] == 4
    assert read_records(str(grown)) == after


def test_store_of_other_batches_or_attack_params_is_a_clear_error(pipeline_dir, tmp_path):
    attacks = [{"name": "pgd-classifier", "params": {"steps": 2}}]
    run_evaluation(EvalConfig(**make_config(pipeline_dir, tmp_path, attacks=attacks, num_samples=4)).validate())
    with pytest.raises(ValueError, match="batch_size: store 2, config 4"):
        run_evaluation(
            EvalConfig(**make_config(pipeline_dir, tmp_path, attacks=attacks, num_samples=4, batch_size=4)).validate()
        )
    changed = [{"name": "pgd-classifier", "params": {"steps": 5}}]
    with pytest.raises(ValueError, match="attack 'pgd-classifier' with params .*'label'"):
        run_evaluation(EvalConfig(**make_config(pipeline_dir, tmp_path, attacks=changed, num_samples=4)).validate())
    relabelled = [{**changed[0], "label": "pgd-classifier-5"}]
    summary = run_evaluation(
        EvalConfig(**make_config(pipeline_dir, tmp_path, attacks=attacks + relabelled, num_samples=4)).validate()
    )
    assert list(summary["threats"]["Linf-0.1"]["attacks"]) == ["pgd-classifier", "pgd-classifier-5"]


CASCADE_ATTACKS = [
    {"name": "pgd-classifier", "params": {"steps": 3}},
    {"name": "bpda-eot", "params": {"steps": 1}},
    {"name": "square", "params": {"n_queries": 3}},
]


@pytest.fixture(scope="module")
def cascade_store(pipeline_dir, tmp_path_factory):
    """One single-process cascade run of three attacks: its folder and summary."""
    output_dir = tmp_path_factory.mktemp("cascade")
    # The data-parallel ranks run with OMP_NUM_THREADS=1; this reference must too, since CPU kernels may sum in
    # a thread-count-dependent order and sign(.) in the guidance can amplify a last-bit difference.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = EvalConfig(**make_config(pipeline_dir, output_dir, attacks=CASCADE_ATTACKS, cascade=True))
        return output_dir, run_evaluation(config.validate())
    finally:
        torch.set_num_threads(threads)


def test_batches_run_together_in_one_pass_give_the_records_of_batches_run_alone(pipeline_dir, cascade_store, tmp_path):
    """`batches_per_pass`: three batches of each threat in one pass; every sample's record is the one it gets in
    its own batch, the store keeps one record per batch and attack, and the pass's shared figures say so."""
    (single, _), together = cascade_store, tmp_path / "together"
    config = EvalConfig(**make_config(pipeline_dir, together, attacks=CASCADE_ATTACKS, cascade=True)).validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference was made
    try:
        run_evaluation(config, batches_per_pass=3)
    finally:
        torch.set_num_threads(threads)
    records = read_records(str(together))
    assert len(records) == 3 + 3 * 2 * 3  # per batch: a clean record, and one per threat and attack
    assert {tuple(r["pass_batches"]) for r in records} == {(0, 1, 2)}

    def per_sample(records):  # what depends on the pass alone (timing, batch-level diagnostics) left out
        out = normalized(records)
        for r in out.values():
            r.pop("pass_batches", None)
            r["result"].pop("diagnostics", None), r["result"].pop("max_abs_perturbation", None)
        return out

    assert per_sample(records) == per_sample(read_records(str(single)))
    run = json.loads((together / "runs.jsonl").read_text().splitlines()[-1])
    assert run["batches_per_pass"] == 3 and run["units"] == 9
    with pytest.raises(ValueError, match="batches_per_pass must be an integer >= 1, got 0"):
        run_evaluation(config, batches_per_pass=0)


LATE_RANK_S = 6
LATE_RANK_LAUNCHER = f"""
import sys
from forked_cli import late_first_read
from mimic_diffusers.cli import main
late_first_read({LATE_RANK_S})
sys.exit(main(sys.argv[1:]))
"""


def run_ranks_forked(argv, port, logs):
    """Two ranks started by the fork server (tests/forked_cli.py) with the environment torchrun gives its workers."""
    env = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    env["ACCELERATE_USE_CPU"] = "true"
    ranks = [
        start_forked_cli(
            argv,
            logs / f"rank{rank}.out",
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            late_rank_s=LATE_RANK_S,
        )
        for rank in (0, 1)
    ]
    for rank in ranks:
        rank.join(400)
    logs_text = "".join((logs / f"rank{r}.out").read_text()[-2000:] for r in (0, 1))
    assert [rank.exitcode for rank in ranks] == [0, 0], logs_text


def run_ranks_with_torchrun(argv, port, logs):
    """`python -m torch.distributed.run --nproc_per_node 2`, as a user launches it."""
    launcher = logs / "launch.py"
    launcher.write_text(LATE_RANK_LAUNCHER)
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "PYTHONPATH": tests}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            port,
            str(launcher),
            *argv,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    "launch",
    [run_ranks_forked, pytest.param(run_ranks_with_torchrun, marks=pytest.mark.slow)],
    ids=["forked-ranks", "torchrun"],
)
def test_data_parallel_two_cpu_processes_match_single_process(pipeline_dir, cascade_store, tmp_path, launch):
    """Rank 1 starts reading the store 6 s late, by which time rank 0 alone could finish its units:
    every unit must still be run exactly once (a barrier keeps both ranks on the same unit list). A cascade
    reads the clean passes that the other rank ran: both ranks finish them before any attack starts. The
    ranks come from the fork server (they start with the imports done) or, in the slow lane, from torchrun."""
    (single, _), parallel = cascade_store, tmp_path / "parallel"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(make_config(pipeline_dir, parallel, attacks=CASCADE_ATTACKS, cascade=True)))
    with socket.socket() as sock:  # a free port: a fixed one can collide with another run
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    launch(["evaluate", "--config", str(config_path)], port, tmp_path)
    assert (parallel / "results.rank0.jsonl").exists() and (parallel / "results.rank1.jsonl").exists()
    assert normalized(read_records(str(parallel))) == normalized(read_records(str(single)))


def test_config_errors(pipeline_dir, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**make_config(pipeline_dir, tmp_path), "atacks": []}))
    with pytest.raises(ValueError, match="unknown options"):
        EvalConfig.from_file(str(path))
    with pytest.raises(FileNotFoundError):
        EvalConfig.from_file(str(tmp_path / "missing.yaml"))
    for bad, match in [
        ({"attacks": [{"name": "nope"}]}, "unknown attack"),
        ({"threats": [{"norm": "Linf", "eps": -1}]}, "eps"),
        ({"threats": [{"norm": "L7", "eps": 1}]}, "norm"),
        ({"batch_size": 0}, "batch_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            EvalConfig(**make_config(pipeline_dir, tmp_path, **bad)).validate()


def test_one_eps_run_reports_every_eps_in_the_store_and_report_only_runs_nothing(pipeline_dir, tmp_path, capsys):
    """`evaluate --eps 0.3` after a both-eps run must not shrink the report to eps 0.3, and
    `--report-only` rewrites the reports from the store without running a unit."""
    from mimic_diffusers.cli import main
    from mimic_diffusers.evaluation import report_store

    attacks = [{"name": "pgd-classifier", "params": {"steps": 2}}]
    config_path = tmp_path / "config.json"
    config = make_config(pipeline_dir, tmp_path / "store", attacks=attacks, num_samples=2, examples=2)
    config_path.write_text(json.dumps(config))
    assert main(["evaluate", "--config", str(config_path)]) == 0
    for threat in ("Linf-0.1", "Linf-0.3"):  # a grid of examples per threat and attack, from the first batch
        assert os.path.getsize(tmp_path / "store" / f"examples_{threat}_pgd-classifier.png") > 1000, threat
    grow = ["evaluate", "--config", str(config_path), "--num-samples", "4"]
    assert main(grow + ["--eps", "0.3"]) == 0
    summary = json.loads((tmp_path / "store" / "summary.json").read_text())
    assert {k: v["n"] for k, v in summary["threats"].items()} == {"Linf-0.1": 2, "Linf-0.3": 4}
    before = sorted(str(r) for r in read_records(str(tmp_path / "store")))
    (tmp_path / "store" / "results.md").unlink()
    assert main(grow + ["--report-only"]) == 0
    assert (tmp_path / "store" / "results.md").exists()
    assert sorted(str(r) for r in read_records(str(tmp_path / "store"))) == before  # nothing ran
    fresh = tmp_path / "config-fresh-report-dir.json"  # a report_dir no run has written to yet
    fresh.write_text(
        json.dumps({**json.loads(config_path.read_text()), "report_dir": str(tmp_path / "new" / "reports")})
    )
    assert main(["evaluate", "--config", str(fresh), "--num-samples", "4", "--report-only"]) == 0
    assert (tmp_path / "new" / "reports" / "results.md").exists()
    assert main(grow + ["--report-only", "--eps", "0.3"]) == 2
    assert "--report-only runs nothing" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="holds no results"):
        report_store(EvalConfig(**make_config(pipeline_dir, tmp_path / "empty")).validate())


def test_summarize_one_metric_definition_worst_cases_and_warnings_by_type():
    """Hand-built records with known answers: every rule (first purification, majority of 3, all 3)
    counts a sample only if the rule gets its clean input right too; the worst case per sample under
    each rule; warnings read the attack's registered type, so a labelled Square is still gradient-free
    and the non-adaptive classifier PGD is never flagged."""
    from mimic_diffusers.evaluation import summarize

    T, F = True, False
    clean = {
        "batch": 0,
        "threat": "clean",
        "ids": [0, 1, 2, 3],
        "labels": [0, 1, 2, 3],
        "correct": [T, T, T, F],
        "vote_correct": [T, T, F, T],
        "all_correct": [T, F, T, F],
    }

    def result(correct, vote, every, zero=None):
        return {
            "correct": correct,
            "vote_correct": vote,
            "all_correct": every,
            "seconds": 1.0,
            "params": {},
            "diagnostics": {} if zero is None else {"zero_grad_fraction": zero, "grad_l1_mean": 1 - zero},
        }

    attacked = {
        "batch": 0,
        "threat": "Linf-0.3",
        "ids": [0, 1, 2, 3],
        "labels": [0, 1, 2, 3],
        "attacks": {
            "my-square": result([F, T, T, T], [T, F, T, T], [F, T, T, T]),
            "bpda-eot": result([T, T, T, T], [T, T, T, T], [T, T, T, T], zero=1.0),
            "pgd-classifier": result([T, T, T, T], [T, T, T, T], [F, F, F, F], zero=0.0),
        },
    }
    config = EvalConfig(
        pipeline="p",
        output_dir="o",
        num_samples=4,
        batch_size=4,
        votes=3,
        threats=[{"norm": "Linf", "eps": 0.3}],
        attacks=[{"name": "square", "label": "my-square"}, {"name": "bpda-eot"}, {"name": "pgd-classifier"}],
    )
    s = summarize([clean, attacked], config)
    assert (s["clean"]["accuracy"], s["clean_vote"]["accuracy"], s["clean_all_votes"]["accuracy"]) == (0.75, 0.75, 0.5)
    t = s["threats"]["Linf-0.3"]
    got = {
        label: (a["accuracy"], a["vote"]["accuracy"], a["all_votes"]["accuracy"]) for label, a in t["attacks"].items()
    }
    assert got == {"my-square": (0.5, 0.5, 0.25), "bpda-eot": (0.75, 0.75, 0.5), "pgd-classifier": (0.75, 0.75, 0.0)}
    assert t["attacks"]["my-square"]["name"] == "square"
    worst = (t["worst_case"]["accuracy"], t["worst_case_vote"]["accuracy"], t["worst_case_all_votes"]["accuracy"])
    assert worst == (0.5, 0.5, 0.0)
    assert t["warnings"] == [
        "Linf-0.3: bpda-eot: 100% of samples had an exactly zero input gradient: this attack measured nothing (gradient masking)",
        "Linf-0.3: gradient-free attack beats bpda-eot (50.0% < 75.0%): bpda-eot's gradient is masked or the attack is too weak",
    ]


def test_cascade_summary_is_cumulative_and_keeps_the_worst_case():
    """The same attacks read as a cascade: a skipped sample (None: broken under every rule before) counts as
    broken, each attack's row is cumulative, the worst cases equal those of every attack on every sample,
    and no attack is compared with another (cumulative rows cannot show masking)."""
    from mimic_diffusers.evaluation import summarize, survivors

    T, F, N = True, False, None
    clean = {
        "batch": 0,
        "threat": "clean",
        "ids": [0, 1, 2, 3],
        "labels": [0, 1, 2, 3],
        "correct": [T, T, T, F],
        "vote_correct": [T, T, F, F],
        "all_correct": [T, F, F, F],
    }

    def result(correct, vote, every):
        return {
            "name": "x",
            "correct": correct,
            "vote_correct": vote,
            "all_correct": every,
            "seconds": 1.0,
            "params": {},
            "diagnostics": {},
        }

    first = result([F, T, T, F], [F, T, F, F], [F, T, F, F])
    assert survivors(clean, []) == [T, T, T, F] and survivors(clean, [first]) == [F, T, T, F]
    full = {
        "batch": 0,
        "threat": "Linf-0.3",
        "ids": [0, 1, 2, 3],
        "labels": [0, 1, 2, 3],
        "attacks": {"bpda-eot": first, "square": result([T, F, F, T], [T, T, F, T], [T, F, F, F])},
    }
    cascade = {**full, "attacks": {"bpda-eot": first, "square": result([N, F, F, N], [N, T, F, N], [N, F, F, N])}}
    config = EvalConfig(
        pipeline="p",
        output_dir="o",
        num_samples=4,
        batch_size=4,
        votes=3,
        threats=[{"norm": "Linf", "eps": 0.3}],
        attacks=[{"name": "bpda-eot"}, {"name": "square"}],
    )
    plain = summarize([clean, full], config)["threats"]["Linf-0.3"]
    assert plain["attacks"]["square"]["accuracy"] == 0.25 and plain["warnings"]  # Square beats BPDA: flagged
    cascade["attacks"]["square"]["targets"] = survivors(clean, [first])
    for records, as_cascade in (([clean, full], True), ([clean, cascade], True), ([clean, cascade], False)):
        # a store the cascade wrote reads as one even under a config without `cascade`
        t = summarize(records, EvalConfig(**{**config.__dict__, "cascade": as_cascade}))["threats"]["Linf-0.3"]
        assert t["cascade"] and t["warnings"] == []
        assert [t["attacks"][k]["accuracy"] for k in ("bpda-eot", "square")] == [0.5, 0.0]
        assert [t["attacks"][k]["vote"]["accuracy"] for k in ("bpda-eot", "square")] == [0.25, 0.25]
        for field in ("worst_case", "worst_case_vote", "worst_case_all_votes"):
            assert t[field] == plain[field], field


def test_worst_case_samples_are_the_summary_worst_case_per_sample(tmp_path):
    """Per sample id, robust after every attack (a cascade's skipped sample is broken), so that stores of
    the same images combine per sample; a store without the threat is an error naming the store."""
    from mimic_diffusers.evaluation import append_record, summarize, worst_case_samples

    T, F, N = True, False, None

    def result(correct, vote):
        return {"name": "x", "correct": correct, "vote_correct": vote, "seconds": 1.0, "params": {}, "diagnostics": {}}

    clean = {
        "batch": 0,
        "threat": "clean",
        "ids": [0, 1, 2, 3],
        "labels": [0, 1, 2, 3],
        "correct": [T, T, T, F],
        "vote_correct": [T, T, F, F],
    }
    attacked = {
        "batch": 0,
        "threat": "Linf-0.3",
        "ids": [0, 1, 2, 3],
        "labels": [0, 1, 2, 3],
        "attacks": {
            "bpda-eot": result([F, T, T, F], [F, T, F, F]),
            "square": {**result([N, T, F, N], [N, T, F, N]), "targets": [F, T, T, F]},
        },
    }
    for record in (clean, attacked):
        append_record(str(tmp_path / "results.rank0.jsonl"), record)
    threat = {"norm": "Linf", "eps": 0.3}
    config = EvalConfig(
        pipeline="p",
        output_dir=str(tmp_path),
        num_samples=4,
        batch_size=4,
        threats=[threat],
        attacks=[{"name": "bpda-eot"}, {"name": "square"}],
        cascade=True,
    )
    assert worst_case_samples(config, threat, "correct") == {0: F, 1: T, 2: F, 3: F}
    assert worst_case_samples(config, threat) == {0: F, 1: T, 2: F, 3: F}
    assert worst_case_samples(config, threat, through=1) == {0: F, 1: T, 2: F, 3: F}
    assert worst_case_samples(config, threat, "correct", through=1) == {0: F, 1: T, 2: T, 3: F}
    with pytest.raises(ValueError, match=r"through must be None or 1\.\.2"):
        worst_case_samples(config, threat, through=3)
    t = summarize([clean, attacked], config)["threats"]["Linf-0.3"]
    assert t["worst_case"]["correct"] == 1 and t["worst_case_vote"]["correct"] == 1
    with pytest.raises(ValueError, match="holds no attack results at Linf-0.2"):
        worst_case_samples(config, {"norm": "Linf", "eps": 0.2})
    with pytest.raises(ValueError, match="rule must be one of"):
        worst_case_samples(config, threat, "vote")


def test_cascade_attacks_only_the_survivors_and_resumes(pipeline_dir, cascade_store, tmp_path):
    """Each attack runs on the samples the clean pass and the attacks before it left robust under some
    rule (the others get None and are never attacked); a killed-and-resumed store is the same."""
    from mimic_diffusers.evaluation import merge_records, survivors

    attacks, (store, summary) = CASCADE_ATTACKS, cascade_store
    merged = merge_records(read_records(str(store)))
    skipped = 0
    for (batch, threat), record in merged.items():
        if threat == "clean":
            continue
        earlier = []
        for spec in attacks:
            result = record["attacks"][spec["name"]]
            assert result["targets"] == survivors(merged[(batch, "clean")], earlier)
            for i, target in enumerate(result["targets"]):
                assert (result["correct"][i] is None) == (not target)
            skipped += result["targets"].count(False)
            earlier.append(result)
    assert skipped > 0, "the tiny pipeline's attacks must break something for the cascade to skip"
    t = summary["threats"]["Linf-0.3"]
    assert t["cascade"] and [a["accuracy"] for a in t["attacks"].values()] == sorted(
        (a["accuracy"] for a in t["attacks"].values()), reverse=True
    )
    assert t["worst_case"]["accuracy"] == t["attacks"]["square"]["accuracy"]
    # the same store built in two runs (a screen with the first two attacks, then the rest) holds the same
    # results; the screen's worst case is the cumulative row of its last attack, flagged as an upper bound
    grown = EvalConfig(**make_config(pipeline_dir, tmp_path / "b", attacks=attacks, cascade=True)).validate()
    with pytest.raises(ValueError, match="a cascade runs its attacks in order"):
        run_evaluation(grown, run_attacks=["bpda-eot"])
    screen = run_evaluation(grown, run_attacks=["pgd-classifier", "bpda-eot"])["threats"]["Linf-0.3"]
    assert list(screen["attacks"]) == ["pgd-classifier", "bpda-eot"]
    assert screen["worst_case"]["accuracy"] == t["attacks"]["bpda-eot"]["accuracy"]
    assert any("no results of square on every batch" in w and "upper bound" in w for w in screen["warnings"])
    assert not any("no results of" in w for w in t["warnings"])
    run_evaluation(grown)
    assert normalized(read_records(str(tmp_path / "b"))) == normalized(read_records(str(store)))


def test_ranks_wait_at_barriers_as_long_as_another_rank_s_unit_takes(tmp_path, monkeypatch):
    """A rank done with its share of a pass waits for the others' units (hours on a CPU): the process group's
    timeout is days, not torch's default 30 minutes, which killed a 2-process run."""
    import datetime

    import accelerate

    from mimic_diffusers.evaluation import runner

    made = {}

    class Stop(Exception):
        pass

    def recording_accelerator(**kwargs):
        made.update(kwargs)
        raise Stop

    monkeypatch.setattr(accelerate, "Accelerator", recording_accelerator)
    with pytest.raises(Stop):
        runner.run_evaluation(EvalConfig(**make_config("unused", str(tmp_path))))
    (handler,) = made["kwargs_handlers"]
    assert isinstance(handler, accelerate.InitProcessGroupKwargs) and handler.timeout >= datetime.timedelta(days=1)


def test_the_run_line_gives_the_command_as_a_shell_takes_it():
    """runs.jsonl's command can be run again: quoted, a module run as `python -m`, a launched process with
    its launcher (the records of earlier runs gave a module's file path and an unquoted --note)."""
    from mimic_diffusers.evaluation.runner import command_line

    argv, note = ["/repo/studies/frontier.py", "--step", "32", "--note", "shared CPU"], ["--note", "shared CPU"]
    module = ["/usr/bin/python3", "-m", "studies.frontier", "--step", "32", *note]
    assert command_line(argv, module, {}) == "python -m studies.frontier --step 32 --note 'shared CPU'"
    launched = [module[0], "-u", *module[1:]]
    assert command_line(argv, launched, {"TORCHELASTIC_RUN_ID": "1", "LOCAL_WORLD_SIZE": "2"}) == (
        "python -m torch.distributed.run --nproc_per_node 2 -m studies.frontier --step 32 --note 'shared CPU'"
    )
    script = ["/venv/bin/mimic-diffusers", "evaluate", "--config", "a b.yaml"]
    assert command_line(script, ["/venv/bin/python", *script], {}) == "mimic-diffusers evaluate --config 'a b.yaml'"
