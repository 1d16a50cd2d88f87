"""The shipped pipeline folder loads and the main job (`mimic-diffusers demo`) runs end to end."""
import os
import subprocess
import sys

import torch

from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, TimmClassifier
from mimic_diffusers.hub import load_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "pipelines", "mnist-mimic")


def test_shipped_folder_loads_with_all_components():
    pipe = MimicDiffusionPipeline.from_pretrained(SHIPPED)
    assert isinstance(pipe.scheduler, MimicDiffusionScheduler) and isinstance(pipe.classifier, TimmClassifier)
    files = [os.path.join(r, f) for r, _, fs in os.walk(SHIPPED) for f in fs]
    assert sum(os.path.getsize(f) for f in files) < 30 * 2**20
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".ckpt")) for f in files)
    results = load_results(folder=SHIPPED)  # validates every line: metric, value, attack, n, command
    assert {r["metric"] for r in results["results"]} >= {"classifier clean accuracy"}
    assert results["dataset"] == "mnist5k" and results["training"]
    card = open(os.path.join(SHIPPED, "README.md")).read()
    assert "library_name: mimic-diffusers" in card and "classifier clean accuracy" in card
    x = torch.rand(2, 1, 28, 28)
    out = pipe(x, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert out.shape == x.shape and pipe.classify(out).shape == (2, 10)


def test_demo_tiny_run_prints_a_table_and_writes_the_grid(tmp_path):
    png = tmp_path / "demo.png"
    result = subprocess.run([sys.executable, "-m", "mimic_diffusers.cli", "demo", "--num-images", "3",
                             "--num-inference-steps", "4", "--pgd-steps", "2", "--output", str(png)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 0.")]
    assert [r.split("|")[1].strip() for r in rows] == ["0.1", "0.3"]
    assert all(len(r.split("|")) == 6 for r in rows)  # eps, clean, adversarial, purified
    assert "NOT adaptive" in result.stdout and "mimic-diffusers evaluate" in result.stdout
    assert png.exists() and png.stat().st_size > 1000


def test_readme_table5_tables_are_the_stored_records():
    """The README's Table 5 and baseline tables are what benchmarks/table5_report.py computes from the
    shipped stores: a number edited by hand, or a store changed without the README, fails here."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    for n in ("64", "256"):
        out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "table5_report.py"),
                              os.path.join("benchmarks", "results", "table5-t100"), "--default",
                              os.path.join("benchmarks", "results", "eval-mnist-default"), "--num-samples", n],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| row ")]
        assert rows, f"table5_report.py printed no rows at N={n}"
        missing = [line for line in rows if line not in readme]
        assert not missing, f"README lacks these rows of `table5_report.py --num-samples {n}`:\n" + "\n".join(missing)
