import multiprocessing
import multiprocessing.forkserver
import os
import runpy

import pytest
import torch
from diffusers import UNet2DModel

from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler, TimmClassifier

torch.set_num_threads(1)


def tiny_unet(channels=1, size=16, seed=0, prediction_scale=1.0):
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    return unet.eval()


def tiny_classifier(channels=1, size=16, seed=0):
    torch.manual_seed(seed)
    return TimmClassifier(
        model_name="resnet10t",
        num_classes=10,
        in_chans=channels,
        image_size=size,
        model_kwargs={"channels": [4, 8, 8, 8]},
    ).eval()


def tiny_pipeline(channels=1, size=16, classifier=True, **scheduler_options):
    pipe = MimicDiffusionPipeline(
        unet=tiny_unet(channels, size),
        scheduler=MimicDiffusionScheduler(**scheduler_options),
        classifier=tiny_classifier(channels, size) if classifier else None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def pipe():
    return tiny_pipeline()


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """One saved 28x28 tiny pipeline folder, shared by every test that evaluates from a folder."""
    path = tmp_path_factory.mktemp("tiny-pipe")
    tiny_pipeline(size=28).save_pretrained(path)
    return str(path)


def start_fork_server():
    """Start (once) the fork server that every `start_forked_cli` child comes from; it imports the library and
    builds the MNIST split in the background (tests/forked_cli.py) while other tests run."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(["forked_cli"])
    # the server imports its preload with the sys.path of a fresh interpreter: give it this folder
    python_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)), python_path]))
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if python_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = python_path


def pytest_collection_modifyitems(items):
    if any(getattr(item.module, "USES_FORK_SERVER", False) for item in items if item.module is not None):
        start_fork_server()


def start_forked_cli(argv, log_path, env=None, late_rank_s=0):
    """`mimic-diffusers <argv>` in a child process (stdout and stderr to `log_path`, `env` added to its environment,
    rank 1's first store read `late_rank_s` late), to be killed mid-run or run as one of several ranks. The child
    is forked from a fork server that has imported the library and built the MNIST split once (tests/forked_cli.py),
    so it reaches its work in a fraction of a second instead of the seconds a fresh interpreter takes. A test module
    that calls this sets `USES_FORK_SERVER = True`, so the server starts when the tests are collected."""
    start_fork_server()
    values = {"ARGV": list(argv), "LOG": str(log_path), "ENV": dict(env or {}), "LATE_RANK_S": late_rank_s}
    proc = multiprocessing.get_context("forkserver").Process(
        target=runpy.run_module,
        args=("forked_cli",),
        kwargs={"init_globals": values, "run_name": "__forked__"},
        daemon=True,
    )
    proc.start()
    return proc
