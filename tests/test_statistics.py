"""Paired statistics (exact McNemar, Newcombe's paired interval, detectable difference) and the evaluation's
soundness: independent restarts per label, per-sample noise streams, unbiased votes, guarded and read-only
stores."""

import hashlib
import json
import math
import os

import pytest
import torch
from conftest import tiny_pipeline

from mimic_diffusers.cli import main as cli
from mimic_diffusers.evaluation import EvalConfig, read_records, run_evaluation, score_votes
from mimic_diffusers.evaluation.runner import evaluate_unit
from mimic_diffusers.evaluation.statistics import (
    compare_paired,
    detectable_difference,
    mcnemar_exact_p,
    paired_difference_ci,
)


def test_mcnemar_exact_p_is_the_two_sided_binomial_tail():
    assert mcnemar_exact_p(0, 6) == pytest.approx(2 / 64)  # 2 * P[X <= 0], X ~ Bin(6, 1/2)
    assert mcnemar_exact_p(3, 3) == 1.0 and mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)


def test_paired_interval_contains_the_difference_and_narrows_with_n():
    for both, a_only, b_only, neither in [(12, 9, 2, 16), (60, 0, 0, 4), (0, 0, 0, 10), (30, 5, 1, 28), (0, 10, 0, 0)]:
        n = both + a_only + b_only + neither
        low, high = paired_difference_ci(both, a_only, b_only, neither)
        assert -1 <= low <= (a_only - b_only) / n <= high <= 1
    small, large = paired_difference_ci(30, 4, 2, 28), paired_difference_ci(120, 16, 8, 112)
    assert large[1] - large[0] < small[1] - small[0]
    low, high = paired_difference_ci(50, 3, 3, 8)
    assert low == pytest.approx(-high)  # no difference: symmetric about 0


def test_detectable_difference_solves_connors_formula():
    for n, psi in [(64, 0.1), (256, 0.2), (1000, 0.05)]:
        d = detectable_difference(n, psi)
        needed = (1.959964 * math.sqrt(max(psi, d)) + 0.841621 * math.sqrt(max(psi, d) - d * d)) ** 2 / d**2
        assert needed == pytest.approx(n, rel=1e-6)
    assert detectable_difference(256, 0.1) < detectable_difference(64, 0.1)


def test_compare_paired_verdicts_and_power():
    ids = range(64)
    same = compare_paired({i: i < 50 for i in ids}, {i: i < 50 for i in ids})
    assert same.verdict == "no difference found" and same.difference == 0 and 0 < same.detectable < 0.3
    a_wins = compare_paired({i: i < 60 for i in ids}, {i: i < 48 for i in ids})
    assert (a_wins.a_only, a_wins.b_only, a_wins.verdict) == (12, 0, "A better") and a_wins.p_value < 0.05
    b_wins = compare_paired({i: i < 48 for i in ids}, {i: i < 60 for i in ids})
    assert b_wins.verdict == "B better" and b_wins.difference == pytest.approx(-12 / 64)
    # 64/64 against 59/64 is not a difference this test can find with so few discordant images
    assert compare_paired({i: True for i in ids}, {i: i < 59 for i in ids}).verdict == "no difference found"
    with pytest.raises(ValueError, match="same image ids"):
        compare_paired({0: True}, {1: True})


def test_a_vote_tie_is_never_robust_whatever_the_label():
    # K = 5, a 2-2-1 split between the true label and another: the old rule gave the tie to the smaller label
    for truth, other in [(0, 9), (9, 0), (3, 4)]:
        votes = [[truth], [truth], [other], [other], [5 if 5 not in (truth, other) else 6]]
        assert score_votes(votes, [truth])["vote_correct"] == [False]


@pytest.fixture
def tiny_dir(tiny_pipeline_dir):
    return tiny_pipeline_dir


def config(pipeline, output_dir, **kw):
    raw = dict(
        pipeline=pipeline,
        output_dir=str(output_dir),
        num_samples=3,
        batch_size=3,
        num_inference_steps=3,
        votes=3,
        threats=[{"norm": "Linf", "eps": 0.3}],
        examples=0,
        attacks=[
            {"name": "bpda-eot", "label": "bpda-a", "params": {"steps": 1, "eot": 2}},
            {"name": "bpda-eot", "label": "bpda-b", "params": {"steps": 1, "eot": 2}},
        ],
    )
    raw.update(kw)
    return EvalConfig(**raw).validate()


def mnist(n):
    from mimic_diffusers.data import load_image_dataset, to_tensors

    return to_tensors(load_image_dataset("mnist5k", split="test"), 1, indices=range(n))


def test_two_labels_of_one_attack_are_independent_restarts(tiny_dir, tmp_path):
    pipe = tiny_pipeline(size=28)
    x, y = mnist(3)
    record = evaluate_unit(pipe, config(tiny_dir, tmp_path), 0, x, y, [0, 1, 2], {"norm": "Linf", "eps": 0.3})
    a, b = (dict(record["attacks"][label]) for label in ("bpda-a", "bpda-b"))
    for r in (a, b):
        r.pop("seconds")
    assert a != b  # other random starts, EOT and evaluation noise: not a copy of one run
    assert a["seed"] != b["seed"] and record["seed_scheme"] == "per-sample-v2"  # and each record says so


