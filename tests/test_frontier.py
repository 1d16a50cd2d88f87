"""The frontier study: its points are the issue's grid, a tiny study runs end to end through the same
script, and its answers rest on paired tests (hand-built per-sample outcomes with known answers)."""

import os

import pytest
import yaml

from studies import frontier, frontier_plot, frontier_report, progress
from studies.pages.common import TEMPLATES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def markdown(table, comps, checks=(), standing=()):
    """The frontier page's tables for a study's rows, comparisons, budget checks and the default's standing."""
    return TEMPLATES.get_template("frontier.md.j2").render(
        table=table,
        comparisons=comps,
        budget_check=list(checks),
        protocol=frontier_report.EvalConfig.from_file(os.path.join(ROOT, frontier_report.STUDY)),
        legacy=[0, 0],
        study_config="",
        budget_config="",
        flat_drop=0.02,
        rules=list(frontier_report.RULES),
        walls=[],
        standing=list(standing),
    )


def test_points_cover_the_grid_and_build_valid_configs():
    from mimic_diffusers.evaluation import EvalConfig

    base = EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-frontier.yaml"))
    assert {f"mimic-gs{s}" for s in (4, 8, 16, 32, 64)} <= set(frontier.POINTS)
    assert {f"diffpure-t{t:g}" for t in (0.1, 0.2, 0.3, 0.4)} <= set(frontier.POINTS)
    config = frontier.point_config(base, "mimic-gs32-wide", "/tmp/x")
    assert config.scheduler_options == {
        "guidance_scale": 32.0,
        "guidance_window_start": 0.79,
        "guidance_window_end": 0.11,
        "sr_direction": "down",  # explicit: a point never rests on the shipped pipeline's default
    }
    assert config.output_dir == os.path.join("/tmp/x", "mimic-gs32-wide") and config.votes == 5
    names = {a["name"] for a in base.attacks}
    assert {"feedback-cut-pgd-eot", "exact-pgd-eot", "bpda-eot", "square"} <= names


