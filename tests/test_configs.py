"""The shipped evaluation configs parse, and the CIFAR-10 path runs end to end through the build command
and the evaluation: on tiny random stand-ins of the same classes, and (slow) at the real model sizes
(random weights), with a local CIFAR-like imagefolder in place of the Hub data."""

import glob
import json
import os

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from mimic_diffusers import MimicDiffusionPipeline, RobustBenchClassifier
from mimic_diffusers.evaluation import EvalConfig, run_evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_config_files_parse(path):
    config = EvalConfig.from_file(path)
    assert config.attacks and config.threats


def test_configs_sharing_a_store_agree_on_its_header():
    """Configs that read and grow one store (the same output_dir) give the settings its header holds alike, the
    scheduler options included: the store refuses a config that disagrees, and its records describe one setting."""
    from mimic_diffusers.evaluation.store import HEADER_FIELDS

    by_store = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))):
        config = EvalConfig.from_file(path)
        header = {name: getattr(config, name) for name in HEADER_FIELDS}
        by_store.setdefault(config.output_dir, []).append((os.path.basename(path), header))
    for store, configs in by_store.items():
        differ = [name for name, header in configs if header != configs[0][1]]
        assert not differ, f"{store}: {differ} disagree with {configs[0][0]}"


def cifar_folder(root, labels=("airplane", "cat"), per_label=1):
    for label in labels:
        (root / "test" / label).mkdir(parents=True)
        for i in range(per_label):
            Image.fromarray((np.random.default_rng(i).random((32, 32, 3)) * 255).astype(np.uint8)).save(
                root / "test" / label / f"{i}.png"
            )
    return root


def build(unet, classifier, out, *extra):
    """`mimic-diffusers build-pipeline`, in this process."""
    from mimic_diffusers.cli import main

    argv = ["build-pipeline", "--unet", str(unet), "--classifier", str(classifier), "--output-dir", str(out), *extra]
    assert main(argv) == 0
    return out


def test_cifar10_config_with_tiny_stand_ins(tmp_path):
    torch.manual_seed(0)
    UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        norm_num_groups=4,
    ).save_pretrained(tmp_path / "ddpm-cifar10-32")
    RobustBenchClassifier(architecture="wrn-28-10", depth=10, width=1).save_pretrained(tmp_path / "wrn")
    out = build(tmp_path / "ddpm-cifar10-32", tmp_path / "wrn", tmp_path / "pipelines" / "cifar10-mimic")
    index = json.load(open(out / "model_index.json"))
    assert index["classifier"] == ["mimic_diffusers.classifier_robustbench", "RobustBenchClassifier"]
    config = EvalConfig.from_file(
        os.path.join(ROOT, "configs", "cifar10-ddpm-wrn.yaml"),
        pipeline=str(out),
        dataset=str(cifar_folder(tmp_path / "cifar")),
        output_dir=str(tmp_path / "eval"),
        num_samples=2,
        batch_size=2,
        num_inference_steps=3,
        votes=1,
        attacks=[
            {"name": "bpda-eot", "params": {"steps": 1}},
            {"name": "exact-pgd-eot", "params": {"steps": 1, "gradient_steps": 2}},
        ],
    )
    summary = run_evaluation(config)
    assert set(summary["threats"]) == {"Linf-0.03137", "L2-0.5"}


# every attack of the CIFAR-10 config at budget 1 (one iteration, one query, one EOT draw where it has any)
BUDGET_ONE = {
    "autoattack-standard": {"n_iter": 1, "n_queries": 1, "n_target_classes": 1},
    "autoattack-rand": {"n_iter": 1, "eot": 1},
    "bpda-eot": {"steps": 1, "eot": 1},
    "feedback-cut-pgd-eot": {"steps": 1, "eot": 1, "gradient_steps": 2, "tau": 0.5, "loss": "margin"},
    "exact-pgd-eot": {"steps": 1, "eot": 1, "gradient_steps": 2, "tau": 4, "loss": "margin"},
    "square": {"n_queries": 1},
}


@pytest.mark.slow
def test_cifar10_config_at_full_model_size(tmp_path):
    """google/ddpm-cifar10-32's UNet (35.7M parameters) and a WRN-28-10 (36.5M), random weights, converted
    from a RobustBench-style checkpoint, assembled by the build command, saved and loaded, and evaluated
    with every attack of the CIFAR-10 config on 2 images at 3 steps."""
    from mimic_diffusers.unet_configs import create_unet

    unet = create_unet("google/ddpm-cifar10-32")
    assert sum(p.numel() for p in unet.parameters()) == 35_746_307
    unet.save_pretrained(tmp_path / "unet")
    wrn = RobustBenchClassifier(architecture="wrn-28-10").model
    torch.save({"state_dict": {f"module.{k}": v for k, v in wrn.state_dict().items()}}, tmp_path / "Standard.pt")
    out = build(
        tmp_path / "unet",
        "robustbench:wrn-28-10",
        tmp_path / "cifar10-mimic",
        "--classifier-weights",
        str(tmp_path / "Standard.pt"),
        "--classifier-options",
        '{"robustbench_name": "Standard"}',
    )
    config = EvalConfig.from_file(
        os.path.join(ROOT, "configs", "cifar10-ddpm-wrn.yaml"),
        pipeline=str(out),
        dataset=str(cifar_folder(tmp_path / "cifar")),
        output_dir=str(tmp_path / "eval"),
        num_samples=2,
        batch_size=2,
        num_inference_steps=3,
    )
    config.attacks = [
        {**a, "params": {**BUDGET_ONE[a["name"]], **({"eot_batch": "auto"} if "eot_batch" in a["params"] else {})}}
        for a in config.attacks
    ]
    assert {a["name"] for a in config.attacks} == set(BUDGET_ONE)
    summary = run_evaluation(config)
    for key in ("Linf-0.03137", "L2-0.5"):
        assert set(summary["threats"][key]["attacks"]) == set(BUDGET_ONE)
        assert summary["threats"][key]["worst_case"]["n"] == 2
    loaded = MimicDiffusionPipeline.from_pretrained(str(out))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.classifier(x), wrn.eval()(x))
    assert loaded.classifier.config.robustbench_name == "Standard"
