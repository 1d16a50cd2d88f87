"""CLI help is written for users: every command says what it does and shows one example."""
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
    assert main(["purify", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--output-dir", str(out),
                 "--num-inference-steps", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_purified.png", "b_purified.png"]
    assert Image.open(out / "a_purified.png").size == (28, 28)