def test_tiny_study_runs_and_reports(tmp_path, capsys):
    config = yaml.safe_load(open(os.path.join(ROOT, "configs", "mnist-frontier.yaml")))
    config.update(num_samples=2, batch_size=2, num_inference_steps=4, votes=3)
    config["attacks"] = [
        {"name": "feedback-cut-pgd-eot", "params": {"steps": 1, "eot": 1, "tau": 0.5}},
        {"name": "bpda-eot", "params": {"steps": 1, "eot": 2, "relative_step_size": 5.0}},
    ]
    config["output_dir"] = str(tmp_path / "study")  # the stores the analysis reads: the runs below write there
    path = tmp_path / "frontier.yaml"
    path.write_text(yaml.safe_dump(config))
    # in this process (its argv as the command takes it; `python -m studies.frontier` is `main()` of this module)
    frontier.main(
        ["--config", str(path), "--points", "mimic-gs4", "diffpure-t0.3", "--eps", "0.3"]
        + ["--output-dir", str(tmp_path / "study")]
    )
    table = frontier_report.rows(frontier_report.point_summaries(str(path), str(tmp_path / "study")))
    done = {(r["point"], r["eps"]) for r in table if r["complete"]}
    assert done == {("mimic-gs4", 0.3), ("diffpure-t0.3", 0.3)}  # eps 0.2 was not run: incomplete
    assert all(r["n"] == 0 for r in table if r["eps"] == 0.2)
    # attack runs made, of attacks x samples (the config is a cascade: fewer where the clean pass or an attack won)
    for r in (r for r in table if r["complete"]):
        assert r["attacked"][1] == 4 and 0 <= r["attacked"][0] <= 4
    study = frontier_report.point_summaries(str(path), str(tmp_path / "study"))
    comps = frontier_report.comparisons(study, table)
    assert [(c["eps"], c["a"], c["b"], c["best"], c["n"]) for c in comps] == [
        (0.3, "mimic-gs4", "diffpure-t0.3", True, 2)
    ]
    text = markdown(table, comps)
    assert "| mimic-gs4 | guidance_scale=4.0, sr_direction=down | 0.3 | 2 |" in text and "not run" in text
    assert all(f"| {r['attacked'][0]} / 4 |" in text for r in table if r["complete"])
    assert frontier_plot.plot(table, "mimic-gs4")[:4] == b"\x89PNG"
    # a screen: the cascade's first attack only, on every image; listed with its upper bound, not as complete
    frontier.main(
        ["--config", str(path), "--points", "mimic-gs4", "--eps", "0.2", "--attacks", "feedback-cut-pgd-eot"]
        + ["--output-dir", str(tmp_path / "study")]
    )
    table = frontier_report.rows(frontier_report.point_summaries(str(path), str(tmp_path / "study")))
    screened = [r for r in table if r.get("screen")]
    assert [(r["point"], r["eps"], r["complete"]) for r in screened] == [("mimic-gs4", 0.2, False)]
    assert screened[0]["screen"]["attacks"] == ["feedback-cut-pgd-eot"] and screened[0]["attacked"][1] == 2
    assert "at most" in markdown(table, []) and "(screen: feedback-cut-pgd-eot only)" in markdown(table, [])
    assert frontier_plot.plot(table, "mimic-gs4")[:4] == b"\x89PNG"
    # a confirmation of the same points planned on more images than have run: paired on the images both finished,
    # and the budget check of the study against it on the study's images (the same records here: nothing discordant)
    confirm = dict(config, output_dir=str(tmp_path / "study"), num_samples=4, threats=[{"norm": "Linf", "eps": 0.3}])
    (tmp_path / "confirm.yaml").write_text(yaml.safe_dump(confirm))
    c = frontier_report.confirmation(str(tmp_path / "confirm.yaml"), study)
    assert (c["n"], c["planned"]) == (2, 4)
    assert [(p["a"], p["b"], p["vote"]["n"], p["first"]["n"]) for p in c["pairs"]] == [
        ("mimic-gs4", "diffpure-t0.3", 2, 2)
    ]
    assert c["robust"]["mimic-gs4"]["vote"]["n"] == 2
    progress.main(["--pair", str(tmp_path / "confirm.yaml")])  # the same pairs, printed as a reading
    printed, v = capsys.readouterr().out, c["pairs"][0]["vote"]
    assert "eps 0.3: 2 of 4 images paired" in printed
    assert (
        f"| mimic-gs4 | diffpure-t0.3 | {v['a_robust']} | {v['b_robust']} | {100 * v['difference']:+.1f} [" in printed
    )
    # the compute a confirmation has left: one of its two batches has run, so one unit per attack, at its mean time
    left = progress.remaining_rows(str(tmp_path / "confirm.yaml"), ["mimic-gs4", "diffpure-t0.3"])
    assert [(r["point"], r["attack"], r["run"], r["planned"]) for r in left] == [
        (p, a["name"], 1, 2) for p in ("mimic-gs4", "diffpure-t0.3") for a in config["attacks"]
    ]
    assert all(r["left_s"] == r["mean_s"] > 0 for r in left if r["mean_s"] is not None) and left[0]["mean_s"]
    progress.print_remaining([(str(tmp_path / "confirm.yaml"), str(tmp_path / "confirm.yaml"))])
    total = sum(r["left_s"] or 0 for r in left)
    assert f"about {2 * total:,.0f} s left at the stored unit times" in capsys.readouterr().out  # listed twice
    checked = frontier_report.budget_checks(str(path), str(tmp_path / "confirm.yaml"))
    checks = [
        (b["point"], b["eps"], b["n"], b["vote"]["a_only"] + b["vote"]["b_only"], b["flattened"]) for b in checked
    ]
    # on the images both plan (2 of the study's, 4 of the confirmation's); eps 0.2 is not in both
    assert checks == [("mimic-gs4", 0.3, 2, 0, True), ("diffpure-t0.3", 0.3, 2, 0, True)]
    # attack by attack, cumulative: the last stage is the worst case the check compares
    for b in checked:
        assert [st["attack"] for st in b["stages"]] == [a["name"] for a in config["attacks"]]
        last = b["stages"][-1]
        assert (last["a_robust"], last["b_robust"]) == (b["vote"]["a_robust"], b["vote"]["b_robust"])
        assert all(x[k] >= y[k] for x, y in zip(b["stages"], b["stages"][1:]) for k in ("a_robust", "b_robust"))
    # an unfinished check read attack by attack (studies.progress): eps 0.2 was screened with the first attack
    # only, so it reads that stage alone; at eps 0.3 every stage, its last the check's worst case
    both = dict(confirm, threats=[{"norm": "Linf", "eps": 0.2}, {"norm": "Linf", "eps": 0.3}])
    (tmp_path / "confirm-both.yaml").write_text(yaml.safe_dump(both))
    staged = progress.stage_rows(str(path), str(tmp_path / "confirm-both.yaml"))
    assert [(r["point"], r["eps"], r["attack"], r["n"]) for r in staged] == [
        ("mimic-gs4", 0.2, "feedback-cut-pgd-eot", 2),
        ("mimic-gs4", 0.3, "feedback-cut-pgd-eot", 2),
        ("mimic-gs4", 0.3, "bpda-eot", 2),
        ("diffpure-t0.3", 0.3, "feedback-cut-pgd-eot", 2),
        ("diffpure-t0.3", 0.3, "bpda-eot", 2),
    ]
    assert [(r["a_robust"], r["b_robust"]) for r in staged if r["attack"] == "bpda-eot"] == [
        (b["vote"]["a_robust"], b["vote"]["b_robust"]) for b in checked
    ]
    assert c["chosen_on"] == 2 and c["pairs"][0]["unseen"] is None  # no image after the study's has run yet
    text = finding([c], "mimic-gs4")
    assert "| 0.3 | `" in text and "| 2 / 4 |" in text and "| none yet |" in text
    c["pairs"][0]["unseen"] = frontier_report.compare_paired(outcomes(30, 40), outcomes(20, 40)).to_dict()
    assert "| +25.0 [" in finding([c], "mimic-gs4") and "] (40) |" in finding([c], "mimic-gs4")
    c["pairs"] = []
    assert "| 2 / 4 | no image paired yet |" in finding([c], "mimic-gs4")
    # a point that has not caught up leaves nothing paired, yet each other point's budget check stands on its own
    (tmp_path / "study" / "diffpure-t0.2").mkdir()
    clean = next(line for line in open(tmp_path / "study" / "mimic-gs4" / "results.rank0.jsonl") if '"clean"' in line)
    (tmp_path / "study" / "diffpure-t0.2" / "results.rank0.jsonl").write_text(clean)  # its clean pass alone
    c = frontier_report.confirmation(str(tmp_path / "confirm.yaml"), study)
    checked = frontier_report.budget_checks(str(path), str(tmp_path / "confirm.yaml"))
    assert c["n"] == 0 and [b["point"] for b in checked] == ["mimic-gs4", "diffpure-t0.3"]
    # one side alone (DiffPure, run first): nothing is paired, yet its budget check stands
    for point in ("mimic-gs4", "diffpure-t0.2"):
        (tmp_path / "study" / point).rename(tmp_path / f"away-{point}")
    c = frontier_report.confirmation(str(tmp_path / "confirm.yaml"), study)
    checked = frontier_report.budget_checks(str(path), str(tmp_path / "confirm.yaml"))
    assert (c["n"], c["pairs"], c["table"]) == (0, [], []) and [b["point"] for b in checked] == ["diffpure-t0.3"]
    progress.main(["--pair", str(tmp_path / "confirm.yaml")])
    assert "no MimicDiffusion and DiffPure point have both finished an image" in capsys.readouterr().out


