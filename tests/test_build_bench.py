"""`build-pipeline --measure` and `bench` on a 3-channel 32x32 pipeline (both once assumed 1-channel MNIST)."""

import json

import numpy as np
import pytest
from conftest import tiny_classifier, tiny_pipeline, tiny_unet
from PIL import Image

from mimic_diffusers import MimicDiffusionPipeline
from mimic_diffusers.cli import main


def image_folder(root, size, labels=("0", "1"), per_label=2):
    """A local imagefolder with a `test` split of RGB PNGs: root/test/<label>/<i>.png."""
    rng = np.random.default_rng(0)
    for label in labels:
        (root / "test" / label).mkdir(parents=True)
        for i in range(per_label):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "test" / label / f"{i}.png")
    return str(root)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tiny_unet(3, 32).save_pretrained(root / "unet")
    tiny_classifier(3, 32).save_pretrained(root / "classifier")
    return str(root / "unet"), str(root / "classifier")


def build(models, output, dataset, *extra):
    unet, classifier = models
    return main(
        [
            "build-pipeline",
            "--unet",
            unet,
            "--classifier",
            classifier,
            "--output-dir",
            str(output),
            "--dataset",
            dataset,
            *extra,
        ]
    )


def test_build_pipeline_measures_a_3_channel_pipeline(models, tmp_path, capsys):
    output = tmp_path / "rgb-mimic"
    data = image_folder(tmp_path / "data", 32)
    assert (
        build(
            models, output, data, "--measure", "--num-samples", "3", "--batch-size", "2", "--num-inference-steps", "2"
        )
        == 0
    )
    results = json.loads((output / "results.json").read_text())
    assert [r["metric"].split(" ")[0] for r in results] == ["classifier", "unguided", "purified"]
    assert all(r["n"] == 3 and 0 <= r["value"] <= 1 for r in results)
    assert all(r["command"].endswith(f"--dataset {data}") for r in results)
    assert sorted(results[1]["histogram"]) == sorted(str(d) for d in range(10))
    assert sum(results[1]["histogram"].values()) == 3
    card = (output / "README.md").read_text()
    assert "3 channel(s), 32x32 images" in card and f"`{data}`" in card
    loaded = MimicDiffusionPipeline.from_pretrained(output)
    assert loaded.unet.config.in_channels == 3 and loaded.classifier is not None
    assert "wrote" in capsys.readouterr().out


def test_build_pipeline_rejects_a_data_set_of_another_size(models, tmp_path, capsys):
    output = tmp_path / "rgb-mimic"
    data = image_folder(tmp_path / "data", 16, per_label=1)
    assert build(models, output, data, "--measure", "--num-samples", "1", "--num-inference-steps", "1") == 2
    assert "(3, 16, 16) images, the UNet takes (3, 32, 32)" in capsys.readouterr().err
    assert not output.exists()


def test_bench_runs_on_a_3_channel_pipeline(tmp_path):
    """The timing cases through the CLI; the memory and exact-gradient cases in this process (`bench` runs
    each in a fresh subprocess, whose start-up alone would take most of this test's time)."""
    from mimic_diffusers.profiling import memory_probe

    folder = tmp_path / "rgb-mimic"
    tiny_pipeline(channels=3, size=32).save_pretrained(folder)
    out = tmp_path / "bench"
    assert (
        main(
            [
                "bench",
                "--pipeline",
                str(folder),
                "--device",
                "cpu",
                "--batch-sizes",
                "1",
                "--steps",
                "10",
                "--repeats",
                "1",
                "--skip-memory",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "bench-cpu.json").read_text())
    assert set(result["timing"]) == {f"{m}/b1" for m in ("unguided", "mimic", "every-step", "diffpure")}
    assert "| diffpure | 1 |" in (out / "bench-cpu.md").read_text()
    purify = memory_probe(str(folder), {"kind": "purify", "mode": "mimic", "batch": 2, "steps": 2}, "cpu")
    gradient = memory_probe(
        str(folder), {"kind": "gradient", "mode": "mimic", "batch": 1, "steps": 10, "checkpoint": True}, "cpu"
    )
    assert purify["seconds"] > 0 and gradient["seconds"] > 0 and gradient["peak_mb_above_baseline"] >= 0
