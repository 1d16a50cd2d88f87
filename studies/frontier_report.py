"""The frontier study's analysis, from the stores of `studies/frontier.py`: the table, the paired
comparisons and the budget check (rendered by `python -m studies.pages`, never typed by hand).

A point enters the table once its store holds every image and every attack of its config at that eps; a
screen (every image through the cascade's first attacks only, `studies.frontier --attacks`) is listed with
its robust accuracy as an upper bound. Accuracy under the deployed vote (the majority of K purifications)
and under the first purification are both shown; the worst case is per sample over all attacks (a
cascade, so per-attack figures are cumulative).

Claims rest on paired tests on the same images (`mimic_diffusers.evaluation.statistics`): the most robust
MimicDiffusion point against the most robust DiffPure point at each eps, and each budget against twice its
iterations (`mimic_diffusers.evaluation.compare.budget_flattened`); until a budget has flattened, the
study's numbers are upper bounds. The shipped default's standing at each eps is the test it must pass to ship:
its upper 95% end reaches the most robust MimicDiffusion point's estimate and every screen's bound.
"""

import dataclasses
import glob
import os

from mimic_diffusers.evaluation import EvalConfig, attack_label, merge_records, read_records, read_results
from mimic_diffusers.evaluation.compare import RULE_NAMES, budget_flattened
from mimic_diffusers.evaluation.statistics import compare_paired
from mimic_diffusers.evaluation.summary import worst_case_samples

from .frontier import POINTS, point_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY, BUDGET_CHECK = "configs/mnist-frontier.yaml", "configs/mnist-frontier-2x.yaml"
FINALISTS = "configs/mnist-frontier-eps0.1.yaml"  # the study's protocol at eps 0.1, for its finalists
# the confirmation of the shipped default against the most robust DiffPure, one config per eps: more images, at
# twice the study's iterations, grown point after point (`studies.frontier --step`)
CONFIRM = ("configs/mnist-confirm-eps0.2.yaml", "configs/mnist-confirm-eps0.3.yaml")
# every budget check, (lower budgets, higher budgets) on the images both plan: the study's against twice them (its
# own check, and each confirmation on the study's images), and the confirmation's against twice its own
CONFIRM_4X = ("configs/mnist-confirm-eps0.2-4x.yaml", "configs/mnist-confirm-eps0.3-4x.yaml")
BUDGET_CHECKS = ((STUDY, BUDGET_CHECK), *((STUDY, c) for c in CONFIRM), *zip(CONFIRM, CONFIRM_4X))
RULES = ("vote", "first")  # the decision rules the study reports: the majority of K, the first purification


def point_configs(config_path: str, folder: str = None) -> dict:
    """{point: config} of every point store under `folder` (default: the config's output_dir), in the
    registry's order."""
    base = EvalConfig.from_file(os.path.join(ROOT, config_path))
    folder = os.path.join(ROOT, folder or base.output_dir)
    return {point: point_config(base, point, folder) for point in stored_points(base, folder)}


def point_summaries(config_path: str, folder: str = None) -> dict:
    """{point: (config, summary, attacked)} of every point store under `folder` (`point_configs`)."""
    return {p: (c, read_results(c), attacked_samples(c)) for p, c in point_configs(config_path, folder).items()}


def attacked_samples(config: EvalConfig) -> dict:
    """threat -> [attacks run on a sample, attacks x samples]: what the cascade saved."""
    out = {}
    for (batch, threat), record in merge_records(read_records(config.output_dir)).items():
        if threat != "clean" and batch < config.num_batches:
            counts = out.setdefault(threat, [0, 0])
            for result in record["attacks"].values():
                counts[0] += sum(result.get("targets", [True] * len(record["ids"])))
                counts[1] += len(record["ids"])
    return out


def legacy_records(config: EvalConfig) -> list:
    """[records made by the earlier seed scheme (no `seed_scheme`), all records] of a point's store."""
    records = read_records(config.output_dir)
    return [sum("seed_scheme" not in r for r in records), len(records)]


