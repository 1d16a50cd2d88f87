"""The frontier study: its points are the issue's grid, a tiny study runs end to end through the same
script, and the report's answer follows the intervals (hand-built rows with known answers)."""
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import frontier  # noqa: E402
import frontier_answer  # noqa: E402
import frontier_plot  # noqa: E402
import frontier_report  # noqa: E402


def test_points_cover_the_grid_and_build_valid_configs():
    from mimic_diffusers.evaluation import EvalConfig

    base = EvalConfig.from_file(os.path.join(ROOT, "configs", "mnist-frontier.yaml"))
    assert {f"mimic-gs{s}" for s in (4, 8, 16, 32, 64)} <= set(frontier.POINTS)
    assert {f"diffpure-t{t:g}" for t in (0.1, 0.2, 0.3, 0.4)} <= set(frontier.POINTS)
    config = frontier.point_config(base, "mimic-gs32-wide", "/tmp/x")
    assert config.scheduler_options == {"guidance_scale": 32.0, "guidance_window_start": 0.79, "guidance_window_end": 0.11}
    assert config.output_dir == os.path.join("/tmp/x", "mimic-gs32-wide") and config.votes == 5
    names = {a["name"] for a in base.attacks}
    assert {"feedback-cut-pgd-eot", "exact-pgd-eot", "bpda-eot", "square"} <= names


def row(point, clean, robust, n=64):
    from mimic_diffusers.metrics import accuracy

    acc = lambda k: accuracy([True] * k + [False] * (n - k))  # noqa: E731
    r = {"point": point, "method": point.split("-")[0], "eps": 0.2, "complete": True, "n": n}
    r["vote"] = {"clean": acc(clean), "robust": acc(robust)}
    return r


def test_answer_needs_intervals_apart_and_only_counts_diffpure_points_as_clean_or_cleaner():
    table = [row("mimic-gs4", 60, 40), row("diffpure-t0.1", 63, 10), row("diffpure-t0.4", 40, 50)]
    # diffpure-t0.4 is less clean than mimic-gs4, so only diffpure-t0.1 is a rival, and it is far below
    assert frontier_answer.answer(table, 0.2)["winners"] == ["mimic-gs4"]
    table[1] = row("diffpure-t0.1", 63, 33)  # 40/64 vs 33/64: intervals overlap -> no claim
    assert frontier_answer.answer(table, 0.2)["winners"] == []
    table[1] = row("diffpure-t0.1", 50, 5)  # less clean than mimic-gs4: no rival left -> no claim
    assert frontier_answer.answer(table, 0.2)["winners"] == []


def test_tiny_study_runs_and_reports(tmp_path):
    config = yaml.safe_load(open(os.path.join(ROOT, "configs", "mnist-frontier.yaml")))
    config.update(num_samples=2, batch_size=2, num_inference_steps=4, votes=3)
    config["attacks"] = [{"name": "feedback-cut-pgd-eot", "params": {"steps": 1, "eot": 1, "tau": 0.5}},
                         {"name": "bpda-eot", "params": {"steps": 1, "eot": 2, "relative_step_size": 5.0}}]
    path = tmp_path / "frontier.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "frontier.py"), "--config", str(path), "--points",
                    "mimic-gs4", "diffpure-t0.3", "--eps", "0.3", "--output-dir", str(tmp_path / "study")],
                   check=True, capture_output=True, timeout=600, cwd=ROOT, env=env)
    table = frontier_report.rows(frontier_report.point_summaries(str(tmp_path / "study"), str(path)))
    done = {(r["point"], r["eps"]) for r in table if r["complete"]}
    assert done == {("mimic-gs4", 0.3), ("diffpure-t0.3", 0.3)}  # eps 0.2 was not run: incomplete
    assert all(r["n"] == 0 for r in table if r["eps"] == 0.2)
    # attack runs made, of attacks x samples (the config is a cascade: fewer where the clean pass or an attack won)
    for r in (r for r in table if r["complete"]):
        assert r["attacked"][1] == 4 and 0 <= r["attacked"][0] <= 4
    text = frontier_report.markdown(table, [frontier_answer.answer(table, 0.3)], [])
    assert "| mimic-gs4 | guidance_scale=4.0 | 0.3 | 2 |" in text and "incomplete" in text
    assert all(f"| {r['attacked'][0]} / 4 |" in text for r in table if r["complete"])
    assert frontier_plot.plot(table)[:4] == b"\x89PNG"
    # a screen: the cascade's first attack only, on every image; listed with its upper bound, not as complete
    subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "frontier.py"), "--config", str(path), "--points",
                    "mimic-gs4", "--eps", "0.2", "--attacks", "feedback-cut-pgd-eot", "--output-dir", str(tmp_path / "study")],
                   check=True, capture_output=True, timeout=600, cwd=ROOT, env=env)
    table = frontier_report.rows(frontier_report.point_summaries(str(tmp_path / "study"), str(path)))
    screened = [r for r in table if r.get("screen")]
    assert [(r["point"], r["eps"], r["complete"]) for r in screened] == [("mimic-gs4", 0.2, False)]
    assert screened[0]["screen"]["attacks"] == ["feedback-cut-pgd-eot"] and screened[0]["attacked"][1] == 2
    assert "at most" in frontier_report.markdown(table, [], []) and "(screen: feedback-cut-pgd-eot only)" in frontier_report.markdown(table, [], [])
    assert frontier_plot.plot(table)[:4] == b"\x89PNG"


