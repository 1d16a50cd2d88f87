"""`mimic-diffusers <command>`: every command lives in `mimic_diffusers/commands/<name>.py` and exposes
`add_arguments(parser)` and `run(args)`. Bad input prints one line `error: ...` and exits 2."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "demo": ("demo", "purify PGD-attacked test digits with the shipped pipeline (not an adaptive attack)"),
    "purify": ("purify", "purify image files with a pipeline folder"),
    "evaluate": ("evaluate", "honest robustness evaluation (adaptive attacks) from a config file"),
    "train-unet": ("train", "train the DDPM UNet (resumable)"),
    "train-classifier": ("train", "train the timm classifier (resumable)"),
    "build-pipeline": ("build", "assemble a pipeline folder from trained UNet and classifier"),
    "bench": ("bench", "speed and memory benchmark (ratios in one run)"),
}


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mimic-diffusers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = importlib.import_module(f"mimic_diffusers.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        command.add_arguments(p, name)
        p.set_defaults(_run=command.run)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files written so far are complete and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
