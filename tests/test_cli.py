"""CLI help is written for users: every command says what it does and shows one example."""

import re

import pytest

from mimic_diffusers.cli import COMMANDS, build_parser


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "every command lives in" not in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help_has_description_options_and_example(capsys, name):
    with pytest.raises(SystemExit):
        build_parser().parse_args([name, "--help"])
    out = capsys.readouterr().out
    short, _, description, example = COMMANDS[name]
    assert description.split(" ")[0] in out and "options:" in out
    assert f"example:\n  {example}" in out and example.startswith(f"mimic-diffusers {name}")


def test_purify_writes_one_png_per_input_and_no_temporary_file(tmp_path):
    import numpy as np
    from PIL import Image

    from mimic_diffusers.cli import main

    for name in ("a", "b"):
        Image.fromarray(np.full((28, 28), 40, dtype=np.uint8)).save(tmp_path / f"{name}.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "purify",
                str(tmp_path / "a.png"),
                str(tmp_path / "b.png"),
                "--output-dir",
                str(out),
                "--num-inference-steps",
                "3",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["a_purified.png", "b_purified.png"]
    assert Image.open(out / "a_purified.png").size == (28, 28)


# --- --device, --preset, predicted labels, one output-folder flag ---------------------------------------


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """Two tiny 28x28 pipeline folders, with and without a classifier, and two input digits."""
    import numpy as np
    from conftest import tiny_pipeline
    from PIL import Image

    root = tmp_path_factory.mktemp("cli")
    tiny_pipeline(size=28).save_pretrained(root / "with-classifier")
    tiny_pipeline(size=28, classifier=False).save_pretrained(root / "no-classifier")
    for name, value in (("a", 40), ("b", 200)):
        Image.fromarray(np.full((28, 28), value, dtype=np.uint8)).save(root / f"{name}.png")
    return root


def purify_args(root, out, *extra):
    return [
        "purify",
        str(root / "a.png"),
        str(root / "b.png"),
        "--output-dir",
        str(out),
        "--num-inference-steps",
        "2",
        *extra,
    ]


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    import torch

    from mimic_diffusers.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("command", ["demo", "purify", "bench"])
def test_device_defaults_to_auto(command):
    from mimic_diffusers.commands.options import device_from
    from mimic_diffusers.devices import resolve_device

    extra = ["x.png", "--output-dir", "out"] if command == "purify" else []
    args = build_parser().parse_args([command, *extra])
    assert args.device == "auto" and device_from(args) == resolve_device("auto")


@pytest.mark.parametrize("command", ["demo", "purify", "bench"])
@pytest.mark.parametrize("device, expected", [("tpu", "auto, cpu, cuda, cuda:N or mps"), ("cuda:x", "cuda:x")])
def test_unknown_device_is_refused_naming_the_argument(capsys, command, device, expected):
    extra = ["x.png", "--output-dir", "out"] if command == "purify" else []
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, *extra, "--device", device])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --device" in err and expected in err and device in err


