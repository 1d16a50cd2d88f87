"""The shipped evaluation configs parse, and the CIFAR-10 path runs end to end on tiny random
stand-ins of the same classes (a 3-channel 32x32 UNet2DModel folder, a timm classifier, a local
CIFAR-like imagefolder) in place of the Hub models and data."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from mimic_diffusers.evaluation import EvalConfig, run_evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_config_files_parse(path):
    config = EvalConfig.from_file(path)
    assert config.attacks and config.threats


def test_cifar10_config_with_tiny_stand_ins(tmp_path):
    torch.manual_seed(0)
    UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                norm_num_groups=4).save_pretrained(tmp_path / "ddpm-cifar10-32")
    for label in ("airplane", "cat"):
        (tmp_path / "cifar" / "test" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray((np.random.default_rng(i).random((32, 32, 3)) * 255).astype(np.uint8)).save(
                tmp_path / "cifar" / "test" / label / f"{i}.png")
    out = tmp_path / "pipelines" / "cifar10-mimic"
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "build_cifar10_pipeline.py"), "--unet",
                    str(tmp_path / "ddpm-cifar10-32"), "--classifier", "resnet10t", "--output", str(out)],
                   check=True, capture_output=True, timeout=300)
    assert json.load(open(out / "model_index.json"))["classifier"] == ["mimic_diffusers.classifier", "TimmClassifier"]
    config = EvalConfig.from_file(os.path.join(ROOT, "configs", "cifar10-ddpm-wrn.yaml"), pipeline=str(out),
                                  dataset=str(tmp_path / "cifar"), output_dir=str(tmp_path / "eval"), num_samples=2,
                                  batch_size=2, num_inference_steps=3, votes=1,
                                  attacks=[{"name": "bpda-eot", "params": {"steps": 1}},
                                           {"name": "exact-pgd-eot", "params": {"steps": 1, "gradient_steps": 2}}])
    summary = run_evaluation(config)
    assert set(summary["threats"]) == {"Linf-0.03137", "L2-0.5"}