def finding(confirm, shipped):
    """README's finding for no frontier rows and these confirmations."""
    protocol = frontier_report.EvalConfig.from_file(os.path.join(ROOT, frontier_report.STUDY))
    return TEMPLATES.get_template("finding.md.j2").render(
        rows=[],
        confirm=confirm,
        shipped=shipped,
        votes=5,
        flat={},
        flat_at={c["config"]: {} for c in confirm},
        study_config="",
        protocol=protocol,
    )


def test_step_grows_the_points_together(monkeypatch, tmp_path):
    """`--step`: every point reaches N images before any point goes past it, so a stop leaves them paired."""
    calls = []
    monkeypatch.setattr(
        frontier, "run_evaluation", lambda config, **_: calls.append((config.output_dir, config.num_samples))
    )
    argv = [
        "--config",
        os.path.join(ROOT, "configs", "mnist-confirm-eps0.3.yaml"),
        "--points",
        "mimic-gs4-up",
        "diffpure-t0.3",
    ]
    frontier.main(argv + ["--output-dir", str(tmp_path), "--step", "96"])
    points = [os.path.basename(d) for d, _ in calls]
    assert points == ["mimic-gs4-up", "diffpure-t0.3"] * 3 and [n for _, n in calls] == [96, 96, 192, 192, 256, 256]
    with pytest.raises(SystemExit):
        frontier.main(argv + ["--step", "20"])  # not a multiple of the batch size (16)


