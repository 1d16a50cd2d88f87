"""`mimic-diffusers <argv>` in a child process that tests kill mid-run or run as ranks (`conftest.start_forked_cli`).

Imported once by the fork server (a fresh interpreter: forking the test process itself would break autograd in
the child once the test process has run autograd on threads), so every child starts with the imports done and
the MNIST split built; each child then runs this module as `__forked__` with ARGV, LOG, ENV and LATE_RANK_S set.
"""

import importlib
import os
import sys
import time
import traceback

import torch
from tqdm.std import TqdmDefaultWriteLock

import mimic_diffusers.evaluation  # noqa: F401  (imported here once, not in every child)
from mimic_diffusers.cli import build_parser, main
from mimic_diffusers.data import load_image_dataset
from mimic_diffusers.pipeline_baselines import DiffPurePipeline  # noqa: F401  (and the MimicDiffusion pipeline)
from mimic_diffusers.safety import COMPONENT_MODULES

# progress bars lock per thread only: a process-shared lock is a semaphore that a killed child leaves behind
TqdmDefaultWriteLock.mp_lock = None
torch.set_num_threads(1)  # as in the test process (tests/conftest.py), whatever OMP_NUM_THREADS says
build_parser()  # imports every command's module (the package imports its parts on first use)
for module in COMPONENT_MODULES:
    importlib.import_module(module)
load_image_dataset("mnist5k")  # cached per process: built once in the fork server, inherited by every child


def late_first_read(seconds: float):
    """Rank 1 reaches its first read of the store `seconds` late (a slow start)."""
    from mimic_diffusers.evaluation import store

    first_read, read_records = [True], store.read_records

    def late_read(output_dir):
        if os.environ.get("RANK") == "1" and first_read:
            first_read.clear()
            time.sleep(seconds)
        return read_records(output_dir)

    store.read_records = late_read


if __name__ == "__forked__":
    code = 1
    with open(LOG, "w") as log:  # noqa: F821 (set by conftest.start_forked_cli)
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            os.environ.update(ENV)  # noqa: F821
            if LATE_RANK_S:  # noqa: F821
                late_first_read(LATE_RANK_S)  # noqa: F821
            code = main(ARGV)  # noqa: F821
        except BaseException:
            traceback.print_exc()
        log.flush()
    os._exit(code)  # no atexit handlers in the child