def rows(summaries: dict) -> list:
    """One row per (point, eps): complete, a screen (an upper bound), or not run."""
    out = []
    for point, (config, results, attacked) in summaries.items():
        labels, p = [attack_label(a) for a in config.attacks], POINTS[point]
        for threat in config.threats:
            t, complete = results.get(threat["norm"], threat["eps"]), results.complete(threat["norm"], threat["eps"])
            n = t.worst_case.n if t else 0
            row = dict(point=point, method=p.method, knob=p.knob, variant=p.variant, options=p.options)
            row.update(eps=threat["eps"], complete=complete, n=n, votes=config.votes)
            # a screen: every image through the cascade's first attacks only
            screen = t and not complete and config.cascade and n == config.num_samples == results.clean_vote.n
            screen = screen and 0 < len(t.attacks) and list(t.attacks) == labels[: len(t.attacks)]
            if complete or screen:
                measured = {
                    r: {"clean": results.clean_under(r).to_dict(), "robust": t.worst_case_under(r).to_dict()}
                    for r in RULES
                }
                row.update(measured) if complete else row.update(screen={"attacks": list(t.attacks), **measured})
                row["attacks"] = {
                    k: {"first": a.first.accuracy, "vote": a.vote and a.vote.accuracy} for k, a in t.attacks.items()
                }
                row["attack_minutes"] = sum(a.seconds for a in t.attacks.values()) / 60
                row["attacked"] = attacked[t.key]
            out.append(row)
    return out


def per_sample(summaries: dict, point: str, eps: float, rule: str) -> dict:
    """{sample id: robust after every attack} of one point at one eps under one rule."""
    config = summaries[point][0]
    threat = next(t for t in config.threats if t["eps"] == eps)
    return worst_case_samples(config, threat, RULE_NAMES[rule])


def comparisons(study: dict, table: list, rule: str = "vote") -> list:
    """At each eps, every complete MimicDiffusion point against the most robust complete DiffPure point, paired on
    the same images; `best` marks the most robust MimicDiffusion point (both chosen by their estimates)."""
    out = []
    for eps in sorted({r["eps"] for r in table}):
        done = [r for r in table if r["complete"] and r["eps"] == eps]
        diffpure = [r for r in done if r["method"] == "diffpure"]
        mimic = [r for r in done if r["method"] == "mimic"]
        if not diffpure or not mimic:
            continue
        rival = max(diffpure, key=lambda r: r[rule]["robust"]["accuracy"])
        best = max(mimic, key=lambda r: r[rule]["robust"]["accuracy"])
        b = per_sample(study, rival["point"], eps, rule)
        for m in mimic:
            c = compare_paired(per_sample(study, m["point"], eps, rule), b)
            ra, rb = m[rule], rival[rule]
            pair = dict(eps=eps, rule=rule, a=m["point"], b=rival["point"], best=m is best)
            accuracies = dict(a_accuracy=ra["robust"], b_accuracy=rb["robust"], a_clean=ra["clean"]["accuracy"])
            out.append({**pair, **accuracies, "b_clean": rb["clean"]["accuracy"], **c.to_dict()})
    return out


