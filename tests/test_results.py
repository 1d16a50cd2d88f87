"""The typed results (`mimic_diffusers.evaluation.results`), read from the committed stores: the round trip to
the summary dict, threat lookup, a typed read of a store, and the reports rendered from either form."""

import json
import os

import pytest

from mimic_diffusers.evaluation import (
    Accuracy,
    EvalConfig,
    Results,
    ThreatResult,
    attack_label,
    per_sample,
    read_results,
    report_store,
)
from mimic_diffusers.reports import markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "benchmarks", "results", "eval-mnist-default")


def default_config() -> EvalConfig:
    # the committed store of configs/mnist-default.yaml, read where it is committed
    return EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-default.yaml"), output_dir=DEFAULT)


def frontier_config(point: str = "mimic-gs16") -> EvalConfig:
    from studies.frontier import point_config

    base = EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-frontier.yaml"))
    return point_config(base, point, os.path.join(ROOT, base.output_dir))


def test_round_trip_of_a_committed_summary_is_byte_identical():
    with open(os.path.join(DEFAULT, "summary.json")) as f:
        text = f.read()
    summary = json.loads(text)
    results = Results.from_summary(summary)
    assert results.to_summary() == summary
    assert json.dumps(results.to_summary(), indent=1) == text  # same keys in the same order
    assert [t.key for t in results.threats] == list(summary["threats"])
    t = results.threat("Linf", 0.3)
    assert isinstance(t, ThreatResult) and isinstance(t.worst_case_vote, Accuracy)
    assert t.worst_case_vote.accuracy == summary["threats"]["Linf-0.3"]["worst_case_vote"]["accuracy"]
    assert isinstance(t.worst_case.ci95, tuple) and len(t.worst_case.ci95) == 2


def test_round_trip_of_a_frontier_store():
    summary = report_store(frontier_config(), write=False)
    results = Results.from_summary(summary)
    assert results.to_summary() == summary
    assert json.dumps(results.to_summary()) == json.dumps(summary)
    for t in results.threats:  # a cascade with a vote of K: every rule recorded, attacks in cascade order
        assert t.cascade and t.worst_case_all_votes is not None
        assert list(t.attacks) == [attack_label(a) for a in results.config.attacks][: len(t.attacks)]
        assert all(a.all_votes is not None for a in t.attacks.values())


def test_threat_lookup_names_the_threats_there_are():
    results = read_results(default_config())
    assert results.threat("Linf", 0.1).key == "Linf-0.1"
    assert results.get("L2", 0.5) is None and not results.complete("L2", 0.5)
    with pytest.raises(ValueError, match=r"eps=0\.2 \(Linf-0\.2\).*threats with results: Linf-0\.1, Linf-0\.3"):
        results.threat("Linf", 0.2)
    with pytest.raises(ValueError, match="rule must be one of"):
        results.clean_under("majority")


def test_typed_read_of_a_store():
    config = default_config()
    results = read_results(config)
    assert results.to_summary() == report_store(config, write=False)
    assert results.config == config and results.clean_under("vote") is results.clean_vote
    t = results.threat("Linf", 0.3)
    assert t.n == t.worst_case.n == config.num_samples and results.complete("Linf", 0.3)
    assert list(t.attacks) == [attack_label(a) for a in config.attacks]
    for a in t.attacks.values():  # the worst case per sample is at most every attack's accuracy
        assert t.worst_case_under("vote").correct <= a.under("vote").correct
    samples = per_sample(config, t, "vote")
    assert sorted(samples) == list(range(config.num_samples))
    assert sum(samples.values()) == t.worst_case_vote.correct
    assert sum(per_sample(config, {"norm": "Linf", "eps": 0.3}, "first").values()) == t.worst_case.correct
    with pytest.raises(ValueError, match="rule must be one of"):
        per_sample(config, t, "vote_correct")


def test_reports_render_the_same_from_a_dict_and_from_results():
    with open(os.path.join(DEFAULT, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(DEFAULT, "results.md")) as f:
        committed = f.read()
    assert markdown_table(summary) == markdown_table(Results.from_summary(summary)) == committed


def test_bad_summaries_are_refused_clearly():
    with pytest.raises(TypeError, match="summary must be the dict"):
        Results.from_summary([])
    with pytest.raises(ValueError, match=r"summary lacks \['threats'\]"):
        Results.from_summary({"config": {}, "clean": {}, "clean_vote": {}})
    with pytest.raises(ValueError, match=r"does not know: \['steps'\]"):
        Results.from_summary({"config": {"steps": 1}, "clean": {}, "clean_vote": {}, "threats": {}})
    with pytest.raises(TypeError, match="config must be an EvalConfig"):
        read_results({"pipeline": "x"})
