"""A wheel install works outside the repository: it carries the shipped MNIST default, so `mimic-diffusers
demo` and `load_pipeline()` run offline from a fresh virtual environment with the repository not on the path.

The venv sees the system site-packages (torch and the other dependencies come from there; the wheel goes in
with --no-deps), where this checkout's editable install also lives: the venv's own site-packages come first
on sys.path, and every check asserts that `mimic_diffusers` was imported from the venv, not from the checkout.
Building the wheel and reading its contents is fast; the two runs from the venv are slow (`pytest -m slow`:
each starts torch in a fresh interpreter).
"""

import os
import shutil
import subprocess
import sys
import venv
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_FILES = [
    "model_index.json",
    "README.md",
    "results.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "classifier/config.json",
    "classifier/diffusion_pytorch_model.safetensors",
]


def clean_env(**extra) -> dict:
    """No PYTHONPATH, no $MIMIC_PIPELINE, and every Hugging Face library offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MIMIC_PIPELINE")}
    return {
        **env,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from this checkout's sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy of the sources, so the checkout gets no build/ folder and its egg-info is not rewritten
    src = tmp / "src"
    shutil.copytree(
        os.path.join(ROOT, "mimic_diffusers"),
        src / "mimic_diffusers",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("mimic_diffusers-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory):
    """(wheel path, venv python, venv bin folder, a working folder outside the repository)."""
    tmp = tmp_path_factory.mktemp("venv")
    env_dir = tmp / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    # --ignore-installed: the editable install of the system site-packages must not count as installed
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    work = tmp / "work"
    work.mkdir()
    return wheel, python, bin_dir, work


def test_the_wheel_carries_the_shipped_pipeline(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in SHIPPED_FILES if f"mimic_diffusers/pipelines/mnist-mimic/{f}" not in names]
    assert not missing, f"the wheel lacks the shipped pipeline's {missing}"


PROBE = """
import sys
import mimic_diffusers
from mimic_diffusers import load_pipeline
from mimic_diffusers.defaults import resolve_pipeline

pipe = load_pipeline()
print(mimic_diffusers.__file__)
print(resolve_pipeline(None))
print(type(pipe).__name__, type(pipe.classifier).__name__)
print(any(p.startswith(sys.argv[1]) for p in sys.path))
"""


def test_the_default_is_found_inside_the_package():
    """What the wheel carries is what the library loads: the default resolves inside the package folder."""
    import mimic_diffusers
    from mimic_diffusers.defaults import resolve_pipeline, shipped_pipeline_path

    package = os.path.dirname(os.path.abspath(mimic_diffusers.__file__))
    assert shipped_pipeline_path() == os.path.join(package, "pipelines", "mnist-mimic")
    assert resolve_pipeline("mnist-mimic") == shipped_pipeline_path()
    assert all(os.path.isfile(os.path.join(shipped_pipeline_path(), f)) for f in SHIPPED_FILES)


@pytest.mark.slow
def test_the_wheel_install_loads_the_default_from_the_venv(wheel_venv):
    _, python, _, work = wheel_venv
    out = subprocess.run([str(python), "-c", PROBE, ROOT], cwd=work, capture_output=True, text=True, env=clean_env())
    assert out.returncode == 0, out.stderr[-3000:]
    module, default, classes, repo_on_path = out.stdout.strip().splitlines()[-4:]
    venv_dir = str(python.parent.parent)
    assert module.startswith(venv_dir) and not module.startswith(ROOT), module
    assert default.startswith(venv_dir) and default.endswith(os.path.join("pipelines", "mnist-mimic")), default
    assert classes == "MimicDiffusionPipeline TimmClassifier" and repo_on_path == "False"


@pytest.mark.slow
def test_demo_runs_from_the_wheel_install_on_4_images(wheel_venv):
    _, python, bin_dir, work = wheel_venv
    png = work / "demo.png"
    result = subprocess.run(
        [
            str(bin_dir / "mimic-diffusers"),
            "demo",
            "--num-images",
            "4",
            "--num-inference-steps",
            "4",
            "--pgd-steps",
            "2",
            "--device",
            "cpu",
            "--output",
            str(png),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MimicDiffusion demo on 4 MNIST test images" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 0.")]
    assert [row.split("|")[1].strip() for row in rows] == ["0.1", "0.3"]
    assert png.exists() and png.stat().st_size > 1000
    # the console script is the venv's, and it ran the venv's package
    where = subprocess.run(
        [str(python), "-c", "import mimic_diffusers.cli as c; print(c.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert where.stdout.strip().startswith(str(python.parent.parent)), where.stdout + where.stderr