def standing(table: list, shipped: str, names, outcomes=None, rule: str = "vote") -> list:
    """At each eps, whether the shipped point is among the most robust MimicDiffusion points (`names`): complete
    there, with its upper 95% end at or above the best complete point's estimate and every screen's upper bound
    (a screen above it leaves the answer open until the rest of its cascade runs). `outcomes(point, eps)`, the
    per-sample results under `rule`, adds the paired comparison of the shipped point with the best other one."""

    def robust(r):
        return r[rule]["robust"]["accuracy"]

    out = []
    for eps in sorted({r["eps"] for r in table}):
        mimic = [r for r in table if r["eps"] == eps and r["method"] == "mimic"]
        row = dict(eps=eps, shipped=shipped)
        row["not_run"] = [p for p in names if p not in {r["point"] for r in mimic if r["complete"] or r.get("screen")}]
        own = next((r for r in mimic if r["point"] == shipped and r["complete"]), None)
        if own is None:
            out.append(dict(row, answer="the default is not complete at this eps"))
            continue
        done = [r for r in mimic if r["complete"]]
        best, upper = max(done, key=robust), own[rule]["robust"]["ci95"][1]
        above = [(r["point"], r["screen"][rule]["robust"]) for r in mimic if r.get("screen") and not r["complete"]]
        above = [(p, m) for p, m in above if m["accuracy"] > upper]
        answer = "no" if robust(best) > upper else "not settled: a screen is above it" if above else "yes"
        row.update(robust=own[rule]["robust"], best=best["point"], best_robust=best[rule]["robust"])
        others = [r for r in done if r is not own]
        if outcomes is not None and others:
            rival = max(others, key=robust)["point"]
            row.update(rival=rival, paired=compare_paired(outcomes(shipped, eps), outcomes(rival, eps)).to_dict())
        out.append(dict(row, screens_above=above, answer=answer))
    return out


def budget_checks(lower_path: str, higher_path: str) -> list:
    """Each point stored under both configs, at each eps of both, on the images both plan (the first N of the
    smaller config) once both have finished them: the lower budgets (A) against the higher (B), paired under both
    rules; flattened only where no rule finds a difference and no rule drops by more than FLAT_DROP."""
    low, high = (EvalConfig.from_file(os.path.join(ROOT, p)) for p in (lower_path, higher_path))
    n, out, in_low = min(low.num_samples, high.num_samples), [], stored_points(low)
    for point in (p for p in stored_points(high) if p in in_low):
        at_n = [{point: (c, read_results(c), {})} for c in (config_at(base, n, point) for base in (low, high))]
        for threat in (t for t in high.threats if t in low.threats):
            if all(s[point][1].complete(threat["norm"], threat["eps"]) for s in at_n):
                runs = {rule: [per_sample(s, point, threat["eps"], rule) for s in at_n] for rule in RULES}
                checked = dict(point=point, eps=threat["eps"], n=n, a_config=lower_path, config=higher_path)
                out.append({**checked, **budget_verdict(runs), "stages": stages(at_n, point, threat)})
    return out


def stages(at_n: list, point: str, threat: dict) -> list:
    """Where a budget check's difference arises: after each attack of the cascade, the cumulative robust counts
    under the deployed vote at the lower budgets (A) and at the higher (B), compared paired on the same images."""
    (a_config, *_), (b_config, *_) = (s[point] for s in at_n)
    names = [attack_label(a) for a in a_config.attacks]
    if names != [attack_label(b) for b in b_config.attacks]:
        return []  # other cascades: no attack-by-attack comparison
    out = []
    for k, name in enumerate(names, 1):
        a, b = (worst_case_samples(c, threat, RULE_NAMES["vote"], through=k) for c in (a_config, b_config))
        out.append(dict(attack=name, **compare_paired(a, b).to_dict()))
    return out


def budget_verdict(runs: dict) -> dict:
    """{rule: [per-sample outcomes at the study's budgets, at twice them]} -> each rule's paired comparison and
    whether the budget has flattened (`mimic_diffusers.evaluation.budget_flattened`)."""
    compared = {rule: compare_paired(once, twice) for rule, (once, twice) in runs.items()}
    return {**{rule: c.to_dict() for rule, c in compared.items()}, "flattened": budget_flattened(compared.values())}


def stored_points(base: EvalConfig, folder: str = None) -> list:
    """The points with a store under `folder` (default: the config's output_dir), in the registry's order."""
    folder = folder or os.path.join(ROOT, base.output_dir)
    return [p for p in POINTS if glob.glob(os.path.join(folder, p, "results.rank*.jsonl"))]


