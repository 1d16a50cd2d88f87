"""`mimic-diffusers calibrate` and `calibrate_guidance_scale` on a tiny UNet: the chosen scale keeps clean accuracy
within the tolerance, a failed calibration writes nothing, bad arguments are named, and `build-pipeline` warns
when it leaves the guidance scale uncalibrated."""

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_classifier, tiny_pipeline, tiny_unet
from PIL import Image

import mimic_diffusers.assemble
from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, ModuleClassifier
from mimic_diffusers.calibration import DEFAULT_SCALES, calibrate_guidance_scale, calibration_seed
from mimic_diffusers.cli import main
from mimic_diffusers.modelcard import model_card

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 10  # enough guided steps for the tiny UNet to follow the input's brightness
# On the tiny UNet at STEPS steps: 1e-4 barely guides (purified images drift to mid-grey), 1 and 100 keep
# each image's side of one half.
SCALES = (1e-4, 1.0, 100.0)
LEVELS = (0.0, 0.05, 0.1, 0.15, 0.85, 0.9, 0.95, 1.0)


class Brightness(torch.nn.Module):
    """Class 1 when the mean pixel is above one half, else class 0: an answer purification keeps or loses."""

    def forward(self, x):
        mean = x.mean((1, 2, 3))
        return torch.stack([0.5 - mean, mean - 0.5], 1) * 100


def brightness_pipeline(unet=None, scheduler=None):
    pipe = MimicDiffusionPipeline(
        unet=unet or tiny_unet(1, 16),
        scheduler=scheduler or MimicDiffusionScheduler(),
        classifier=ModuleClassifier(Brightness()),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def flat_images(levels=LEVELS, size=16):
    x = torch.tensor(levels).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    return x, (x.mean((1, 2, 3)) > 0.5).long()


def image_folder(root, levels=LEVELS, size=16):
    """An imagefolder with a `test` split: flat grey PNGs under test/0 (dark) and test/1 (bright)."""
    for i, level in enumerate(levels):
        folder = root / "test" / str(int(level > 0.5))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size), round(level * 255), np.uint8)).save(folder / f"{i}.png")
    return str(root)


def config_path(folder):
    return os.path.join(folder, "scheduler", "scheduler_config.json")


def test_the_chosen_scale_is_the_smallest_that_keeps_clean_accuracy():
    pipe = brightness_pipeline()
    x, y = flat_images()
    result = calibrate_guidance_scale(
        pipe, x, y, scales=SCALES[::-1], tolerance=1.0, num_inference_steps=STEPS, batch_size=len(x)
    )
    assert [r.scale for r in result.scales] == sorted(SCALES)
    assert result.classifier_correct == len(x)
    passing = [r.scale for r in result.scales if r.passes]
    assert SCALES[0] not in passing and passing, result.table()  # the test can tell a failing scale from a passing one
    assert result.chosen == min(passing)
    # the chosen scale, re-run independently with the documented seeds, keeps clean accuracy within the tolerance
    chosen = pipe.with_scheduler_options(guidance_scale=result.chosen)
    generators = [torch.Generator().manual_seed(calibration_seed(0, k)) for k in range(len(x))]
    out = chosen(x, num_inference_steps=STEPS, generator=generators, output_type="pt").images
    accuracy = float((chosen.classify(out).argmax(1) == y).float().mean())
    assert 100 * (1.0 - accuracy) <= 1.0
    assert pipe.scheduler.config.guidance_scale is None  # the pipeline passed in is unchanged
    text = result.table() + result.explanation()
    assert f"| {result.chosen:g} |" in text and "(chosen)" in text and "smallest passing scale" in text

    # `prefer="largest"` on another batch size: the same measurements, the other end of the passing scales
    largest = calibrate_guidance_scale(
        pipe, x, y, scales=SCALES, tolerance=1.0, prefer="largest", num_inference_steps=STEPS, batch_size=3
    )
    assert largest.scales == result.scales and largest.chosen == max(passing)


