"""Training killed with SIGKILL mid-run and rerun ends exactly like a run that was never interrupted.

Each CLI command is run three times in subprocesses: once uninterrupted, once killed right after it has trained
past a complete checkpoint, and once more (the resume). On CPU with one thread the resumed run must export
bit-identical weights and write the same train_log.jsonl records (same steps, losses and learning rates).
The kill is sent within one poll interval of the first log line past a checkpoint, with most of the run still
ahead (about a second of training); the test checks that the process really died mid-run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from test_data_training import TINY_UNET

TINY_CLASSIFIER = {"model_kwargs": {"channels": [4, 8, 8, 8]}}
MAX_STEPS, CHECKPOINT_EVERY, LOG_EVERY = 32, 4, 3  # LOG_EVERY does not divide CHECKPOINT_EVERY on purpose
BATCH_SIZE, WARMUP_STEPS = 8, 2
KILL_TIMEOUT_S, POLL_S = 120, 0.005
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
COMMANDS = [("train-unet", "unet", TINY_UNET), ("train-classifier", "classifier", TINY_CLASSIFIER)]


def argv(command, model, output_dir):
    return [
        sys.executable,
        "-m",
        "mimic_diffusers.cli",
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
def start():
    """Start a training subprocess (output in `<output_dir>.out`); any still running at teardown is killed."""
    started = []

    def run(command, model, output_dir):
        with open(f"{output_dir}.out", "w") as log:
            started.append(
                subprocess.Popen(argv(command, model, output_dir), env=ENV, stdout=log, stderr=subprocess.STDOUT)
            )
        return started[-1]

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
        assert proc.poll() is None, "training ended before it could be killed"
        done, logged = complete_checkpoints(output_dir), [r["step"] for r in log_records(output_dir)]
        if done and logged and max(logged) > max(done):
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
            return max(done)
        time.sleep(POLL_S)
    proc.kill()
    pytest.fail(f"no checkpoint within {KILL_TIMEOUT_S} s")


def exported_weights(output_dir, folder):
    files = sorted((output_dir / folder).glob("*.safetensors"))
    assert files, f"nothing exported under {output_dir / folder}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(f).items()}


@pytest.mark.parametrize("command,folder,model", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_killed_training_resumes_bit_identically(tmp_path, start, command, folder, model):
    """SIGKILL mid-run + rerun gives the uninterrupted run's exact weights and log."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    uninterrupted, victim = start(command, model, reference), start(command, model, killed)
    checkpoint = kill_after_training_past_a_checkpoint(victim, killed)
    assert not (killed / folder).exists() and MAX_STEPS not in complete_checkpoints(killed)  # really died mid-run
    assert max(r["step"] for r in log_records(killed)) < MAX_STEPS

    resumed = subprocess.run(argv(command, model, killed), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"(step {checkpoint})" in resumed.stdout, "the rerun started over instead of resuming"
    assert uninterrupted.wait() == 0, (tmp_path / "reference.out").read_text()[-2000:]  # ran alongside

    expected, actual = exported_weights(reference, folder), exported_weights(killed, folder)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected), "resumed weights differ"
    assert log_records(killed) == log_records(reference)  # nothing redone or skipped, same losses
