"""The shipped pipeline folder loads and the main job (`mimic-diffusers demo`) runs end to end."""

import json
import os
import subprocess
import sys

import pytest
import torch

from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, TimmClassifier
from mimic_diffusers.defaults import shipped_pipeline_path
from mimic_diffusers.hub import load_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = shipped_pipeline_path()


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


def test_demo_tiny_run_prints_a_table_and_writes_the_grid(tmp_path, capsys):
    """`mimic-diffusers demo` on the shipped default, in this process (the command's own process is run by
    tests/test_reliability.py, and from a wheel install by the slow tests/test_wheel.py)."""
    from mimic_diffusers.cli import main

    png = tmp_path / "demo.png"
    argv = ["demo", "--num-images", "3", "--num-inference-steps", "4", "--pgd-steps", "2", "--output", str(png)]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    rows = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert [r.split("|")[1].strip() for r in rows] == ["0.1", "0.3"]
    assert all(len(r.split("|")) == 6 for r in rows)  # eps, clean, adversarial, purified
    assert "NOT adaptive" in out and "mimic-diffusers evaluate" in out
    assert png.exists() and png.stat().st_size > 1000


@pytest.mark.slow
def test_end_to_end_evaluation_of_the_shipped_pipeline(tmp_path):
    """The real protocol on a few images (`pytest -m slow`, a few minutes on 2 CPU cores): the shipped
    default at the paper's 100 steps, every attack family of configs/mnist-default.yaml plus the exact
    attack at small budgets, through the CLI. The paper's protocol sees a zero gradient and is flagged;
    the chain gradients are not zero; reports and the worst case follow the one metric definition."""
    config = {
        "pipeline": SHIPPED,
        "output_dir": str(tmp_path / "store"),
        "num_samples": 4,
        "batch_size": 4,
        "num_inference_steps": 100,
        "votes": 2,
        "examples": 2,
        "threats": [{"norm": "Linf", "eps": 0.3}],
        "attacks": [
            {"name": "autoattack-standard", "params": {"n_iter": 1, "n_queries": 2, "n_target_classes": 1}},
            {"name": "pgd-classifier", "params": {"steps": 5}},
            {"name": "bpda-eot", "params": {"steps": 2}},
            {"name": "exact-pgd-eot", "params": {"steps": 1, "tau": 0.5, "loss": "margin"}},
            {"name": "feedback-cut-pgd-eot", "params": {"steps": 1, "tau": 0.5, "loss": "margin"}},
            {"name": "square", "params": {"n_queries": 3}},
        ],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "mimic_diffusers.cli", "evaluate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "store" / "summary.json").read_text())
    t = summary["threats"]["Linf-0.3"]
    assert list(t["attacks"]) == [a["name"] for a in config["attacks"]] and t["n"] == 4
    assert t["attacks"]["autoattack-standard"]["zero_grad_fraction"] == 1.0
    assert any("autoattack-standard: 100% of samples had an exactly zero input gradient" in w for w in t["warnings"])
    for name in ("bpda-eot", "exact-pgd-eot", "feedback-cut-pgd-eot"):
        assert t["attacks"][name]["zero_grad_fraction"] == 0.0, name
    for rule, worst in (
        ("accuracy", "worst_case"),
        ("vote", "worst_case_vote"),
        ("all_votes", "worst_case_all_votes"),
    ):
        per_attack = [a[rule] if rule == "accuracy" else a[rule]["accuracy"] for a in t["attacks"].values()]
        assert t[worst]["accuracy"] <= min(per_attack)
    assert (tmp_path / "store" / "examples_Linf-0.3_feedback-cut-pgd-eot.png").exists()
    assert "feedback-cut-pgd-eot" in (tmp_path / "store" / "results.md").read_text()


def test_model_card_shows_the_shipped_defaults_current_results_headline_first():
    """The shipped results.json (and so its model card) holds the shipped setting's results only: the worst
    case at the largest eps first (from its confirmation once that has paired the frontier's images at larger
    budgets, else from its frontier point), its paired difference to DiffPure next, nothing superseded."""
    from studies.pages.frontier_study import shipped_point, study

    point = shipped_point()
    recorded = [r for r in load_results(folder=SHIPPED)["results"] if r["command"].startswith("python -m studies")]
    assert all(f"--points {point} " in r["command"] for r in recorded)
    done = sorted((r for r in study()["table"] if r["point"] == point and r["complete"]), key=lambda r: -r["eps"])
    top = done[0]
    confirmed = [
        row
        for c in study()["confirmation"]
        if c["eps"] == top["eps"] and c["n"] >= top["n"]
        for row in c["table"]
        if row["point"] == point and row["complete"]
    ]
    headline = (confirmed or [top])[0]
    assert recorded[0]["metric"].startswith(f"robust accuracy Linf-{top['eps']:g}, worst case")
    assert (recorded[0]["value"], recorded[0]["n"]) == (
        round(headline["vote"]["robust"]["accuracy"], 4),
        headline["n"],
    )
    assert recorded[1]["metric"].startswith("paired difference to diffpure-")
    card = open(os.path.join(SHIPPED, "README.md")).read()
    assert all(f"| {r['metric']} | {r['value']} |" in card for r in recorded)


def test_training_record_says_how_the_shipped_scheduler_config_came_about(tmp_path):
    """The folder was built with the earlier default's options: its training record names each shipped value
    that differs from the build command's, and the build command it quotes writes the shipped scheduler config."""
    from mimic_diffusers.cli import main

    def options(command):
        return json.loads(command.split("--scheduler-options '", 1)[1].split("'", 1)[0])

    with open(os.path.join(SHIPPED, "scheduler", "scheduler_config.json")) as f:
        shipped = json.load(f)
    training = load_results(folder=SHIPPED)["training"]
    built_with, later = options(training["pipeline"]), training["scheduler"]
    for key, value in built_with.items():
        if shipped[key] != value:
            assert f"{key} {json.dumps(value)} -> {json.dumps(shipped[key])}" in later, later
    components = [f"--{c}={os.path.join(SHIPPED, c)}" for c in ("unet", "classifier")]
    quoted = json.dumps(options(later))
    assert main(["build-pipeline", *components, "--output-dir", str(tmp_path), "--scheduler-options", quoted]) == 0
    with open(tmp_path / "scheduler" / "scheduler_config.json") as f:
        assert json.load(f) == shipped
