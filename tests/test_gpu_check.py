"""The prepared GPU check runs end to end in its CPU mode (tiny budgets, the same code) and writes its
JSON and Markdown; without CUDA and without the flag it refuses with a clear message."""
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")


def test_gpu_check_cpu_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    subprocess.run([sys.executable, SCRIPT, "--cpu-smoke", "--output-dir", str(tmp_path)], check=True,
                   capture_output=True, timeout=900, cwd=ROOT, env=env)
    result = json.load(open(tmp_path / "gpu-check-cpu-smoke.json"))
    assert set(result["exact_gradient"]) == {"T2/b1/checkpointed", "T2/b2/checkpointed"}
    assert all(r["seconds"] > 0 for r in result["exact_gradient"].values())
    for name in ("mnist-shipped", "cifar-architecture"):
        assert result[f"bench/{name}"]["timing"]["mimic/b1"]["ratio_to_unguided"] > 0
    assert result["batched_eot"]["speedup"] > 0
    text = open(tmp_path / "gpu-check-cpu-smoke.md").read()
    assert text.startswith("# GPU check: cpu-smoke") and "Batched EOT" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_refuses_without_cuda(tmp_path):
    out = subprocess.run([sys.executable, SCRIPT, "--output-dir", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 2 and "no CUDA device" in out.stderr and not os.listdir(tmp_path)