def test_committed_frontier_report_regenerates_byte_identically():
    """`python benchmarks/frontier_report.py --check`: the committed table, JSON and plot are what the
    committed stores give."""
    assert frontier_report.main.__module__ == "frontier_report"
    stale = [path for path, content in frontier_report.build().items()
             if open(os.path.join(ROOT, path), "rb" if isinstance(content, bytes) else "r").read() != content]
    assert not stale, f"stale: {stale} (run python benchmarks/frontier_report.py)"


def test_readme_sentence_answers_on_the_full_grid_or_when_no_missing_point_can_change_it():
    grid = frontier_answer.grid_points()
    assert len(grid) == 9 and "mimic-gs16" in grid and "mimic-gs16-wide" not in grid
    table = [row(p, 64, 40 if p == "mimic-gs8" else 20) for p in grid]
    answers = [frontier_answer.answer(table, 0.2)]
    text = frontier_answer.answer_sentence(table, answers)
    assert "mimic-gs8 beat every DiffPure point" in text and "mimic-gs8 62.5% [" in text
    assert text.endswith("Candidates for a named robust preset: mimic-gs8.\n")
    assert "diffpure-t0.1 31.2% [" in text  # the most robust DiffPure point (the first of equals)
    assert "check at twice the iterations is not complete" in text
    checks = [{"point": p, "eps": 0.2, "flattened": True} for p in frontier_answer.EXTREMES]
    assert "did not lower the worst case" in frontier_answer.answer_sentence(table, answers, checks)
    assert "not complete" in frontier_answer.answer_sentence(table, answers, checks[:1])
    table[1] = row("mimic-gs8", 64, 22)  # within the intervals now
    # no winner yet: the variants of the two most robust scales (gs8, then gs4 first of the equals) decide
    a = frontier_answer.answer(table, 0.2)
    assert not a["decided"] and a["variants"] == ["mimic-gs8-wide", "mimic-gs8-up", "mimic-gs4-wide", "mimic-gs4-up"]
    assert ("(9 of the 9 grid points measured; 0 of the 4 variants of the two most robust scales (mimic-gs8-wide, "
            in frontier_answer.answer_sentence(table, [a]))
    bounded = table + [screened(p, 64, 20) for p in a["variants"]]  # screens that cannot win settle it too
    text = frontier_answer.answer_sentence(bounded, [frontier_answer.answer(bounded, 0.2)])
    assert ("beyond the 95% intervals, and the wide-window and upsampling variants of mimic-gs8 and mimic-gs4 still to "
            "complete cannot") in text
    full = table + [row(p, 64, 20) for p in a["variants"]]
    part = table + [(row if p in a["variants"][1:3] else screened)(p, 64, 20) for p in a["variants"]]  # two measured
    text = frontier_answer.answer_sentence(part, [frontier_answer.answer(part, 0.2)])
    assert "and the wide-window variant of mimic-gs8 and the upsampling variant of mimic-gs4 still to complete" in text
    text = frontier_answer.answer_sentence(full, [frontier_answer.answer(full, 0.2)])
    assert "no MimicDiffusion setting beats DiffPure beyond the 95% intervals" in text
    assert text.endswith("So the library ships no frontier preset and keeps its default.\n")
    # a MimicDiffusion point missing: undecided while a perfect score could still win ...
    partial = table[1:]
    assert not frontier_answer.answer(partial, 0.2)["decided"]
    text = frontier_answer.answer_sentence(partial, [frontier_answer.answer(partial, 0.2)])
    assert "not yet answered (8 of the 9" in text and "preset" not in text
    # ... decided once a DiffPure point as clean as any reaches the lower end of 64/64's interval (94.3%)
    partial[-1] = row("diffpure-t0.4", 64, 58)  # 90.6% [81.0%, 95.6%]
    a = frontier_answer.answer(partial, 0.2)
    assert a["decided"] and a["settled_by"]["unmeasured"]["by"]["point"] == "diffpure-t0.4"
    text = frontier_answer.answer_sentence(partial, [a])  # only unmeasured points: the reason needs no subject
    assert "the 1 grid point and the wide-window and upsampling variants of mimic-gs4, mimic-gs8, mimic-gs16, " \
        "mimic-gs32 and mimic-gs64 still to complete cannot change that: even all 64 images robust gives the interval " \
        "[94.3%, 100.0%]" in text  # every scale's variants while a scale is unmeasured
    # the check must cover the DiffPure point the answer rests on
    assert "not complete" in frontier_answer.answer_sentence(partial, [a], checks)
    both = checks + [{"point": "diffpure-t0.4", "eps": 0.2, "flattened": True}]
    assert "not complete" in frontier_answer.answer_sentence(partial, [a], checks + [{**both[2], "eps": 0.3}])
    assert "did not lower" in frontier_answer.answer_sentence(partial, [a], both)
    text = frontier_answer.answer_sentence(partial, [a], both[:2] + [{**both[2], "flattened": False}])
    assert "still lowered beyond the interval (diffpure-t0.4 at 0.2: the budgets must rise)" in text
    partial[-1] = row("diffpure-t0.4", 63, 63)  # the most robust DiffPure point is less clean: no bound
    assert not frontier_answer.answer(partial, 0.2)["decided"]


