"""The prepared GPU check runs end to end in its CPU mode (tiny budgets, the same code) and writes its
JSON and Markdown; without CUDA and without the flag it refuses with a clear message.

The default lane runs the script's code on tiny pipelines in this process; the slow lane runs the script
as CI would, on the shipped pipeline and the CIFAR architecture at full size (random weights)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import tiny_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_outputs(folder):
    result = json.load(open(folder / "gpu-check-cpu-smoke.json"))
    assert set(result["exact_gradient"]) == {"T2/b1/checkpointed", "T2/b2/checkpointed"}
    assert all(r["seconds"] > 0 for r in result["exact_gradient"].values())
    for name in ("mnist-shipped", "cifar-architecture"):
        assert result[f"bench/{name}"]["timing"]["mimic/b1"]["ratio_to_unguided"] > 0
    assert result["batched_eot"]["speedup"] > 0
    text = open(folder / "gpu-check-cpu-smoke.md").read()
    assert text.startswith("# GPU check: cpu-smoke") and "Batched EOT" in text


@pytest.fixture
def gpu_check():
    from studies import gpu_check

    return gpu_check


def test_gpu_check_cpu_smoke_on_tiny_pipelines(gpu_check, monkeypatch, tmp_path):
    """`main` with --cpu-smoke, the folders swapped for tiny pipelines and each exact-gradient case probed in
    this process (the script starts a fresh one per case: seconds of imports each)."""
    from mimic_diffusers.profiling import memory_probe
    from studies import cost_at_scale

    tiny_pipeline().save_pretrained(tmp_path / "mnist")
    monkeypatch.setattr(gpu_check, "SHIPPED", str(tmp_path / "mnist"))
    monkeypatch.setattr(
        gpu_check,
        "build_folder",
        lambda kind, folder: tiny_pipeline(channels=3, size=32).save_pretrained(folder) or folder,
    )
    monkeypatch.setattr(cost_at_scale, "run_in_subprocess", memory_probe)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--cpu-smoke", "--output-dir", str(tmp_path / "out")])
    gpu_check.main()
    check_outputs(tmp_path / "out")


@pytest.mark.slow
def test_gpu_check_cpu_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    subprocess.run(
        [sys.executable, "-m", "studies.gpu_check", "--cpu-smoke", "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )
    check_outputs(tmp_path)


def test_gpu_check_refuses_without_cuda(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--output-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit:
        gpu_check.main()
    assert exit.value.code == 2 and "no CUDA device" in capsys.readouterr().err and not os.listdir(tmp_path)


def test_gpu_confirm_script_packs_every_confirmation_store_when_its_minutes_are_spent(tmp_path):
    """studies/gpu_confirm.sh with no minutes left runs nothing and still packs the stores to unpack here."""
    import tarfile

    archive = tmp_path / "stores.tar.gz"
    result = subprocess.run(
        ["bash", "studies/gpu_confirm.sh", "0", str(archive)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    names = tarfile.open(archive).getnames()
    stored = [
        os.path.relpath(os.path.join(folder, f), ROOT)
        for folder, _, files in os.walk(os.path.join(ROOT, "benchmarks", "results"))
        if os.path.basename(os.path.dirname(folder)).startswith("confirm-eps0.")
        for f in files
        if f.startswith("results.rank")
    ]
    assert stored and sorted(n for n in names if os.path.basename(n).startswith("results.rank")) == sorted(stored)
    assert f"packed {len(stored)} record shards" in result.stdout
    usage = subprocess.run(["bash", "studies/gpu_confirm.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert usage.returncode != 0 and "usage: gpu_confirm.sh MINUTES" in usage.stderr
