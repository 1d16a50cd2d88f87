"""Options that several commands share, spelled and checked the same way in each."""

import argparse


def _device_name(value: str) -> str:
    from ..devices import check_device_name

    try:
        return check_device_name(value)
    except ValueError as error:  # argparse names the argument: "argument --device: ..."
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """`--device` (default `auto`: CUDA, then MPS, then CPU). Its spelling is checked when parsing, whether this
    machine has the device when the command runs (`device_from`), so a command written for a GPU parses anywhere."""
    p.add_argument(
        "--device",
        type=_device_name,
        default="auto",
        help="auto (CUDA, then Apple MPS, then CPU; the default), cpu, cuda, cuda:N or mps",
    )


def device_from(args: argparse.Namespace):
    """The `torch.device` of `--device`, or a ValueError naming the argument when this machine lacks it."""
    from ..devices import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as error:
        raise ValueError(f"argument --device: {error}") from None


def add_pipeline_argument(p: argparse.ArgumentParser) -> None:
    """`--pipeline`: a folder, a Hub id or the shipped `mnist-mimic` (`defaults.resolve_pipeline`)."""
    p.add_argument(
        "--pipeline",
        help="pipeline folder, Hub repo id or shipped name (default: the shipped mnist-mimic, or $MIMIC_PIPELINE)",
    )
