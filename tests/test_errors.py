"""Every bad input gets a clear error of our own naming the argument."""

import numpy as np
import pytest
import torch
from conftest import tiny_pipeline

from mimic_diffusers import MimicDiffusionScheduler
from mimic_diffusers.attacks import DifferentiableChain


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        (torch.rand(1, 3, 16, 16), ValueError, "channel"),
        (torch.rand(1, 1, 15, 16), ValueError, "multiples"),
        (torch.rand(1, 1, 16, 16) * 2, ValueError, r"\[0, 1\]"),
        (torch.rand(1, 1, 16, 16) - 0.5, ValueError, r"\[0, 1\]"),
        (torch.full((1, 1, 16, 16), float("nan")), ValueError, "NaN"),
        (torch.full((1, 1, 16, 16), float("inf")), ValueError, "NaN"),
        (torch.rand(0, 1, 16, 16), ValueError, "empty"),
        ([], ValueError, "empty"),
        (torch.ones(1, 1, 16, 16, dtype=torch.int32), TypeError, "dtype"),
        (np.ones((16, 16), dtype=np.int64), TypeError, "dtype"),
        (torch.rand(16, 16), ValueError, "shape"),
        ("image.png", TypeError, "expected a torch.Tensor"),
        ([torch.rand(1, 16, 16), torch.rand(1, 8, 8)], ValueError, "same shape"),
    ],
)
def test_bad_images(bad, exc, match):
    pipe = tiny_pipeline()
    with pytest.raises(exc, match=match) as info:
        pipe(bad, num_inference_steps=2)
    assert "image" in str(info.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(guidance_window_start=0.2, guidance_window_end=0.5), "greater than"),
        (dict(guidance_window_start=0.5, guidance_window_end=0.5), "greater than"),
        (dict(guidance_window_start=1.5), r"guidance_window_start must be in \(0, 1\]"),
        (dict(guidance_window_start=0.0, guidance_window_end=0.0), "guidance_window_start"),
        (dict(guidance_window_end=-0.1), "guidance_window_end"),
        (dict(distance="l3"), "distance"),
        (dict(sr_direction="left"), "sr_direction"),
        (dict(step_size_rule="magic"), "step_size_rule"),
        (dict(guidance_space="z"), "guidance_space"),
        (dict(sr_factor=0), "sr_factor"),
        (dict(guidance_scale=-1.0), "guidance_scale"),
        (dict(guidance_scale=float("nan")), "guidance_scale"),
        (dict(eta=2.0), "eta"),
        (dict(purification_start=0.0), "purification_start"),
    ],
)
def test_bad_scheduler_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MimicDiffusionScheduler(**kwargs)


def test_unknown_preset_and_call_arguments():
    with pytest.raises(ValueError, match="preset"):
        MimicDiffusionScheduler.from_preset("nope")
    pipe = tiny_pipeline()
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(x, num_inference_steps=0)
    with pytest.raises(ValueError, match="output_type"):
        pipe(x, num_inference_steps=2, output_type="jpg")
    with pytest.raises(ValueError, match="generator"):
        pipe(x, num_inference_steps=2, generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="sign_surrogate"):
        pipe(x, num_inference_steps=2, output_type="pt", chain=DifferentiableChain(sign_surrogate="cube"))
    with pytest.raises(TypeError):
        pipe(x, num_inference_steps=2, not_an_option=1)


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--eps", "0.7", "--eps [0.7]: not among the config's threat eps [0.3]"),
        ("--batch-size", "0", "batch_size must be an integer >= 1, got 0"),
        ("--batches-per-pass", "0", "batches_per_pass must be an integer >= 1, got 0"),
        (
            "--attacks",
            "nope",
            "--attacks ['nope']: not among the config's attack labels ['bpda-eot', 'exact-pgd-eot', 'square']",
        ),
    ],
)
def test_evaluate_overrides_are_checked_before_work(tmp_path, capsys, flag, value, message):
    """`evaluate --eps` and `--attacks` run a subset of the config's threats and attacks, `--batch-size`
    overrides the config's;
    a bad value is a clear error before any work starts (no output folder is created)."""
    import os

    from mimic_diffusers.cli import main

    out = tmp_path / "eval"
    config = os.path.join(os.path.dirname(__file__), "..", "configs", "mnist-smoke.yaml")
    code = main(["evaluate", "--config", config, flag, value, "--output-dir", str(out)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_build_pipeline_names_a_unet_folder_without_a_model(tmp_path, capsys):
    """A folder that holds no UNet2DModel is one line naming the unet, not diffusers' OSError, and writes nothing."""
    from mimic_diffusers.cli import main

    (tmp_path / "unet").mkdir()
    out = tmp_path / "pipe"
    args = ["build-pipeline", "--unet", str(tmp_path / "unet"), "--classifier", "resnet10t", "--output-dir", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"unet {str(tmp_path / 'unet')!r}: no UNet2DModel loads from it" in err and "config.json" in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["train-unet", "train-classifier"])
def test_training_checks_its_numbers_before_building_anything(tmp_path, capsys, monkeypatch, command):
    from mimic_diffusers import training
    from mimic_diffusers.cli import main

    def no_data(*args):
        raise AssertionError("the training data was loaded before the config was checked")

    monkeypatch.setattr(training, "_train_images", no_data)
    assert main([command, "--output-dir", str(tmp_path / "run"), "--max-steps", "0"]) == 2
    assert "max_steps must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