def test_no_passing_scale_gives_no_choice():
    x, y = flat_images()
    result = calibrate_guidance_scale(brightness_pipeline(), x, y, scales=SCALES[:1], num_inference_steps=STEPS)
    assert result.chosen is None and "No candidate scale passes" in result.explanation()


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(scales=[]), "scales"),
        (dict(scales=[0, 1]), "scales"),
        (dict(scales=[2, 2]), "scales"),
        (dict(tolerance=-1), "tolerance"),
        (dict(prefer="middle"), "prefer"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(labels=torch.zeros(3, dtype=torch.long)), "labels"),
        (dict(images=torch.zeros(8, 16, 16)), "images"),
    ],
)
def test_bad_library_arguments_are_named(kwargs, named):
    x, y = flat_images()
    arguments = {"images": x, "labels": y, **kwargs}
    with pytest.raises(ValueError, match=rf"^{named}:"):
        calibrate_guidance_scale(brightness_pipeline(), **arguments)


def test_a_pipeline_without_classifier_or_guidance_is_refused():
    x, y = flat_images()
    with pytest.raises(ValueError, match="no classifier"):
        calibrate_guidance_scale(tiny_pipeline(size=16, classifier=False), x, y)
    unguided = brightness_pipeline(scheduler=MimicDiffusionScheduler(long_range=False, short_range=False))
    with pytest.raises(ValueError, match="no guidance"):
        calibrate_guidance_scale(unguided, x, y)


@pytest.fixture
def folder(tmp_path):
    """A saved tiny pipeline folder (its classifier: a timm component)."""
    path = tmp_path / "pipe"
    tiny_pipeline(size=16).save_pretrained(path)
    return str(path)


@pytest.fixture
def brightness_folder(folder, monkeypatch):
    """The folder, loaded with the brightness classifier instead of its timm one (a `ModuleClassifier` cannot be
    saved): the command then faces a classifier whose answers purification can lose."""
    load = MimicDiffusionPipeline.from_pretrained

    def from_pretrained(cls, path, **kwargs):
        loaded = load(path, **kwargs)
        return brightness_pipeline(unet=loaded.unet, scheduler=loaded.scheduler)

    monkeypatch.setattr(MimicDiffusionPipeline, "from_pretrained", classmethod(from_pretrained))
    return folder


def calibrate(folder, data, *extra):
    return main(
        [
            "calibrate",
            "--pipeline",
            folder,
            "--dataset",
            data,
            "--num-images",
            str(len(LEVELS)),
            "--num-inference-steps",
            str(STEPS),
            "--batch-size",
            "3",
            *extra,
        ]
    )


def test_calibrate_writes_the_chosen_scale_and_says_why(brightness_folder, tmp_path, capsys):
    data = image_folder(tmp_path / "data")
    before = json.loads(Path(config_path(brightness_folder)).read_text())
    assert calibrate(brightness_folder, data, "--scales", ",".join(f"{s:g}" for s in SCALES)) == 0
    out = capsys.readouterr().out
    after = json.loads(Path(config_path(brightness_folder)).read_text())
    chosen = after.pop("guidance_scale")
    assert chosen in SCALES[1:] and {k: v for k, v in before.items() if k != "guidance_scale"} == after
    assert f"| {chosen:g} |" in out and "| 0.0001 |" in out and "(chosen)" in out
    assert "Rule: the smallest passing scale" in out and f"wrote guidance_scale={chosen:g}" in out
    assert os.listdir(os.path.dirname(config_path(brightness_folder))) == ["scheduler_config.json"]  # no temp file


def test_calibrate_without_a_passing_scale_exits_non_zero_and_writes_nothing(brightness_folder, tmp_path, capsys):
    data = image_folder(tmp_path / "data")
    before = Path(config_path(brightness_folder)).read_bytes()
    assert calibrate(brightness_folder, data, "--scales", "0.000001,0.0001", "--tolerance", "0") == 1
    captured = capsys.readouterr()
    assert "No candidate scale passes" in captured.out and "nothing written" in captured.err
    assert Path(config_path(brightness_folder)).read_bytes() == before