def test_a_device_this_machine_lacks_parses_and_is_refused_when_run(capsys, monkeypatch, tmp_path):
    """`--device cuda` in a page parses on any machine; running it without CUDA is one clear error."""
    import torch
    from PIL import Image

    from mimic_diffusers.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert build_parser().parse_args(["demo", "--device", "cuda:1"]).device == "cuda:1"
    assert main(["demo", "--device", "cuda"]) == 2
    assert "error: argument --device: device 'cuda': CUDA is not available" in capsys.readouterr().err
    image = tmp_path / "a.png"
    Image.new("L", (28, 28)).save(image)
    assert main(["purify", str(image), "--output-dir", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "error: argument --device: device 'cuda': CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_demo_loads_its_pipeline_on_the_chosen_device(monkeypatch):
    import torch

    import mimic_diffusers.defaults as defaults
    from mimic_diffusers.cli import main

    seen = {}

    def spy(path_or_id=None, device=None):
        seen.update(path=path_or_id, device=device)
        raise ValueError("stop after loading")

    monkeypatch.setattr(defaults, "load_default_pipeline", spy)
    assert main(["demo", "--device", "cpu", "--pipeline", "some/pipeline"]) == 2
    assert seen == {"path": "some/pipeline", "device": torch.device("cpu")}


def spy_on_loading(monkeypatch):
    """Record what `purify` asks `load_pipeline` for, and the scheduler options of what it gets."""
    import mimic_diffusers.defaults as defaults

    real, seen = defaults.load_pipeline, {}

    def spy(path_or_id=None, scheduler_options=None, device=None, progress_bar=False):
        pipe = real(path_or_id, scheduler_options, device=device, progress_bar=progress_bar)
        seen.update(device=device, options=scheduler_options, config=dict(pipe.scheduler.config))
        return pipe

    monkeypatch.setattr(defaults, "load_pipeline", spy)
    return seen


def test_purify_runs_on_the_chosen_device_and_prints_predicted_labels(tiny_folders, tmp_path, capsys, monkeypatch):
    import torch

    from mimic_diffusers.cli import main

    seen = spy_on_loading(monkeypatch)
    args = purify_args(tiny_folders, tmp_path, "--pipeline", str(tiny_folders / "with-classifier"), "--device", "cpu")
    assert main(args) == 0
    assert seen["device"] == torch.device("cpu") and seen["options"] is None
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(tmp_path / f"{n}_purified.png") for n in ("a", "b")]
    labels = [line.split("\t")[1] for line in lines]
    assert all(label.startswith("predicted label ") and int(label.rsplit(" ", 1)[1]) in range(10) for label in labels)


def test_purify_labels_are_the_classifier_on_the_purified_images(tiny_folders, tmp_path, capsys):
    """The printed label is the pipeline's own prediction on the image it purified (same seed, same noise)."""
    from PIL import Image

    from mimic_diffusers import MimicDiffusionPipeline
    from mimic_diffusers.cli import main
    from mimic_diffusers.image_io import image_generators

    folder = tiny_folders / "with-classifier"
    assert main(purify_args(tiny_folders, tmp_path, "--pipeline", str(folder), "--device", "cpu")) == 0
    printed = [int(line.rsplit(" ", 1)[1]) for line in capsys.readouterr().out.splitlines()]
    pipe = MimicDiffusionPipeline.from_pretrained(str(folder))
    images = [Image.open(tiny_folders / f"{n}.png") for n in ("a", "b")]
    out = pipe(images, num_inference_steps=2, generator=image_generators(2, 0), output_type="pt").images
    assert printed == pipe.classify(out).argmax(1).tolist()


def test_purify_without_a_classifier_prints_only_the_paths(tiny_folders, tmp_path, capsys):
    from mimic_diffusers.cli import main

    assert main(purify_args(tiny_folders, tmp_path, "--pipeline", str(tiny_folders / "no-classifier"))) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "a_purified.png"), str(tmp_path / "b_purified.png")]


def test_purify_preset_applies_the_scheduler_preset(tiny_folders, tmp_path, monkeypatch):
    from mimic_diffusers import PRESETS
    from mimic_diffusers.cli import main

    seen = spy_on_loading(monkeypatch)
    folder = str(tiny_folders / "with-classifier")
    args = purify_args(
        tiny_folders, tmp_path, "--pipeline", folder, "--preset", "diffpure", "--num-inference-steps", "10"
    )  # t* = 0.1 of 10 steps: one step
    assert main(args) == 0
    assert seen["options"] == {"preset": "diffpure"}
    assert all(seen["config"][k] == v for k, v in PRESETS["diffpure"].items())


def test_purify_preset_choices_are_the_presets(capsys):
    from mimic_diffusers import PRESETS

    parser = build_parser()
    assert all(parser.parse_args(["purify", "x.png", "--output-dir", "o", "--preset", p]).preset == p for p in PRESETS)
    with pytest.raises(SystemExit):
        parser.parse_args(["purify", "x.png", "--output-dir", "o", "--preset", "nope"])
    assert "argument --preset: invalid choice: 'nope'" in capsys.readouterr().err


def subparsers():
    import argparse

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


# demo's --output is its PNG grid (a file); every folder a command writes is --output-dir
FILE_OUTPUTS = {("demo", "--output")}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_one_flag_name_for_output_folders(name):
    import argparse

    shown = [
        o
        for a in subparsers()[name]._actions
        if a.help != argparse.SUPPRESS
        for o in a.option_strings
        if o.startswith("--output")
    ]
    assert all(o == "--output-dir" or (name, o) in FILE_OUTPUTS for o in shown), shown


def test_build_pipeline_keeps_the_old_output_spelling_as_a_hidden_alias(capsys):
    parser = build_parser()
    base = ["build-pipeline", "--unet", "u", "--classifier", "c"]
    assert parser.parse_args(base + ["--output-dir", "p"]).output_dir == "p"
    assert parser.parse_args(base + ["--output", "p"]).output_dir == "p"
    with pytest.raises(SystemExit):
        parser.parse_args(["build-pipeline", "--help"])
    out = capsys.readouterr().out
    assert "--output-dir" in out and not re.search(r"--output(?!-dir)", out)


def test_build_pipeline_without_an_output_folder_names_the_flag(capsys):
    from mimic_diffusers.cli import main

    assert main(["build-pipeline", "--unet", "u", "--classifier", "c"]) == 2
    assert "error: --output-dir is required" in capsys.readouterr().err