def test_budget_check_lines_show_both_rules():
    from mimic_diffusers.metrics import accuracy

    acc = lambda k: accuracy([True] * k + [False] * (64 - k))  # noqa: E731
    check = {"point": "mimic-gs4", "eps": 0.2, "vote": {"budget": acc(49), "twice": acc(45), "both": acc(44)},
             "first": {"budget": acc(41), "twice": acc(30), "both": acc(28)}, "flattened": False}
    text = frontier_report.markdown([], [], [check])
    assert "- mimic-gs4, eps 0.2: vote 76.6% [" in text and "; first 64.1% [" in text and "vs 46.9% [" in text
    assert "(both runs 43.8% [" in text and "NOT flattened: raise the budgets" in text
    assert "below the first interval" in text and "below the vote interval" not in text  # 44/64 is inside vote's


def screened(point, clean, robust):
    """A hand-built screen row: the clean pass and the cascade's first attack on every image."""
    r = row(point, clean, robust)
    return {**r, "complete": False, "screen": {"attacks": ["feedback-cut-pgd-eot"], "vote": r.pop("vote")}}


def test_screens_bound_the_worst_case_and_can_settle_the_answer():
    grid = frontier_answer.grid_points()
    diffpure = [row(p, 64, 34) for p in grid if p.startswith("diffpure-")]  # 53.1% [41.1%, 64.8%]
    table = diffpure + [screened(p, 64, 30) for p in grid if p.startswith("mimic-")]  # at most 46.9% [35.2%, 59.0%]
    a = frontier_answer.answer(table, 0.2)  # the variants of the two most robust scales are still open
    assert not a["decided"] and a["variants"] == ["mimic-gs4-wide", "mimic-gs4-up", "mimic-gs8-wide", "mimic-gs8-up"]
    table[4:4] = [screened(p, 64, 30) for p in a["variants"]]
    a = frontier_answer.answer(table, 0.2)
    assert a["decided"] and not a["winners"]
    assert [c["point"] for c in a["settled_by"]["screened"]] == grid[:5] + [r["point"] for r in table[4:8]] and table[-1]["point"] == "mimic-gs64"
    text = frontier_answer.answer_sentence(table, [a])
    assert ("the 5 grid points and the wide-window and upsampling variants of mimic-gs4 and mimic-gs8 still to "
            "complete cannot change that") in text
    assert "screened with feedback-cut-pgd-eot only" in text and "at most mimic-gs4's 46.9% [" in text and "not above the upper end of diffpure-t0.1's 53.1% [" in text
    # a point screened with more of the cascade is named apart from the others; one grid point is one
    mixed = table[:4] + [{**table[4], "screen": {**table[4]["screen"], "attacks": ["feedback-cut-pgd-eot", "exact-pgd-eot"]}}]
    mixed += [{**r, "complete": True, "vote": r["screen"]["vote"], "screen": None} if r["point"] in grid[1:] else r
              for r in table[5:]]
    text = frontier_answer.answer_sentence(mixed, [frontier_answer.answer(mixed, 0.2)])
    assert ("the 1 grid point and the wide-window and upsampling variants of mimic-gs4 and mimic-gs8 still to complete" in text
            and f"{table[4]['point']} (screened with feedback-cut-pgd-eot and exact-pgd-eot only), " in text), text
    # one screened variant: the variants are named in one order per scale, the screen in the singular
    scores = {"mimic-gs4": 32, "mimic-gs8": 31}
    one = [row(p, 64, 58 if p == "diffpure-t0.4" else 34) if p.startswith("diffpure-") else row(p, 64, scores.get(p, 30))
           for p in grid] + [screened("mimic-gs4-up", 64, 30)]
    text = frontier_answer.answer_sentence(one, [frontier_answer.answer(one, 0.2)])
    assert ("the wide-window and upsampling variants of mimic-gs4 and mimic-gs8 still to complete cannot change that: "
            "mimic-gs4-up (screened with feedback-cut-pgd-eot only), a screen that bounds the worst case from above, "
            "reaches at most 46.9% [") in text, text
    assert "; for the wide-window variant of mimic-gs4 and the wide-window and upsampling variants of mimic-gs8, even" in text, text
    # the budget check must then cover the DiffPure point that stops the screens
    checks = [{"point": p, "eps": 0.2, "flattened": True} for p in frontier_answer.EXTREMES]
    assert "not complete" in frontier_answer.answer_sentence(table, [a], checks)
    assert frontier_answer.missing_checks(a, checks) == ["diffpure-t0.1 at 0.2"]
    assert frontier_answer.missing_checks(a, []) == ["mimic-gs4", "mimic-gs64", "diffpure-t0.1 at 0.2"]
    assert "- still to check: mimic-gs4, mimic-gs64, diffpure-t0.1 at 0.2" in frontier_report.markdown([], [a], [])
    assert "did not lower" in frontier_answer.answer_sentence(table, [a], checks + [{"point": "diffpure-t0.1", "eps": 0.2, "flattened": True}])
    # a screen whose bound still clears every DiffPure interval: the later attacks decide, so undecided
    table[-1] = screened("mimic-gs64", 64, 60)  # at most 93.8% [85.0%, 97.5%]
    assert not frontier_answer.answer(table, 0.2)["decided"]
    # a screen less clean than every DiffPure point has rivals in all of them; one cleaner has none (no claim)
    table[-1] = screened("mimic-gs64", 40, 30)
    assert frontier_answer.answer(table, 0.2)["decided"]
    # an unmeasured point next to the screens: settled only if a perfect score could not win either
    table.pop()
    a = frontier_answer.answer(table, 0.2)
    assert not a["decided"]  # 64/64 gives [94.3%, 100%], above 64.8%
    table[-1] = row("diffpure-t0.4", 64, 58)  # 90.6% [81.0%, 95.6%]: now a perfect score cannot win either
    text = frontier_answer.answer_sentence(table, [frontier_answer.answer(table, 0.2)])
    assert ("; for the 2 unmeasured and the wide-window and upsampling variants of mimic-gs16, mimic-gs32 and mimic-gs64, "
            "even all 64 images robust gives") in text
    assert "not yet answered (4 of the 9 grid points measured, 4 screened)" in frontier_answer.answer_sentence(table, [a])