@pytest.mark.parametrize("name", ["bpda-eot", "square"])
def test_a_sample_attacked_alone_or_in_a_batch_gives_the_same_record(tiny_dir, tmp_path, name, monkeypatch):
    from mimic_diffusers.attacks import PurifyThenClassify

    pipe = tiny_pipeline(size=28)
    x, y = mnist(3)
    params = {"steps": 2, "eot": 2} if name == "bpda-eot" else {"n_queries": 4}
    cfg = config(tiny_dir, tmp_path, attacks=[{"name": name, "params": params}])
    threat = {"norm": "Linf", "eps": 0.3}
    scored, predict = [], PurifyThenClassify.predict  # the adversarial inputs the evaluation scores
    monkeypatch.setattr(
        PurifyThenClassify, "predict", lambda self, xs, votes=1: scored.append(xs) or predict(self, xs, votes)
    )
    batch = evaluate_unit(pipe, cfg, 0, x, y, [0, 1, 2], threat)["attacks"][name]
    # sample 1 alone, as a cascade that left only it standing
    alone = evaluate_unit(pipe, cfg, 0, x, y, [0, 1, 2], threat, targets=[False, True, False])["attacks"][name]
    torch.testing.assert_close(scored[1][0], scored[0][1], atol=1e-5, rtol=0)  # the same attack on sample 1
    assert [p[1] for p in alone["predictions"]] == [p[1] for p in batch["predictions"]]
    assert alone["correct"][1] == batch["correct"][1] and alone["vote_correct"][1] == batch["vote_correct"][1]
    assert alone["predictions"][0][0] is None and alone["correct"][0] is None  # skipped, and says so


def store_bytes(output_dir):
    return {
        f: hashlib.sha256(open(os.path.join(output_dir, f), "rb").read()).hexdigest()
        for f in sorted(os.listdir(output_dir))
        if f.endswith((".jsonl", "store.json"))
    }


def test_report_only_leaves_the_store_unchanged_even_with_a_torn_line(tiny_dir, tmp_path):
    out = tmp_path / "store"
    cfg = config(tiny_dir, out, attacks=[{"name": "bpda-eot", "params": {"steps": 1}}])
    run_evaluation(cfg)
    with open(out / "results.rank0.jsonl", "a") as f:
        f.write('{"batch": 0, "threat": "Linf-0.3", "ids": [0, ')  # a kill mid-write
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in vars(cfg).items()}))
    before = store_bytes(out)
    assert cli(["evaluate", "--config", str(path), "--report-only"]) in (0, None)
    assert store_bytes(out) == before
    assert len(read_records(str(out))) == 2  # the torn line is skipped, not counted
    run_evaluation(cfg)  # nothing pending: the store stays as it is
    assert store_bytes(out) == before


def test_the_fingerprint_is_the_defense_not_where_it_was_loaded_from(tiny_dir, tmp_path):
    """A store resumes from any copy of the same pipeline (a checkout, a wheel install): the folder a component
    was loaded from is no part of its fingerprint; its weights and options are."""
    import shutil

    from mimic_diffusers import load_pipeline
    from mimic_diffusers.evaluation.runner import pipeline_fingerprint

    shutil.copytree(tiny_dir, tmp_path / "copy")
    a, b = load_pipeline(tiny_dir), load_pipeline(str(tmp_path / "copy"))
    assert a.unet.config._name_or_path != b.unet.config._name_or_path
    assert pipeline_fingerprint(a) == pipeline_fingerprint(b)
    b.scheduler.register_to_config(guidance_scale=123.0)
    assert pipeline_fingerprint(a) != pipeline_fingerprint(b)
    # a preset leaves options at their defaults, which diffusers lists from a set: in another process (another
    # hash seed) the list comes in another order, and the fingerprint must not follow it
    a, b = (load_pipeline(tiny_dir, {"preset": "diffpure"}) for _ in range(2))
    filled = list(a.scheduler.config["_use_default_values"])
    assert len(filled) > 1
    b.scheduler.register_to_config(_use_default_values=filled[::-1])
    assert b.scheduler.config["_use_default_values"] == filled[::-1]
    assert pipeline_fingerprint(a) == pipeline_fingerprint(b)


def test_a_store_refuses_a_config_made_with_other_settings(tiny_dir, tmp_path):
    out = tmp_path / "store"
    attacks = [{"name": "bpda-eot", "params": {"steps": 1}}]
    run_evaluation(config(tiny_dir, out, attacks=attacks, num_samples=2, batch_size=1))
    header = json.loads((out / "store.json").read_text())
    assert header["votes"] == 3 and len(header["pipeline_fingerprint"]) == 64
    for change, option in [
        (dict(votes=5), "votes"),
        (dict(seed=1), "seed"),
        (dict(scheduler_options={"guidance_scale": 8.0}), "scheduler_options"),
        (dict(num_inference_steps=4), "num_inference_steps"),
    ]:
        with pytest.raises(ValueError, match=f"{option}: store"):
            run_evaluation(config(tiny_dir, out, attacks=attacks, num_samples=3, batch_size=1, **change))
    other = tmp_path / "other-pipe"
    pipe = tiny_pipeline(size=28)
    with torch.no_grad():
        next(pipe.unet.parameters()).add_(0.01)
    pipe.save_pretrained(other)
    with pytest.raises(ValueError, match="pipeline_fingerprint: store"):
        run_evaluation(config(str(other), out, attacks=attacks, num_samples=3, batch_size=1))
    # --report-only checks the header and the sample ids too
    with pytest.raises(ValueError, match="votes: store"):
        run_evaluation(config(tiny_dir, out, attacks=attacks, num_samples=2, batch_size=1, votes=5), run_attacks=None)
    (out / "store.json").unlink()
    from mimic_diffusers.evaluation import report_store

    with pytest.raises(ValueError, match="batch_size=2"):
        report_store(config(tiny_dir, out, attacks=attacks, num_samples=2, batch_size=2), write=False)
