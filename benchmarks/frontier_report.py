"""The frontier's table, paired comparisons, budget check and plot, computed from the stores of
benchmarks/frontier.py, never typed by hand; byte-for-byte reproducible from the committed stores.

    python benchmarks/frontier_report.py            # benchmarks/results/frontier/frontier.{json,md}, docs/img/frontier.png
    python benchmarks/frontier_report.py --check    # writes nothing; exit 1 when a written file is stale

A point enters the table once its store holds every image and every attack of its config at that eps; a
screen (every image through the cascade's first attacks only, `frontier.py --attacks`) is listed with its
robust accuracy as an upper bound. Accuracy under the deployed vote (the majority of K purifications) and
under the first purification are both shown; the worst case is per sample over all attacks (a cascade, so
per-attack figures are cumulative).

Claims rest on paired tests on the same images (`mimic_diffusers.evaluation.statistics`): the most robust
MimicDiffusion point against the most robust DiffPure point at each eps, and each budget against twice its
iterations. A budget counts as flattened only where the paired test finds no difference AND the point
estimate drops by at most `FLAT_DROP`; until then the study's numbers are upper bounds.
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frontier import POINTS, point_config  # noqa: E402
from frontier_plot import plot  # noqa: E402

from mimic_diffusers.evaluation import (
    EvalConfig,
    merge_records,
    read_records,
    report_store,
    threat_key,  # noqa: E402
    worst_case_samples,
)
from mimic_diffusers.evaluation.statistics import compare_paired  # noqa: E402
from mimic_diffusers.reports import atomic_write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY, BUDGET_CHECK = "benchmarks/results/frontier", "benchmarks/results/frontier-2x"
CONFIGS = {STUDY: "configs/mnist-frontier.yaml", BUDGET_CHECK: "configs/mnist-frontier-2x.yaml"}
RULES = {"vote": ("clean_vote", "worst_case_vote", "vote_correct"), "first": ("clean", "worst_case", "correct")}
FLAT_DROP = 0.02  # the largest drop in robust accuracy at twice the budget that still counts as flattened


def point_summaries(folder: str, config_path: str) -> dict:
    """{point: (config, summary, attacked)} of every point store under `folder`, in the registry's order."""
    base = EvalConfig.from_file(os.path.join(ROOT, config_path))
    out = {}
    for point in POINTS:
        if glob.glob(os.path.join(ROOT, folder, point, "results.rank*.jsonl")):
            config = point_config(base, point, os.path.join(ROOT, folder))
            out[point] = (config, report_store(config, write=False), attacked_samples(config))
    return out


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
    for point, (config, s, attacked) in summaries.items():
        labels = [a.get("label", a["name"]) for a in config.attacks]
        p = POINTS[point]
        for threat in config.threats:
            t = s["threats"].get(threat_key(threat))
            complete = (
                t is not None and t["worst_case"]["n"] == config.num_samples and set(t["attacks"]) == set(labels)
            )
            row = {
                "point": point,
                "method": p.method,
                "knob": p.knob,
                "variant": p.variant,
                "options": p.options,
                "eps": threat["eps"],
                "complete": complete,
                "n": t["worst_case"]["n"] if t else 0,
                "votes": config.votes,
            }
            screen = (
                not complete
                and t is not None
                and config.cascade
                and t["worst_case"]["n"] == config.num_samples
                and s["clean_vote"]["n"] == config.num_samples
                and 0 < len(t["attacks"])
                and list(t["attacks"]) == labels[: len(t["attacks"])]
            )
            if complete or screen:
                measured = {rule: {"clean": s[clean], "robust": t[worst]} for rule, (clean, worst, _) in RULES.items()}
                row.update(measured) if complete else row.update(screen={"attacks": list(t["attacks"]), **measured})
                row["attacks"] = {
                    k: {"first": a["accuracy"], "vote": a["vote"]["accuracy"] if a.get("vote") else None}
                    for k, a in t["attacks"].items()
                }
                row["attack_minutes"] = sum(a["seconds"] for a in t["attacks"].values()) / 60
                row["attacked"] = attacked[threat_key(threat)]
            out.append(row)
    return out