def test_calibrate_end_to_end_on_a_saved_folder(folder, tmp_path, capsys):
    """The saved timm classifier, as a user runs it (a tolerance of 100 points passes every scale): --dry-run
    leaves the folder byte-identical, then the folder loads with the scale written."""
    data = image_folder(tmp_path / "data")
    before = Path(config_path(folder)).read_bytes()
    options = ["--scales", "8,2", "--num-inference-steps", "2", "--tolerance", "100"]
    assert calibrate(folder, data, *options, "--dry-run") == 0
    assert Path(config_path(folder)).read_bytes() == before and "--dry-run" in capsys.readouterr().out
    assert calibrate(folder, data, *options) == 0
    assert "Chosen: guidance_scale=2." in capsys.readouterr().out
    assert MimicDiffusionPipeline.from_pretrained(folder).scheduler.config.guidance_scale == 2.0
    # the card states the written scale: it is the card the folder now renders to
    model_card(folder).save(tmp_path / "card.md")
    card = Path(folder, "README.md").read_text()
    assert "| `guidance_scale` | `2.0` |" in card and card == (tmp_path / "card.md").read_text()


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--scales", "1,x"], "--scales"),
        (["--scales", "0,4"], "--scales"),
        (["--scales", "4,4"], "--scales"),
        (["--tolerance", "-1"], "--tolerance"),
        (["--num-images", "0"], "--num-images"),
        (["--num-images", "99"], "--num-images"),
        (["--skip", "-1"], "--skip"),
        (["--prefer", "middle"], "--prefer"),
        (["--batch-size", "0"], "--batch-size"),
        (["--num-inference-steps", "0"], "--num-inference-steps"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_command_arguments_are_named(folder, tmp_path, capsys, extra, named):
    data = image_folder(tmp_path / "data")
    before = Path(config_path(folder)).read_bytes()
    try:
        code = main(["calibrate", "--pipeline", folder, "--dataset", data, "--num-images", "2", *extra])
    except SystemExit as exit:  # argparse's own checks (types, choices)
        code = exit.code
    assert code == 2 and named in capsys.readouterr().err
    assert Path(config_path(folder)).read_bytes() == before


def test_the_shipped_pipeline_is_calibrated_only_into_a_copy(tmp_path, capsys, monkeypatch):
    """`--pipeline mnist-mimic` names the pipeline shipped inside the package: calibrate refuses to rewrite it
    (before measuring anything), and with --output-dir writes the chosen scale into a copy, keeping the rest."""
    import mimic_diffusers.commands.calibrate as command
    from mimic_diffusers.defaults import shipped_pipeline_path

    shipped = shipped_pipeline_path()
    files = {p: p.read_bytes() for p in Path(shipped).rglob("*") if p.is_file()}
    quick = ["--num-images", "2", "--scales", "2", "--num-inference-steps", "2", "--tolerance", "100"]
    with monkeypatch.context() as patch:
        patch.setattr(command, "calibrate_and_report", lambda *a, **k: pytest.fail("measured before refusing"))
        for name in ("mnist-mimic", shipped):
            assert main(["calibrate", "--pipeline", name, *quick]) == 2
            err = capsys.readouterr().err
            assert "shipped inside the installed package" in err and "--output-dir FOLDER" in err
    copy = tmp_path / "mnist-calibrated"
    assert main(["calibrate", "--pipeline", "mnist-mimic", "--output-dir", str(copy), *quick]) == 0
    assert f"a copy of {shipped}, which is unchanged" in capsys.readouterr().out
    before = json.loads(Path(config_path(shipped)).read_text())
    after = json.loads(Path(config_path(copy)).read_text())
    assert after.pop("guidance_scale") == 2.0 and {k: v for k, v in before.items() if k != "guidance_scale"} == after
    assert "| `guidance_scale` | `2.0` |" in (copy / "README.md").read_text()
    assert {p: p.read_bytes() for p in Path(shipped).rglob("*") if p.is_file()} == files
    assert main(["calibrate", "--pipeline", "mnist-mimic", "--output-dir", str(copy), *quick]) == 2
    err = capsys.readouterr().err
    assert "--output-dir" in err and "already exists" in err


def test_write_guidance_scale_copies_and_never_rewrites_the_shipped_pipeline(folder, tmp_path):
    from mimic_diffusers.calibration import write_guidance_scale

    with pytest.raises(ValueError, match="shipped inside the installed package.*output_dir"):
        write_guidance_scale("mnist-mimic", 2.0)
    with pytest.raises(FileExistsError, match="output_dir"):
        write_guidance_scale(folder, 2.0, output_dir=str(tmp_path))
    before = Path(config_path(folder)).read_bytes()
    assert write_guidance_scale(folder, 2.0, output_dir=str(tmp_path / "copy")) is None
    assert Path(config_path(folder)).read_bytes() == before
    assert MimicDiffusionPipeline.from_pretrained(tmp_path / "copy").scheduler.config.guidance_scale == 2.0
    assert sorted(os.listdir(tmp_path)) == ["copy", "pipe"]  # no temporary folder left


def test_calibrate_refuses_a_folder_that_is_not_a_pipeline_with_a_classifier(tmp_path, capsys):
    data = image_folder(tmp_path / "data")
    assert main(["calibrate", "--pipeline", str(tmp_path / "absent"), "--dataset", data]) == 2
    assert "--pipeline" in capsys.readouterr().err
    bare = tmp_path / "bare"
    tiny_pipeline(size=16, classifier=False).save_pretrained(bare)
    assert main(["calibrate", "--pipeline", str(bare), "--dataset", data, "--num-images", "2"]) == 2
    assert "has no classifier" in capsys.readouterr().err


@pytest.fixture
def models(tmp_path):
    tiny_unet(1, 16).save_pretrained(tmp_path / "unet")
    tiny_classifier(1, 16).save_pretrained(tmp_path / "classifier")
    return ["--unet", str(tmp_path / "unet"), "--classifier", str(tmp_path / "classifier")]


def test_build_pipeline_warns_that_the_scale_is_uncalibrated(models, tmp_path, capsys):
    output = str(tmp_path / "built")
    with pytest.warns(UserWarning, match="uncalibrated"):
        assert main(["build-pipeline", *models, "--output-dir", output]) == 0
    out = capsys.readouterr().out
    assert f"warning: the guidance scale of {output} is uncalibrated" in out
    assert f"mimic-diffusers calibrate --pipeline {output}" in out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a scale the user chose is not flagged
        assert (
            main(["build-pipeline", *models, "--output-dir", output, "--scheduler-options", '{"guidance_scale": 4}'])
            == 0
        )
    assert "uncalibrated" not in capsys.readouterr().out


def test_build_pipeline_calibrate_on_writes_a_calibrated_folder(models, tmp_path, capsys, monkeypatch):
    """With the brightness classifier (not saved: a `ModuleClassifier`), so that some scale must pass."""
    monkeypatch.setattr(
        mimic_diffusers.assemble,
        "assemble_pipeline",
        lambda *args, **kwargs: brightness_pipeline(unet=tiny_unet(1, 16)),
    )
    output = tmp_path / "built"
    data = image_folder(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert (
            main(
                [
                    "build-pipeline",
                    *models,
                    "--output-dir",
                    str(output),
                    "--calibrate-on",
                    data,
                    "--num-samples",
                    str(len(LEVELS)),
                    "--num-inference-steps",
                    str(STEPS),
                ]
            )
            == 0
        )
    out = capsys.readouterr().out
    scale = json.loads(Path(config_path(output)).read_text())["guidance_scale"]
    assert scale in DEFAULT_SCALES and f"Chosen: guidance_scale={scale:g}." in out and "uncalibrated" not in out
    assert (
        main(
            [
                "build-pipeline",
                *models,
                "--output-dir",
                str(output),
                "--calibrate-on",
                data,
                "--scheduler-options",
                '{"guidance_scale": 4}',
            ]
        )
        == 2
    )
    assert "--calibrate-on chooses the guidance scale" in capsys.readouterr().err


def test_the_models_page_calibration_snippet_runs(folder, tmp_path, capsys):
    """docs/models.md's Python block, with tiny settings: it calibrates and writes the folder."""
    with open(os.path.join(ROOT, "docs", "models.md"), encoding="utf-8") as f:
        page = f.read()
    section = page.split("## Calibrate the guidance scale of your own UNet", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    settings = {
        "PIPELINE": folder,
        "DATASET": image_folder(tmp_path / "data"),
        "NUM_IMAGES": 4,
        "SKIP": 2,
        "SCALES": [2, 8],
        "NUM_INFERENCE_STEPS": 2,
    }
    for name, value in settings.items():
        pattern = re.compile(rf"^{name} = .*$", re.M)
        assert len(pattern.findall(code)) == 1, f"docs/models.md no longer sets {name} once: update this test"
        code = pattern.sub(lambda _: f"{name} = {value!r}", code)
    scope = {}
    exec(compile(code, "docs/models.md", "exec"), scope)
    result = scope["result"]
    assert result.num_images == 4 and "| guidance_scale |" in capsys.readouterr().out
    written = json.loads(Path(config_path(folder)).read_text())["guidance_scale"]
    assert written == (result.chosen if result.chosen is not None else None)