def test_plot_labels_of_close_points_are_stacked_on_distinct_lines():
    """Points whose labels would overlap (close in both accuracies) get one line each; others stay beside."""
    points = [(0.10, 1.0), (0.50, 1.0), (0.12, 1.0), (0.15, 1.0), (0.12, 0.9)]
    offsets = frontier_plot.label_offsets(points)
    assert offsets[1] == offsets[4] == (4, 4)  # alone: far in robust accuracy, or in clean accuracy
    stacked = [offsets[i] for i in (0, 2, 3)]  # a chain within 0.06: one cluster, left to right
    assert [dy for _, dy in stacked] == [-frontier_plot.LINE_PT * k for k in (1, 2, 3)]
    assert frontier_plot.knob("mimic-gs4-up") == "gs4-up" and frontier_plot.knob("diffpure-t0.3") == "t0.3"


def test_report_marks_variants_an_eps_does_not_need():
    scales = [row(f"mimic-gs{s}", 64, robust) for s, robust in ((4, 50), (8, 40), (16, 30), (32, 45), (64, 20))]
    unmeasured = [{"point": p, "method": "mimic", "eps": 0.2, "complete": False, "n": 0, "options": {}}
                  for p in ("mimic-gs4-wide", "mimic-gs8-wide")]
    for r in scales:
        r.update(first=r["vote"], options={}, attacks={}, attacked=[0, 0], attack_minutes=0)
    text = frontier_report.markdown(scales + unmeasured, [], [])
    # gs4 and gs32 are the two most robust: gs4-wide is still to run, gs8-wide is not needed
    assert "| mimic-gs4-wide |  | 0.2 | 0 | incomplete |" in text
    assert "| mimic-gs8-wide |  | 0.2 | 0 | not needed" in text