def outcomes(robust, n=64):
    return {i: i < robust for i in range(n)}


def test_a_perfect_point_can_beat_diffpure_once_the_images_disagree_enough(monkeypatch):
    """The old rule (two independent Wilson intervals apart) could not call 64/64 better than 57/64; the
    paired test on the same images can, and says how small a difference it could have found otherwise."""
    from mimic_diffusers.metrics import accuracy

    samples = {"mimic-gs4": outcomes(64), "mimic-gs8": outcomes(60), "diffpure-t0.2": outcomes(57)}
    monkeypatch.setattr(frontier_report, "per_sample", lambda study, point, eps, rule: samples[point])

    def row(point):
        acc = accuracy(list(samples[point].values()))
        return {
            "point": point,
            "method": point.split("-")[0],
            "eps": 0.2,
            "complete": True,
            "vote": {"clean": accuracy([True] * 64), "robust": acc},
        }

    comps = frontier_report.comparisons({}, [row(p) for p in samples])
    best = next(c for c in comps if c["best"])
    assert (best["a"], best["b"], best["verdict"], best["a_only"], best["b_only"]) == (
        "mimic-gs4",
        "diffpure-t0.2",
        "A better",
        7,
        0,
    )
    other = next(c for c in comps if not c["best"])
    assert other["verdict"] == "no difference found" and 0 < other["detectable"] < 0.2
    table = TEMPLATES.get_template("frontier_answer.md.j2").render(comparisons=comps, flat={})
    assert "| 0.2 | mimic-gs4 100.0% [94.3%, 100.0%], N = 64 | diffpure-t0.2 89.1% [" in table
    assert "| +10.9 [" in table and "| 7 / 0 | 0.016 | A better |" in table and "| not checked, not checked |" in table


