"""The code stays in short modules with one job (the style the project follows: auto-attack, k-diffusion)."""
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 250  # tests are exempt: one file per subject reads better than many small ones


def test_every_library_benchmark_and_example_module_is_short():
    sources = [p for folder in ("mimic_diffusers", "benchmarks", "examples")
               for p in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)]
    assert sources, "no modules found"
    long = {}
    for path in sources:
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            long[os.path.relpath(path, ROOT)] = n
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
