"""Training killed with SIGKILL mid-run and rerun ends exactly like a run that was never interrupted.

Each CLI command is run three times: once uninterrupted, once in a child process killed right after it has
trained past a complete checkpoint, and once more (the resume). On CPU with one thread the resumed run must
export bit-identical weights and write the same train_log.jsonl records (same steps, losses and learning rates).
The kill is sent within one poll interval of the first log line past a checkpoint, with most of the run still
ahead (about a second of training); the test checks that the process really died mid-run. The killed run is a
child of the fork server of tests/forked_cli.py (it starts with the imports done); the other two run in the test
process.
"""

import json
import os
import signal
import time

import pytest
import torch
from conftest import start_forked_cli
from safetensors.torch import load_file
from test_data_training import TINY_UNET

from mimic_diffusers.cli import main

USES_FORK_SERVER = True  # children from the fork server (tests/conftest.py: start_forked_cli)

TINY_CLASSIFIER = {"model_kwargs": {"channels": [4, 8, 8, 8]}}
MAX_STEPS, CHECKPOINT_EVERY, LOG_EVERY = 32, 4, 3  # LOG_EVERY does not divide CHECKPOINT_EVERY on purpose
BATCH_SIZE, WARMUP_STEPS = 8, 2
KILL_TIMEOUT_S, POLL_S = 120, 0.005
COMMANDS = [("train-unet", "unet", TINY_UNET), ("train-classifier", "classifier", TINY_CLASSIFIER)]


def argv(command, model, output_dir):
    return [
        command,
        "--output-dir",
        str(output_dir),
        "--max-steps",
        str(MAX_STEPS),
        "--batch-size",
        str(BATCH_SIZE),
        "--warmup-steps",
        str(WARMUP_STEPS),
        "--checkpoint-every",
        str(CHECKPOINT_EVERY),
        "--log-every",
        str(LOG_EVERY),
        "--model",
        json.dumps(model),
    ]


@pytest.fixture
def start(monkeypatch):
    """Start a training child process (output in `<output_dir>.out`); any still running at teardown is killed."""
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    started = []

    def run(command, model, output_dir):
        env = {"ACCELERATE_USE_CPU": "true"}
        started.append(start_forked_cli(argv(command, model, output_dir), f"{output_dir}.out", env=env))
        return started[-1]

    yield run
    for proc in started:
        if proc.is_alive():
            proc.kill()
            proc.join()


def complete_checkpoints(output_dir):
    root = output_dir / "checkpoints"
    return sorted(int(d.name.split("-")[1]) for d in root.glob("step-*") if (d / "complete").exists())


def log_records(output_dir):
    path = output_dir / "train_log.jsonl"
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    return [json.loads(line) for line in lines if line.endswith("\n")]  # a line being written is skipped


def kill_after_training_past_a_checkpoint(proc, output_dir):
    """SIGKILL `proc` as soon as a complete checkpoint exists and a later step has been logged."""
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.is_alive(), "training ended before it could be killed"
        done, logged = complete_checkpoints(output_dir), [r["step"] for r in log_records(output_dir)]
        if done and logged and max(logged) > max(done):
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
            assert proc.exitcode == -signal.SIGKILL
            return max(done)
        time.sleep(POLL_S)
    proc.kill()
    pytest.fail(f"no checkpoint within {KILL_TIMEOUT_S} s")


def exported_weights(output_dir, folder):
    files = sorted((output_dir / folder).glob("*.safetensors"))
    assert files, f"nothing exported under {output_dir / folder}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(f).items()}


@pytest.mark.parametrize("command,folder,model", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_killed_training_resumes_bit_identically(tmp_path, start, capsys, command, folder, model):
    """SIGKILL mid-run + rerun gives the uninterrupted run's exact weights and log."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    checkpoint = kill_after_training_past_a_checkpoint(start(command, model, killed), killed)
    assert not (killed / folder).exists() and MAX_STEPS not in complete_checkpoints(killed)  # really died mid-run
    assert max(r["step"] for r in log_records(killed)) < MAX_STEPS

    assert main(argv(command, model, reference)) == 0
    capsys.readouterr()
    assert main(argv(command, model, killed)) == 0
    assert f"(step {checkpoint})" in capsys.readouterr().out, "the rerun started over instead of resuming"

    expected, actual = exported_weights(reference, folder), exported_weights(killed, folder)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected), "resumed weights differ"
    assert log_records(killed) == log_records(reference)  # nothing redone or skipped, same losses
