"""The `mimic-diffusers` command line: purify images with MimicDiffusion and evaluate it under adaptive attacks.

Bad input prints one line `error: ...` and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (one-line help, module in mimic_diffusers/commands, what it does, one example)
COMMANDS = {
    "demo": (
        "purify PGD-attacked MNIST digits with the shipped pipeline (demo)",
        "demo",
        "Purify PGD-attacked MNIST test digits with the shipped pipeline and print accuracy per eps "
        "(PGD sees only the classifier: a demo, not a robustness claim).",
        "mimic-diffusers demo --num-images 16",
    ),
    "purify": (
        "purify image files",
        "purify",
        "Purify image files (PNG/JPEG) with a pipeline folder or Hub id and write the results.",
        "mimic-diffusers purify digit.png --output-dir purified/",
    ),
    "evaluate": (
        "evaluate a defense under adaptive attacks from a config",
        "evaluate",
        "Evaluate a defense under adaptive attacks from a YAML/JSON config: resumable, "
        "data parallel, with Wilson intervals, votes and the worst case per sample.",
        "mimic-diffusers evaluate --config configs/mnist-default.yaml --report-only",
    ),
    "train-unet": (
        "train a pipeline's DDPM UNet (resumable)",
        "train",
        "Train the DDPM UNet of a pipeline (Accelerate; rerun the same command to resume).",
        "mimic-diffusers train-unet --output-dir runs/unet --max-steps 4000",
    ),
    "train-classifier": (
        "train a pipeline's classifier (resumable)",
        "train",
        "Train the timm classifier of a pipeline (Accelerate; rerun to resume).",
        "mimic-diffusers train-classifier --output-dir runs/classifier",
    ),
    "build-pipeline": (
        "assemble a pipeline folder with its model card",
        "build",
        "Assemble a pipeline folder (Hub layout, model card) from a trained UNet and "
        "classifier; --measure adds its quality figures.",
        "mimic-diffusers build-pipeline --unet runs/unet/unet --classifier runs/classifier/classifier "
        "--output-dir pipelines/my-pipeline --measure",
    ),
    "calibrate": (
        "choose a pipeline folder's guidance scale on clean images",
        "calibrate",
        "Choose the guidance scale at which clean accuracy through the purifier stays within --tolerance "
        "points of the classifier's (the smallest such scale by default) and write it into the folder's "
        "scheduler config.",
        "mimic-diffusers calibrate --pipeline pipelines/my-pipeline --dataset mnist5k",
    ),
    "compare": (
        "compare two evaluated settings, paired on the same images",
        "compare",
        "Compare two evaluations whose stores hold the same images: per eps, the worst case per sample of A "
        "against that of B (exact McNemar test, the paired difference with its 95% interval, and the smallest "
        "difference the images could have shown).",
        "mimic-diffusers compare --config configs/a.yaml --config configs/b.yaml --eps 0.3",
    ),
    "bench": (
        "speed and memory of purification (ratios in one run)",
        "bench",
        "Measure purification speed and memory as ratios within one run (guided vs unguided, "
        "DiffPure, one exact gradient).",
        "mimic-diffusers bench --output-dir benchmarks/results --repeats 1",
    ),
}


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The parser of every command, or, with `commands` (names), one whose other commands are listed by name
    only: `main` imports just the module of the command it runs."""
    parser = argparse.ArgumentParser(
        prog="mimic-diffusers",
        description=__doc__.split("\n")[0],
        epilog="Run `mimic-diffusers COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (short, module, help_text, example) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=short,
            description=help_text,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if commands is None or name in commands:
            command = importlib.import_module(f"mimic_diffusers.commands.{module}")
            command.add_arguments(p, name)
            p.set_defaults(_run=command.run)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(commands=argv[:1]).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM during an evaluation (`Terminated`, exit code 143)
        print("interrupted: files written so far are complete and a rerun resumes", file=sys.stderr)
        return getattr(stop, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