def per_sample(summaries: dict, point: str, eps: float, rule: str) -> dict:
    """{sample id: robust after every attack} of one point at one eps under one rule."""
    config = summaries[point][0]
    threat = next(t for t in config.threats if t["eps"] == eps)
    return worst_case_samples(config, threat, RULES[rule][2])


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
            out.append(
                {
                    "eps": eps,
                    "rule": rule,
                    "a": m["point"],
                    "b": rival["point"],
                    "best": m is best,
                    "a_accuracy": m[rule]["robust"],
                    "b_accuracy": rival[rule]["robust"],
                    "a_clean": m[rule]["clean"]["accuracy"],
                    "b_clean": rival[rule]["clean"]["accuracy"],
                    **c.to_dict(),
                }
            )
    return out


def budget_check(study: dict, doubled: dict) -> list:
    """Each point and eps run at the study's budgets and at twice the iterations, compared paired under both
    rules; flattened only where no rule finds a difference and no rule drops by more than FLAT_DROP."""
    out = []
    for point in doubled:
        if point not in study:
            continue
        for r1 in rows({point: study[point]}):
            r2 = [r for r in rows({point: doubled[point]}) if r["eps"] == r1["eps"]]
            if not (r1["complete"] and r2 and r2[0]["complete"]):
                continue
            runs = {rule: [per_sample(s, point, r1["eps"], rule) for s in (study, doubled)] for rule in RULES}
            out.append({"point": point, "eps": r1["eps"], **budget_verdict(runs)})
    return out


def budget_verdict(runs: dict) -> dict:
    """{rule: [per-sample outcomes at the study's budgets, at twice them]} -> each rule's paired comparison and
    whether the budget has flattened: no difference found under any rule, and no drop above FLAT_DROP."""
    out = {rule: compare_paired(once, twice).to_dict() for rule, (once, twice) in runs.items()}
    out["flattened"] = all(
        c["verdict"] == "no difference found" and c["difference"] <= FLAT_DROP for c in out.values()
    )
    return out


def budgets(config_path: str) -> str:
    """The study's protocol as one line: images, steps, votes and every attack with its budget."""
    c = EvalConfig.from_file(os.path.join(ROOT, config_path))
    attacks = "; ".join(
        f"`{a.get('label', a['name'])}` ({', '.join(f'{k}={v}' for k, v in a.get('params', {}).items())})"
        for a in c.attacks
    )
    return (
        f"Protocol (`{config_path}`): N = {c.num_samples} test images, {c.num_inference_steps} inference steps, "
        f"K = {c.votes} purifications, attacks in {'cascade ' if c.cascade else ''}order: {attacks}."
    )


def pct(a: dict) -> str:
    return f"{a['accuracy']:.1%} [{a['ci95'][0]:.1%}, {a['ci95'][1]:.1%}]"


def points(x: float) -> str:
    return f"{100 * x:+.1f}"


def paired_cells(c: dict) -> str:
    """difference [95% CI] | discordant | p | answer | detectable: the cells every paired table shares."""
    return (
        f"{points(c['difference'])} [{points(c['ci95'][0])}, {points(c['ci95'][1])}] | {c['a_only']} / {c['b_only']} | "
        f"{c['p_value']:.2g} | {c['verdict']} | {100 * c['detectable']:.0f}"
    )


PAIRED_HEAD = (
    "paired difference, points [95% CI] | discordant (A only / B only) | exact McNemar p | answer | "
    "smallest detectable difference, points"
)