def test_budget_flattened_needs_no_paired_difference_and_a_small_drop():
    # diffpure-t0.2 at eps 0.2, first purification: 57/64 -> 52/64 was "flattened" under the old rule
    lax = frontier_report.budget_verdict({"vote": [outcomes(59), outcomes(57)], "first": [outcomes(57), outcomes(52)]})
    assert lax["first"]["verdict"] == "no difference found" and lax["first"]["difference"] > 0.02
    assert not lax["flattened"]
    flat = frontier_report.budget_verdict(
        {"vote": [outcomes(50), outcomes(50)], "first": [outcomes(45), outcomes(46)]}
    )
    assert flat["flattened"]
    significant = frontier_report.budget_verdict(
        {"vote": [outcomes(60), outcomes(40)], "first": [outcomes(45), outcomes(45)]}
    )
    assert significant["vote"]["verdict"] == "A better" and not significant["flattened"]
    configs = {"a_config": "configs/mnist-frontier.yaml", "config": "configs/mnist-frontier-2x.yaml"}
    stage = {"attack": "bpda-eot", **frontier_report.compare_paired(outcomes(59), outcomes(57)).to_dict()}
    text = markdown([], [], [{"point": "mimic-gs4", "eps": 0.2, **configs, **lax, "stages": [stage]}])
    row = "| mimic-gs4 | 0.2 | first | `configs/mnist-frontier.yaml` | `configs/mnist-frontier-2x.yaml` | 57/64 | 52/64 |"
    assert row + " +7.8 [" in text
    assert text.count("| no |") == 2
    row = "| mimic-gs4 | 0.2 | `configs/mnist-frontier.yaml` | `configs/mnist-frontier-2x.yaml` | bpda-eot | 59/64 | 57/64 |"
    assert row + " +3.1 [" in text  # attack by attack


def test_the_default_is_among_the_most_robust_only_where_its_upper_end_reaches_every_measured_point():
    """The issue's test: the default's upper 95% end against the best complete point's estimate and against every
    screen's upper bound; a point that was never run is listed, and a default that is not complete settles nothing."""
    from mimic_diffusers.metrics import accuracy

    def row(point, robust, complete=True, eps=0.2):
        measured = {"robust": accuracy([i < robust for i in range(64)])}
        r = {"point": point, "method": "mimic", "eps": eps, "complete": complete}
        return {**r, "vote": measured} if complete else {**r, "screen": {"attacks": ["a"], "vote": measured}}

    names = ["d", "b", "s", "never"]
    samples = {"d": outcomes(58), "b": outcomes(60)}
    table = [row("d", 58), row("b", 60), row("s", 61, complete=False)]
    (yes,) = frontier_report.standing(table, "d", names, lambda point, eps: samples[point])
    assert (yes["answer"], yes["best"], yes["not_run"], yes["screens_above"]) == ("yes", "b", ["never"], [])
    assert (yes["rival"], yes["paired"]["a_only"], yes["paired"]["b_only"]) == ("b", 0, 2)  # paired on the images
    (no,) = frontier_report.standing([row("d", 58), row("b", 62)], "d", names)
    assert no["answer"] == "no"
    (open_,) = frontier_report.standing([row("d", 58), row("s", 62, complete=False)], "d", names)
    assert open_["answer"].startswith("not settled") and [p for p, _ in open_["screens_above"]] == ["s"]
    (screened,) = frontier_report.standing([row("d", 58, complete=False), row("b", 40)], "d", names)
    assert screened["answer"] == "the default is not complete at this eps" and "robust" not in screened
    page = markdown([], [], standing=[yes, open_, screened])
    assert "| 0.2 | d 90.6% [" in page and "| b 93.8% [" in page and "| never | yes | b | -3.1 [" in page
    assert "| s at most 96.9% [" in page and "| d: not complete |" in page


