"""Two evaluated settings compared paired, from their stores: the library function, the `compare` command and
the budget rule, on the committed frontier stores (reading only)."""

import os

import pytest

from mimic_diffusers.evaluation import EvalConfig
from mimic_diffusers.evaluation.compare import budget_flattened, compare_stores
from mimic_diffusers.evaluation.statistics import compare_paired
from studies.frontier import point_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-frontier.yaml"))
STORES = os.path.join(ROOT, "benchmarks", "results", "frontier")


def test_compare_stores_is_the_frontier_pairing():
    from studies.pages.frontier_study import study

    a, b = (point_config(BASE, p, STORES) for p in ("mimic-gs4-up", "diffpure-t0.3"))
    c = compare_stores(a, b, eps=0.3)
    expected = next(
        x for x in study()["comparisons"] if (x["a"], x["b"], x["eps"]) == ("mimic-gs4-up", "diffpure-t0.3", 0.3)
    )
    assert c.to_dict() == {k: expected[k] for k in c.to_dict()}
    assert compare_stores(b, a, eps=0.3).difference == -c.difference  # A and B swap: the sign flips
    with pytest.raises(ValueError, match="no threat with eps 0.1"):
        compare_stores(a, b, eps=0.1)
    with pytest.raises(ValueError, match="rule must be one of"):
        compare_stores(a, b, eps=0.3, rule="majority")


def test_a_config_that_disagrees_with_its_store_is_refused():
    wrong = point_config(BASE, "mimic-gs64-up", STORES)  # this store has a header: its options are checked
    wrong = EvalConfig(**{**wrong.__dict__, "scheduler_options": {"guidance_scale": 8.0, "sr_direction": "up"}})
    with pytest.raises(ValueError, match="scheduler_options"):
        compare_stores(wrong, point_config(BASE, "diffpure-t0.2", STORES), eps=0.2)


def test_budget_flattened_needs_no_difference_and_a_small_drop():
    same = {i: i < 50 for i in range(64)}
    drop = {i: i < 45 for i in range(64)}  # 5 fewer robust at the larger budget: no significant difference
    assert budget_flattened([compare_paired(same, same)])
    assert compare_paired(same, drop).verdict == "no difference found"
    assert not budget_flattened([compare_paired(same, same), compare_paired(same, drop)])


def test_compare_command_prints_a_row_per_eps_and_refuses_a_missing_eps(tmp_path, capsys):
    import yaml

    from mimic_diffusers.cli import main

    configs = [point_config(BASE, point, STORES) for point in ("mimic-gs4-up", "diffpure-t0.3")]
    argv = ["compare"]
    for config in configs:
        path = tmp_path / f"{os.path.basename(config.output_dir)}.yaml"
        path.write_text(yaml.safe_dump(config.__dict__))
        argv += ["--config", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    c = compare_stores(*configs, eps=0.3)
    assert f"| 0.3 | {c.n} | {c.a_robust} | {c.b_robust} | {100 * c.difference:+.1f} [" in out and "| 0.2 |" in out
    assert main(argv + ["--eps", "0.1"]) == 2
    assert capsys.readouterr().err.startswith("error: --eps")