def answer_table(comps: list, checks: list) -> str:
    """The README's block: at each eps the most robust point of each method, paired (vote of K)."""
    flat = {(c["point"], c["eps"]): "yes" if c["flattened"] else "no" for c in checks}
    lines = [
        f"| eps | A: most robust MimicDiffusion (vote of K, N) | B: most robust DiffPure | {PAIRED_HEAD} | "
        "budgets flattened (A, B) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in (c for c in comps if c["best"]):
        lines.append(
            f"| {c['eps']:g} | {c['a']} {pct(c['a_accuracy'])}, N = {c['n']} | {c['b']} {pct(c['b_accuracy'])} | "
            f"{paired_cells(c)} | {flat.get((c['a'], c['eps']), 'not checked')}, "
            f"{flat.get((c['b'], c['eps']), 'not checked')} |"
        )
    return "\n".join(lines) + "\n"


def markdown(table: list, comps: list, checks: list, protocol: str = "", legacy: tuple = (0, 0)) -> str:
    lines = ([protocol, ""] if protocol else []) + [
        "| point | options | eps | N | clean (vote of K) | worst case (vote of K) | clean (first) | "
        "worst case (first) | robust after each attack (cumulative), first / vote | attacked / all | attack minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        if not r["complete"] and not r.get("screen"):
            lines.append(
                f"| {r['point']} | {opts} | {r['eps']:g} | {r['n']} | {'not run' if r['n'] == 0 else 'incomplete'} | | | | | | |"
            )
            continue
        m, bound = (
            (r, "**{}**")
            if r["complete"]
            else (r["screen"], "at most {} (screen: " + ", ".join(r["screen"]["attacks"]) + " only)")
        )
        per = "; ".join(f"{k} {a['first']:.0%} / {a['vote']:.0%}" for k, a in r["attacks"].items())
        lines.append(
            f"| {r['point']} | {opts} | {r['eps']:g} | {r['n']} | {pct(m['vote']['clean'])} | "
            f"{bound.format(pct(m['vote']['robust']))} | {pct(m['first']['clean'])} | "
            f"{bound.format(pct(m['first']['robust'])).replace('**', '')} | "
            f"{per} | {r['attacked'][0]} / {r['attacked'][1]} | {r['attack_minutes']:.0f} |"
        )
    lines += [
        "",
        "Paired comparison, vote of K: each MimicDiffusion point (A) against the most robust DiffPure point "
        "(B) on the same images (* marks the most robust MimicDiffusion point):",
        "",
        f"| eps | A | B | A robust | B robust | {PAIRED_HEAD} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['eps']:g} | {c['a']}{' *' if c['best'] else ''} | {c['b']} | {pct(c['a_accuracy'])} | "
        f"{pct(c['b_accuracy'])} | {paired_cells(c)} |"
        for c in comps
    ]
    lines += [
        "",
        f"Budget check, `{CONFIGS[BUDGET_CHECK]}` (A: the study's budgets, B: twice the iterations; "
        f"flattened: no difference found under both rules and a drop of at most {100 * FLAT_DROP:.0f} points):",
        "",
        f"| point | eps | rule | A robust | B robust | {PAIRED_HEAD} | flattened |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['point']} | {c['eps']:g} | {rule} | {c[rule]['a_robust']}/{c[rule]['n']} | {c[rule]['b_robust']}/{c[rule]['n']} | "
        f"{paired_cells(c[rule])} | {'yes' if c['flattened'] else 'no'} |"
        for c in checks
        for rule in RULES
    ]
    lines += [
        "",
        f"Records made by the earlier seed scheme (restarts and batch neighbours shared noise; vote ties "
        f"went to the smaller label): {legacy[0]} of {legacy[1]}.",
    ]
    return "\n".join(lines) + "\n"


def build(study_dir: str = STUDY, doubled_dir: str = BUDGET_CHECK) -> dict:
    """{path: content} of every file the report writes (paths relative to the repository root)."""
    study, doubled = point_summaries(study_dir, CONFIGS[STUDY]), point_summaries(doubled_dir, CONFIGS[BUDGET_CHECK])
    table = rows(study)
    comps, checks = comparisons(study, table), budget_check(study, doubled)
    legacy = [sum(x) for x in zip(*(legacy_records(s[0]) for s in (*study.values(), *doubled.values())))] or [0, 0]
    data = {
        "table": table,
        "comparisons": comps,
        "budget_check": checks,
        "protocol": budgets(CONFIGS[STUDY]),
        "legacy_records": legacy,
        "answer": answer_table(comps, checks),
    }
    return {
        f"{study_dir}/frontier.json": json.dumps(data, indent=1) + "\n",
        f"{study_dir}/frontier.md": markdown(table, comps, checks, data["protocol"], legacy),
        # the docs show the plot, so it lives in the docs folder
        ("docs/img/frontier.png" if study_dir == STUDY else f"{study_dir}/frontier.png"): plot(table),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    for path, content in build().items():
        full = os.path.join(ROOT, path)
        mode = "rb" if isinstance(content, bytes) else "r"
        current = open(full, mode).read() if os.path.isfile(full) else None
        if current != content:
            stale.append(path)
            if not args.check:
                atomic_write(full, content, "wb" if isinstance(content, bytes) else "w")
    if args.check and stale:
        print("stale: " + ", ".join(stale) + " (run python benchmarks/frontier_report.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
