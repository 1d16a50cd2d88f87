"""The frontier's table, plot, budget check and answer, computed from the stores of benchmarks/frontier.py,
never typed by hand; byte-for-byte reproducible from the committed stores.

    python benchmarks/frontier_report.py            # benchmarks/results/frontier/frontier.{json,md}, docs/img/frontier.png
    python benchmarks/frontier_report.py --check    # writes nothing; exit 1 when a written file is stale

Each point's store (`results.rank*.jsonl`, `runs.jsonl`) is committed; its own results.md and summary.json
are written by the run and not committed (this report is the study's). A point enters the table and the
plot once its store holds every image and every attack of its config at that eps; a screen (every image
through the cascade's first attacks only, `frontier.py --attacks`) is listed with its robust accuracy as
an upper bound, and the others as incomplete. Accuracy under the deployed vote (the majority of K
purifications, scored against the clean majority) and under the first purification are both shown; the
worst case is per sample over all attacks. The study runs as a cascade (each attack only on the samples
the attacks before it left robust), so its per-attack figures are cumulative. The answer is
`frontier_answer.py`'s.
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frontier import POINTS, point_config  # noqa: E402
from frontier_answer import (answer, answer_sentence, missing_checks, needed_points, pct, still_to_run,  # noqa: E402
                             verdict)
from frontier_plot import plot  # noqa: E402

from mimic_diffusers.evaluation import (EvalConfig, merge_records, read_records, report_store, threat_key,  # noqa: E402
                                       worst_case_samples)
from mimic_diffusers.metrics import accuracy  # noqa: E402
from mimic_diffusers.reports import atomic_write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY, BUDGET_CHECK = "benchmarks/results/frontier", "benchmarks/results/frontier-2x"
CONFIGS = {STUDY: "configs/mnist-frontier.yaml", BUDGET_CHECK: "configs/mnist-frontier-2x.yaml"}
RULES = {"vote": ("clean_vote", "worst_case_vote"), "first": ("clean", "worst_case")}
RECORD_RULES = {"vote": "vote_correct", "first": "correct"}


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
    """threat -> [attacks run on a sample, attacks x samples]: what the cascade saved (a store written
    without it ran every attack on every sample)."""
    out = {}
    for (batch, threat), record in merge_records(read_records(config.output_dir)).items():
        if threat != "clean" and batch < config.num_batches:
            counts = out.setdefault(threat, [0, 0])
            for result in record["attacks"].values():
                counts[0] += sum(result.get("targets", [True] * len(record["ids"])))
                counts[1] += len(record["ids"])
    return out


def rows(summaries: dict) -> list:
    """One row per (point, eps) that the store holds completely; incomplete ones flagged."""
    out = []
    for point, (config, s, attacked) in summaries.items():
        for threat in config.threats:
            t = s["threats"].get(threat_key(threat))
            complete = (t is not None and t["worst_case"]["n"] == config.num_samples
                        and set(t["attacks"]) == {a.get("label", a["name"]) for a in config.attacks})
            row = {"point": point, "method": point.split("-")[0], "options": POINTS[point], "eps": threat["eps"],
                   "complete": complete, "n": t["worst_case"]["n"] if t else 0, "votes": config.votes}
            labels = [a.get("label", a["name"]) for a in config.attacks]
            # a screen: every image through the cascade's first attacks only (frontier.py --attacks), whose
            # robust accuracy bounds the worst case from above
            screen = (not complete and t is not None and config.cascade and t["worst_case"]["n"] == config.num_samples
                      and s["clean_vote"]["n"] == config.num_samples and 0 < len(t["attacks"])
                      and list(t["attacks"]) == labels[: len(t["attacks"])])
            if complete or screen:
                measured = {rule: {"clean": s[clean], "robust": t[worst]} for rule, (clean, worst) in RULES.items()}
                row.update(measured) if complete else row.update(screen={"attacks": list(t["attacks"]), **measured})
                row["attacks"] = {k: {"first": a["accuracy"], "vote": a["vote"]["accuracy"] if a.get("vote") else None}
                                  for k, a in t["attacks"].items()}
                row["attack_minutes"] = sum(a["seconds"] for a in t["attacks"].values()) / 60
                row["attacked"] = attacked[threat_key(threat)]
            out.append(row)
    return out


def budget_check(study: dict, doubled: dict) -> list:
    """Worst case at the study's budgets and at twice the iterations, per point and eps, under both rules."""
    out = []
    for point in doubled:
        if point not in study:
            continue
        for r1 in rows({point: study[point]}):
            r2 = [r for r in rows({point: doubled[point]}) if r["eps"] == r1["eps"]]
            if r1["complete"] and r2 and r2[0]["complete"]:
                check = {"point": point, "eps": r1["eps"]}
                threat = next(t for t in study[point][0].threats if t["eps"] == r1["eps"])
                for rule in RULES:  # flattened under both rules: twice the budget stays within the interval
                    # and the two runs as restarts: a sample counts as robust only if it survived both
                    once, twice = (worst_case_samples(s[point][0], threat, RECORD_RULES[rule]) for s in (study, doubled))
                    check[rule] = {"budget": r1[rule]["robust"], "twice": r2[0][rule]["robust"],
                                   "both": accuracy([once[i] and twice[i] for i in once])}
                check["flattened"] = all(c["twice"]["accuracy"] >= c["budget"]["ci95"][0]
                                         for c in (check[rule] for rule in RULES))
                out.append(check)
    return out


