"""Hard to break: random inputs, malicious pickles, memory guard, one-line CLI errors."""

import os
import pickle
import subprocess
import sys

import pytest
import torch
from conftest import gen, tiny_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimic_diffusers import MimicDiffusionPipeline, resources
from mimic_diffusers.attacks.chain import DifferentiableChain

PIPE = tiny_pipeline()

dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.uint8, torch.int64, torch.bool])
values = st.sampled_from(["unit", "wide", "nan", "inf", "negative", "constant"])


def make(shape, dtype, kind, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    x = {
        "unit": x,
        "wide": x * 300,
        "nan": x.masked_fill(x > 0.9, float("nan")),
        "inf": x.masked_fill(x > 0.9, float("inf")),
        "negative": x - 0.5,
        "constant": torch.zeros(shape, dtype=torch.float64),
    }[kind]
    if dtype in (torch.uint8, torch.int64, torch.bool):
        return torch.nan_to_num(x).clamp(0, 255).to(dtype)
    return x.to(dtype)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(0, 17), min_size=1, max_size=5),
    dtype=dtypes,
    kind=values,
    seed=st.integers(0, 99),
    as_numpy=st.booleans(),
)
def test_random_inputs_give_our_error_or_valid_output(shape, dtype, kind, seed, as_numpy):
    x = make(tuple(shape), dtype, kind, seed)
    if as_numpy and dtype not in (torch.bfloat16,):
        x = x.numpy()
    try:
        out = PIPE(x, num_inference_steps=2, generator=gen(0), output_type="pt").images
    except (ValueError, TypeError) as error:
        assert "image" in str(error) and len(str(error)) < 400
        return
    assert out.ndim == 4 and out.shape[1] == 1 and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


def test_malicious_pickle_in_folder_is_refused_and_never_executed(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "unet" / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump(Exploit(), f)
    with pytest.raises(ValueError, match="pickle"):
        MimicDiffusionPipeline.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="use_safetensors"):
        MimicDiffusionPipeline.from_pretrained(tmp_path, use_safetensors=False)
    with pytest.raises(ValueError, match="trust_remote_code"):
        MimicDiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    assert not marker.exists()
    with pytest.raises(ValueError, match="model_index.json"):
        MimicDiffusionPipeline.from_pretrained(tmp_path / "unet")


def test_memory_guard_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device: 10 * 2**20)
    with pytest.raises(ValueError, match="smaller batch"):
        PIPE(torch.rand(64, 1, 16, 16), num_inference_steps=2)
    with pytest.raises(ValueError, match="checkpoint_steps=True"):
        PIPE(
            torch.rand(8, 1, 16, 16).requires_grad_(),
            num_inference_steps=100,
            output_type="pt",
            chain=DifferentiableChain(),
        )


def test_bit_identical_across_runs_and_batch_compositions():
    PIPE.enable_batch_invariance()
    a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    first = PIPE(torch.cat([a, b]), num_inference_steps=20, generator=[gen(1), gen(2)], output_type="pt").images
    again = PIPE(torch.cat([a, b]), num_inference_steps=20, generator=[gen(1), gen(2)], output_type="pt").images
    alone = PIPE(a, num_inference_steps=20, generator=[gen(1)], output_type="pt").images
    assert torch.equal(first, again)
    assert torch.equal(first[:1], alone)
    PIPE.enable_batch_invariance(False)


BAD_CLI_INPUT = [
    (["evaluate", "--config", "/nonexistent/config.yaml"], "does not exist"),
    (["demo", "--eps", "-0.1", "--pipeline", "/nonexistent"], "--eps"),
    (["demo", "--num-images", "0", "--pipeline", "/nonexistent"], "--num-images"),
    (["train-unet", "--output-dir", "/tmp/x", "--max-steps", "0"], "max_steps"),
    (["purify", "/nonexistent.png", "--output-dir", "/tmp/x"], "does not exist"),
]


def assert_one_error_line(stderr, match):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], stderr


@pytest.mark.parametrize("argv,match", BAD_CLI_INPUT)
def test_cli_reports_bad_input_in_one_line_with_exit_2(argv, match, capfd):
    from mimic_diffusers.cli import main

    assert main(argv) == 2
    assert_one_error_line(capfd.readouterr().err, match)


def test_cli_process_exits_2_with_one_line_and_nothing_else_on_stderr():
    """The whole process, as a user runs it: imports print nothing to stderr (the cases above run in this
    process, where the imports have already happened)."""
    argv, match = BAD_CLI_INPUT[0]
    result = subprocess.run(
        [sys.executable, "-m", "mimic_diffusers.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert_one_error_line(result.stderr, match)