def test_plot_puts_each_variant_in_its_own_series_against_its_knob():
    """Robust accuracy against the knob: -up and -wide are series of their own, in knob order; screens are drawn
    (as upper bounds), points not run are not."""
    acc = {"accuracy": 0.5, "ci95": [0.4, 0.6]}
    measured = {"vote": {"robust": acc, "clean": acc}, "first": {"robust": acc, "clean": acc}}

    def row(point, method, knob, variant, complete=True, screen=False):
        r = {
            "point": point,
            "method": method,
            "knob": knob,
            "variant": variant,
            "eps": 0.3,
            "complete": complete,
            "n": 64 if complete or screen else 0,
            "votes": 5,
        }
        return {**r, **measured} if complete else {**r, "screen": {"attacks": ["a"], **measured}} if screen else r

    table = [
        row("mimic-gs64", "mimic", 64.0, ""),
        row("mimic-gs4", "mimic", 4.0, ""),
        row("mimic-gs4-up", "mimic", 4.0, "up"),
        row("mimic-gs8-up", "mimic", 8.0, "up", False, screen=True),
        row("mimic-gs8-wide", "mimic", 8.0, "wide", complete=False),
        row("diffpure-t0.2", "diffpure", 0.2, ""),
    ]
    mimic = frontier_plot.series(table, 0.3, "mimic")
    assert {v: [r["point"] for r in rows] for v, rows in mimic.items()} == {
        "": ["mimic-gs4", "mimic-gs64"],
        "up": ["mimic-gs4-up", "mimic-gs8-up"],
    }
    assert frontier_plot.robust(mimic["up"][1]) == acc
    assert set(frontier_plot.MIMIC_SERIES) == set(frontier.VARIANT_OPTIONS)
    assert [r["point"] for r in frontier_plot.series(table, 0.3, "diffpure")[""]] == ["diffpure-t0.2"]
    assert (
        frontier_plot.plot(table, "mimic-gs4")[:4] == b"\x89PNG"
        and frontier_plot.plot([], "mimic-gs4")[:4] == b"\x89PNG"
    )


def test_model_card_takes_the_confirmation_once_it_has_paired_the_frontier_images(monkeypatch):
    """The shipped default's model card shows its frontier row until the confirmation (the same first images,
    larger budgets) has paired at least the frontier's images; then the confirmation's row and paired difference
    replace it, with the command that reproduces them."""
    from studies.pages import model_card_results

    def row(n):
        return {"point": "mimic-gs4-up", "eps": 0.3, "complete": True, "n": n, "votes": 5}

    frontier_pair = {"eps": 0.3, "a": "mimic-gs4-up", "b": "diffpure-t0.3", "difference": 0.05}
    confirm = {"config": "configs/mnist-confirm-eps0.3.yaml", "eps": 0.3, "n": 32, "planned": 256}
    pair = {"a": "mimic-gs4-up", "b": "diffpure-t0.3", "vote": {"difference": 0.02}}
    confirm.update(table=[row(32)], pairs=[pair])
    protocol = frontier_report.EvalConfig.from_file(os.path.join(ROOT, frontier_report.STUDY))
    study = {"table": [row(64)], "comparisons": [frontier_pair], "confirmation": [confirm], "protocol": protocol}
    monkeypatch.setattr(model_card_results, "study", lambda: study)
    monkeypatch.setattr(model_card_results, "shipped_point", lambda: "mimic-gs4-up")
    [(r, c, command)] = model_card_results.current_rows()
    assert (r["n"], c["difference"]) == (64, 0.05)  # 32 of 256, fewer than the frontier's 64: still the frontier's
    assert command == f"python -m studies.frontier --config {frontier_report.STUDY} --points mimic-gs4-up --eps 0.3"
    # an eps outside the study's threats ran from the finalists' config, and its command says so
    study["table"].append(dict(row(64), eps=0.1))
    study["comparisons"].append(dict(frontier_pair, eps=0.1, b="diffpure-t0.2"))
    assert f"--config {frontier_report.FINALISTS} --points" in model_card_results.current_rows()[1][2]
    study["table"].pop(), study["comparisons"].pop()
    confirm.update(n=64, table=[row(64)])
    [(r, c, command)] = model_card_results.current_rows()
    assert (r["n"], c["difference"], c["b"]) == (64, 0.02, "diffpure-t0.3")
    assert command.endswith("--points mimic-gs4-up diffpure-t0.3 --step 32 --num-samples 64")
    confirm.update(n=256, table=[row(256)])
    [(r, c, command)] = model_card_results.current_rows()
    assert (r["n"], c["difference"], c["b"]) == (256, 0.02, "diffpure-t0.3")
    assert command.endswith("--config configs/mnist-confirm-eps0.3.yaml --points mimic-gs4-up diffpure-t0.3 --step 32")