def budgets(config_path: str) -> str:
    """The study's protocol as one line: images, steps, votes and every attack with its budget."""
    c = EvalConfig.from_file(os.path.join(ROOT, config_path))
    attacks = "; ".join(f"`{a.get('label', a['name'])}` ({', '.join(f'{k}={v}' for k, v in a.get('params', {}).items())})"
                        for a in c.attacks)
    return (f"Protocol (`{config_path}`): N = {c.num_samples} test images, T = {c.num_inference_steps} steps, "
            f"K = {c.votes} purifications, attacks in {'cascade ' if c.cascade else ''}order: {attacks}.")


def markdown(table: list, answers: list, checks: list, protocol: str = "") -> str:
    lines = ([protocol, ""] if protocol else []) + ["| point | options | eps | N | clean (vote of K) | worst case (vote of K) | clean (first) | "
             "worst case (first) | robust after each attack (cumulative), first / vote | attacked / all | attack minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    needed = {eps: needed_points(table, eps) for eps in {r["eps"] for r in table}}
    for r in table:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        if not r["complete"] and not r.get("screen"):
            # a store holds both eps, but the variants run only for each eps's two most robust scales
            unneeded = r["n"] == 0 and r["point"] not in needed[r["eps"]]
            state = "not needed (not a variant of the two most robust scales at this eps)" if unneeded else "incomplete"
            lines.append(f"| {r['point']} | {opts} | {r['eps']:g} | {r['n']} | {state} | | | | | | |")
            continue
        m, bound = (r, "**{}**") if r["complete"] else (r["screen"], "at most {} (screen: " + ", ".join(r["screen"]["attacks"]) + " only)")
        per = "; ".join(f"{k} {a['first']:.0%} / {a['vote']:.0%}" for k, a in r["attacks"].items())
        lines.append(f"| {r['point']} | {opts} | {r['eps']:g} | {r['n']} | {pct(m['vote']['clean'])} | "
                     f"{bound.format(pct(m['vote']['robust']))} | {pct(m['first']['clean'])} | "
                     f"{bound.format(pct(m['first']['robust'])).replace('**', '')} | "
                     f"{per} | {r['attacked'][0]} / {r['attacked'][1]} | {r['attack_minutes']:.0f} |")
    lines += ["", "Budget check (worst case under the vote and the first purification, at the study's budgets vs "
              f"twice the iterations, `{CONFIGS[BUDGET_CHECK]}`; and per sample over both runs, as two restarts):", ""]
    lines += [f"- {c['point']}, eps {c['eps']:g}: " + "; ".join(f"{rule} {pct(c[rule]['budget'])} vs {pct(c[rule]['twice'])} "
                                                           f"(both runs {pct(c[rule]['both'])})" for rule in RULES) + ": "
              + ("flattened (within the interval)" if c["flattened"] else "NOT flattened: raise the budgets")
              + "".join(f"; both runs together fall below the {rule} interval, so restarts still find breaks"
                        for rule in RULES if c[rule]["both"]["accuracy"] < c[rule]["budget"]["ci95"][0])
              for c in checks] or ["- no point has both budgets stored yet"]
    missing = list(dict.fromkeys(m for a in answers for m in missing_checks(a, checks)))
    lines += [f"- still to check: {', '.join(missing)}"] if missing else []
    lines += ["", "Answer (vote of K):", ""]
    for a in answers:
        if not a["decided"]:
            lines.append(f"- eps {a['eps']:g}: not yet answerable ({still_to_run(a)}; {a['mimic_points']} MimicDiffusion "
                         f"and {a['diffpure_points']} DiffPure points complete in all)")
            continue
        lines.append(f"- eps {a['eps']:g}: {verdict(a)} ({a['mimic_points']} MimicDiffusion and "
                     f"{a['diffpure_points']} DiffPure points complete)")
    return "\n".join(lines) + "\n"


def build(study_dir: str = STUDY, doubled_dir: str = BUDGET_CHECK) -> dict:
    """{path: content} of every file the report writes (paths relative to the repository root)."""
    study, doubled = point_summaries(study_dir, CONFIGS[STUDY]), point_summaries(doubled_dir, CONFIGS[BUDGET_CHECK])
    table = rows(study)
    answers = [answer(table, eps) for eps in sorted({r["eps"] for r in table})]
    checks = budget_check(study, doubled)
    data = {"table": table, "answers": answers, "budget_check": checks, "sentence": answer_sentence(table, answers, checks),
            "protocol": budgets(CONFIGS[STUDY])}
    return {f"{study_dir}/frontier.json": json.dumps(data, indent=1) + "\n",
            f"{study_dir}/frontier.md": markdown(table, answers, checks, data["protocol"]),
            # the docs show the plot, so it lives in the docs folder
            ("docs/img/frontier.png" if study_dir == STUDY else f"{study_dir}/frontier.png"): plot(table)}


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
