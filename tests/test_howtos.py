"""The how-to pages (docs/howto/*.md) run as written. Each page's Python blocks run in order as one script,
with the page's settings (its upper-case assignments) made tiny and its paths pointed at temporary files;
its shell commands parse with the command line's own parser, and its YAML configs validate. A page whose
snippet breaks fails here, and so does a page without tiny settings below."""

import glob
import os
import re
import shlex

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "howto", "*.md")))
STEPS = 2  # purification steps in every run here: enough to cross the guidance window


def blocks(page: str, language: str) -> list:
    with open(page, encoding="utf-8") as f:
        return re.findall(rf"^```{language}\n(.*?)^```", f.read(), re.S | re.M)


def with_settings(code: str, settings: dict) -> str:
    """The code with each `NAME = value` line of `settings` replaced; every name must be on the page once."""
    for name, value in settings.items():
        pattern = re.compile(rf"^{re.escape(name)} = .*$", re.M)
        assert len(pattern.findall(code)) == 1, f"the page no longer sets {name} once: update tests/test_howtos.py"
        code = pattern.sub(lambda _: f"{name} = {value!r}", code)
    return code


def run_page(name: str, settings: dict) -> dict:
    page = os.path.join(ROOT, "docs", "howto", name)
    code = with_settings("\n".join(blocks(page, "python")), settings)
    scope = {"__name__": "__howto__"}
    exec(compile(code, page, "exec"), scope)
    return scope


def write_png(path, size=28, mode="L", seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size) + ((3,) if mode == "RGB" else ()), np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)


@pytest.fixture
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the pages name the shipped pipeline as a checkout does


def test_every_howto_page_has_tiny_settings_here():
    assert PAGES, "no how-to pages under docs/howto"
    assert {os.path.basename(p) for p in PAGES} == set(RUNS), "a how-to page without a run in tests/test_howtos.py"
    for page in PAGES:
        assert blocks(page, "python"), f"{page}: a how-to page needs a runnable Python block"


def run_gpu(tmp_path):
    scope = run_page("gpu.md", {"NUM_IMAGES": 2, "NUM_INFERENCE_STEPS": STEPS})
    assert scope["purified"].shape == scope["fast"].shape == (2, 1, 28, 28)
    assert scope["pipe"].autocast_dtype is None  # the page switches autocast off again


def run_purify_images(tmp_path):
    inputs = tmp_path / "in"
    write_png(str(inputs / "a.png"))
    write_png(str(inputs / "b.png"), size=40, mode="RGB", seed=1)  # converted and resized by the page's reader
    write_png(str(inputs / "c.png"), seed=2)
    out = tmp_path / "out"
    run_page(
        "purify-images.md",
        {"INPUT_DIR": str(inputs), "OUTPUT_DIR": str(out), "NUM_INFERENCE_STEPS": STEPS, "BATCH_SIZE": 2},
    )
    assert sorted(os.listdir(out)) == ["a_purified.png", "b_purified.png", "c_purified.png"]
    assert Image.open(out / "b_purified.png").size == (28, 28)


def run_own_models(tmp_path):
    from conftest import tiny_unet

    tiny_unet(channels=3, size=16).save_pretrained(str(tmp_path / "unet"))
    scope = run_page(
        "own-models.md",
        {"UNET": str(tmp_path / "unet"), "NUM_IMAGES": 2, "NUM_INFERENCE_STEPS": STEPS, "ATTACK_STEPS": 1, "EOT": 1},
    )
    assert scope["x_adv"].shape == scope["x"].shape and (scope["x_adv"] - scope["x"]).abs().max() <= 8 / 255 + 1e-6
    assert scope["classifier"].device == torch.device("cpu")  # diffusers reads every component's device
    # as the page says: the pipeline freezes in place, leaves eval() to the caller, and saves no ModuleClassifier
    from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, ModuleClassifier

    net = torch.nn.Linear(4, 2)
    MimicDiffusionPipeline(unet=tiny_unet(), scheduler=MimicDiffusionScheduler(), classifier=ModuleClassifier(net))
    assert net.training and not any(p.requires_grad for p in net.parameters()) and not scope["net"].training
    scope["pipe"].save_pretrained(str(tmp_path / "saved"))
    assert MimicDiffusionPipeline.from_pretrained(str(tmp_path / "saved")).classifier is None


def run_own_dataset(tmp_path):
    data = tmp_path / "digits"
    for split, count in (("train", 1), ("test", 2)):
        for label in ("0", "1"):
            for k in range(count):
                write_png(str(data / split / label / f"{k}.png"), seed=k)
    scope = run_page(
        "own-dataset.md",
        {
            "DATA_DIR": str(data),
            "OUTPUT_DIR": str(tmp_path / "eval"),
            "NUM_INFERENCE_STEPS": STEPS,
            "VOTES": 2,
            "ATTACK_STEPS": 1,
            "EOT": 1,
        },
    )
    assert scope["names"] == ["0", "1"] and scope["y"].tolist() == [0, 0, 1, 1]
    assert scope["worst"]["n"] == 4 and os.path.isfile(tmp_path / "eval" / "summary.json")


RUNS = {
    "gpu.md": run_gpu,
    "purify-images.md": run_purify_images,
    "own-models.md": run_own_models,
    "own-dataset.md": run_own_dataset,
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_howto_snippets_run(name, tmp_path, in_root):
    torch.manual_seed(0)
    RUNS[name](tmp_path)


def test_howto_commands_parse_and_configs_validate():
    """Every `mimic-diffusers ...` line of a how-to page is accepted by the CLI's parser (flags that exist, with
    valid values), and every YAML block is a valid evaluation config."""
    from mimic_diffusers.cli import build_parser
    from mimic_diffusers.evaluation import EvalConfig

    parser, commands = build_parser(), 0
    for page in PAGES:
        for block in blocks(page, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["mimic-diffusers"]:
                    try:
                        parser.parse_args(words[1:])
                    except SystemExit:
                        pytest.fail(f"{os.path.basename(page)}: the CLI rejects {line.strip()!r}")
                    commands += 1
        for block in blocks(page, "yaml"):
            EvalConfig(**yaml.safe_load(block)).validate()
    assert commands >= 3