def config_at(base: EvalConfig, n: int, point: str) -> EvalConfig:
    """A point's config on the first `n` images, its store under the config's output_dir."""
    return point_config(dataclasses.replace(base, num_samples=n), point, os.path.join(ROOT, base.output_dir))


def paired_prefix(base: EvalConfig, points=None) -> tuple:
    """(N, {point: config at N}): the most images (a multiple of the batch size; 0 when none) on which every one
    of `points` (default: every point store under the config's output_dir) is complete at its threat."""
    points = stored_points(base) if points is None else points
    threat = base.threats[0]
    for n in range(base.num_samples, 0, -base.batch_size):
        configs = {p: config_at(base, n, p) for p in points}
        if points and all(read_results(c).complete(threat["norm"], threat["eps"]) for c in configs.values()):
            return n, configs
    return 0, {}


def confirmation(config_path: str, study: dict) -> dict:
    """A confirmation config's stores, paired on the images all its points have finished: each point's robust
    accuracy and table row, each MimicDiffusion point against each DiffPure point (under both rules, and under the
    vote on the images after the study's alone)."""
    base = EvalConfig.from_file(os.path.join(ROOT, config_path))
    eps, (n, configs) = base.threats[0]["eps"], paired_prefix(base)
    mimic = [p for p in configs if POINTS[p].method == "mimic"]
    diffpure = [p for p in configs if POINTS[p].method == "diffpure"]
    if not mimic or not diffpure:  # one side alone has run: nothing is paired yet
        n, configs, mimic, diffpure = 0, {}, [], []
    at_n = {p: (c, read_results(c), attacked_samples(c)) for p, c in configs.items()}
    accuracy = {p: {r: per_sample(at_n, p, eps, r) for r in RULES} for p in configs}
    # the images after the study's: untouched by the choice of the default and of DiffPure's t* (made on the study's)
    chosen_on = max((config.num_samples for config, *_ in study.values()), default=0)
    unseen = {p: {i: v for i, v in accuracy[p]["vote"].items() if i >= chosen_on} for p in configs}
    pairs = [
        {
            "a": a,
            "b": b,
            **{r: compare_paired(accuracy[a][r], accuracy[b][r]).to_dict() for r in RULES},
            "unseen": compare_paired(unseen[a], unseen[b]).to_dict() if unseen[a] else None,
        }
        for a in mimic
        for b in diffpure
    ]
    table = rows(at_n)
    robust = {row["point"]: {r: row[r]["robust"] for r in RULES} for row in table if row["complete"]}
    return dict(
        config=config_path,
        eps=eps,
        n=n,
        planned=base.num_samples,
        chosen_on=chosen_on,
        table=table,
        protocol=base,
        robust=robust,
        pairs=pairs,
    )


def analyze() -> dict:
    """The study's table (with its finalists at eps 0.1), paired comparisons, budget checks, confirmations,
    protocol and the count of records made by the earlier seed scheme, from the committed stores."""
    study, finalists = (point_summaries(c) for c in (STUDY, FINALISTS))
    table, extra = rows(study), rows(finalists)
    stores = (*(s[0] for s in (*study.values(), *finalists.values())), *point_configs(BUDGET_CHECK).values())
    legacy = [sum(x) for x in zip(*(legacy_records(c) for c in stores))] or [0, 0]
    confirm = [confirmation(c, study) for c in CONFIRM]
    return {
        "table": extra + table,
        "comparisons": comparisons(finalists, extra) + comparisons(study, table),
        "budget_check": [b for pair in BUDGET_CHECKS for b in budget_checks(*pair)],
        "confirmation": confirm,
        "protocol": EvalConfig.from_file(os.path.join(ROOT, STUDY)),
        "legacy_records": legacy,
        "study": {**finalists, **study},
        "by_eps": {t["eps"]: s for s in (study, finalists) for c, *_ in s.values() for t in c.threats},
    }
