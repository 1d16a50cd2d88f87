"""The frontier's table, plot, budget check and answer, computed from the stores of benchmarks/frontier.py,
never typed by hand; byte-for-byte reproducible from the committed stores.

    python benchmarks/frontier_report.py            # benchmarks/results/frontier/frontier.{json,md}, docs/img/frontier.png
    python benchmarks/frontier_report.py --check    # writes nothing; exit 1 when a written file is stale

Each point's store (`results.rank*.jsonl`, `runs.jsonl`) is committed; its own results.md and summary.json
are written by the run and not committed (this report is the study's). A point enters the table once its store holds every image and every attack of its config at that eps;
the others are listed as incomplete. Accuracy under the deployed vote (the majority of K purifications,
scored against the clean majority) and under the first purification are both shown; the worst case is
per sample over all attacks. The study runs as a cascade (each attack only on the samples the attacks
before it left robust), so its per-attack figures are cumulative. "Beats" means the MimicDiffusion point's 95% interval lies wholly above the
DiffPure point's.
"""
import argparse
import glob
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frontier import POINTS, point_config  # noqa: E402

from mimic_diffusers.evaluation import EvalConfig, merge_records, read_records, report_store, threat_key  # noqa: E402
from mimic_diffusers.metrics import wilson_interval  # noqa: E402
from mimic_diffusers.reports import atomic_write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY, BUDGET_CHECK = "benchmarks/results/frontier", "benchmarks/results/frontier-2x"
CONFIGS = {STUDY: "configs/mnist-frontier.yaml", BUDGET_CHECK: "configs/mnist-frontier-2x.yaml"}
EXTREMES = ("mimic-gs4", "mimic-gs64")  # the guidance scales at both ends, rerun at twice the budgets
RULES = {"vote": ("clean_vote", "worst_case_vote"), "first": ("clean", "worst_case")}


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
            if complete:
                row.update({rule: {"clean": s[clean], "robust": t[worst]} for rule, (clean, worst) in RULES.items()})
                row["attacks"] = {k: {"first": a["accuracy"], "vote": a["vote"]["accuracy"] if a.get("vote") else None}
                                  for k, a in t["attacks"].items()}
                row["attack_minutes"] = sum(a["seconds"] for a in t["attacks"].values()) / 60
                row["attacked"] = attacked[threat_key(threat)]
            out.append(row)
    return out


def answer(table: list, eps: float, rule: str = "vote") -> dict:
    """MimicDiffusion points that beat every DiffPure point of equal or higher clean accuracy by more than
    the intervals (their robust intervals do not overlap), at one eps under one scoring rule; and whether
    the points still missing can change that (`decided`, with the DiffPure point that settles a "no")."""
    done = [r for r in table if r["complete"] and r["eps"] == eps]
    mimic = [r for r in done if r["method"] == "mimic"]
    diffpure = [r for r in done if r["method"] == "diffpure"]
    winners = []
    for m in mimic:
        rivals = [d for d in diffpure if d[rule]["clean"]["accuracy"] >= m[rule]["clean"]["accuracy"]]
        if rivals and all(m[rule]["robust"]["ci95"][0] > d[rule]["robust"]["ci95"][1] for d in rivals):
            winners.append(m["point"])
    grid = sum(p in {r["point"] for r in done} for p in grid_points())
    out = {"eps": eps, "rule": rule, "mimic_points": len(mimic), "diffpure_points": len(diffpure),
           "grid_points": grid, "winners": winners, "decided": grid == len(grid_points()), "settled_by": None}
    every_diffpure = {p for p in grid_points() if p.startswith("diffpure-")} <= {d["point"] for d in diffpure}
    if every_diffpure and not out["decided"]:
        if winners:
            out["decided"] = True  # more points can add winners, not remove one
        else:
            # The best a missing MimicDiffusion point can do is every image clean and robust; its rivals are
            # then the cleanest DiffPure points (any less clean point faces those too). If one of them reaches
            # the lower end of a perfect score's interval, no missing point can beat it.
            n = diffpure[0]["n"]
            perfect = wilson_interval(n, n)[0]
            top = max(d[rule]["clean"]["accuracy"] for d in diffpure)
            blocking = [d for d in diffpure if d[rule]["clean"]["accuracy"] == top and d[rule]["robust"]["ci95"][1] >= perfect]
            if blocking:
                d = max(blocking, key=lambda d: d[rule]["robust"]["ci95"][1])
                out.update(decided=True, settled_by={"point": d["point"], "robust": d[rule]["robust"], "n": n,
                                                     "perfect": [perfect, 1.0]})
    return out


def grid_points() -> list:
    """The points every eps needs before the study is complete: each guidance scale and each DiffPure t*."""
    return [p for p in POINTS if p.startswith("diffpure-") or p.count("-") == 1]


def verdict(a: dict) -> str:
    """One eps's answer in words: who wins, or that nobody does (and, before the grid is complete, why the
    missing points cannot change it)."""
    if a["winners"]:
        return (f"{', '.join(a['winners'])} beat every DiffPure point of equal or higher clean accuracy beyond the "
                "95% intervals")
    text = "no MimicDiffusion setting beats DiffPure beyond the 95% intervals"
    if a["settled_by"]:
        b = a["settled_by"]
        text += (f", and the {len(grid_points()) - a['grid_points']} grid points still to measure cannot change that: "
                 f"even all {b['n']} images robust gives the interval [{b['perfect'][0]:.1%}, 100.0%], which overlaps "
                 f"{b['point']}'s {pct(b['robust'])}")
    return text


def answer_sentence(table: list, answers: list, checks: list = ()) -> str:
    """The README's one-sentence answer to the study's question, with its numbers (vote of K), and whether the
    budget check (`checks`) has shown the study's budgets to be enough: on both extreme MimicDiffusion points
    and on every DiffPure point an answer rests on."""
    needed = set(EXTREMES) | {a["settled_by"]["point"] for a in answers if a["settled_by"]}
    flat = needed <= {c["point"] for c in checks} and all(c["flattened"] for c in checks)
    budgets = ("the study's budgets (twice the iterations did not lower the worst case beyond its interval)" if flat
               else "the study's budgets (their check at twice the iterations is not complete)")
    parts = []
    for a in answers:
        done = [r for r in table if r["complete"] and r["eps"] == a["eps"]]
        if not a["decided"]:
            parts.append(f"at l_inf {a['eps']:g} not yet answered ({a['grid_points']} of the "
                         f"{len(grid_points())} grid points measured)")
            continue
        best = {m: max((r for r in done if r["method"] == m), key=lambda r: r["vote"]["robust"]["accuracy"])
                for m in ("mimic", "diffpure") if any(r["method"] == m for r in done)}
        numbers = "; ".join(f"{r['point']} {pct(r['vote']['robust'])} at clean {r['vote']['clean']['accuracy']:.1%}"
                            for r in best.values())
        parts.append(f"at l_inf {a['eps']:g} and {budgets}, {verdict(a)} (the most robust of each"
                     f"{' so far' if a['grid_points'] < len(grid_points()) else ''}: {numbers})")
    text = "; ".join(parts) or "no point measured yet"
    return ("Does any MimicDiffusion setting beat DiffPure at equal or higher clean accuracy under the strongest "
            f"attacks (worst case per sample, vote of K, MNIST)? {text[0].upper() + text[1:]}.\n")


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
                for rule in RULES:  # flattened under both rules: twice the budget stays within the interval
                    check[rule] = {"budget": r1[rule]["robust"], "twice": r2[0][rule]["robust"]}
                check["flattened"] = all(c["twice"]["accuracy"] >= c["budget"]["ci95"][0]
                                         for c in (check[rule] for rule in RULES))
                out.append(check)
    return out


def pct(a: dict) -> str:
    return f"{a['accuracy']:.1%} [{a['ci95'][0]:.1%}, {a['ci95'][1]:.1%}]"


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
    for r in table:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        if not r["complete"]:
            lines.append(f"| {r['point']} | {opts} | {r['eps']:g} | {r['n']} | incomplete | | | | | | |")
            continue
        per = "; ".join(f"{k} {a['first']:.0%} / {a['vote']:.0%}" for k, a in r["attacks"].items())
        lines.append(f"| {r['point']} | {opts} | {r['eps']:g} | {r['n']} | {pct(r['vote']['clean'])} | "
                     f"**{pct(r['vote']['robust'])}** | {pct(r['first']['clean'])} | {pct(r['first']['robust'])} | "
                     f"{per} | {r['attacked'][0]} / {r['attacked'][1]} | {r['attack_minutes']:.0f} |")
    lines += ["", "Budget check (worst case under the vote and the first purification, at the study's budgets vs "
              "twice the iterations, "
              f"`{CONFIGS[BUDGET_CHECK]}`):", ""]
    lines += [f"- {c['point']}, eps {c['eps']:g}: " + "; ".join(f"{rule} {pct(c[rule]['budget'])} vs {pct(c[rule]['twice'])}"
                                                           for rule in RULES) + ": "
              + ("flattened (within the interval)" if c["flattened"] else "NOT flattened: raise the budgets")
              for c in checks] or ["- no point has both budgets stored yet"]
    lines += ["", "Answer (vote of K):", ""]
    for a in answers:
        if not a["decided"]:
            lines.append(f"- eps {a['eps']:g}: not yet answerable ({a['grid_points']} of the {len(grid_points())} grid "
                         f"points complete: {a['mimic_points']} MimicDiffusion and {a['diffpure_points']} DiffPure points "
                         "in all)")
            continue
        lines.append(f"- eps {a['eps']:g}: {verdict(a)} ({a['mimic_points']} MimicDiffusion and "
                     f"{a['diffpure_points']} DiffPure points complete)")
    return "\n".join(lines) + "\n"


def plot(table: list) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps_values = sorted({r["eps"] for r in table})
    fig, axes = plt.subplots(1, max(1, len(eps_values)), figsize=(6 * max(1, len(eps_values)), 4.5), squeeze=False)
    for ax, eps in zip(axes[0], eps_values):
        for method, style in (("mimic", "o-"), ("diffpure", "s--")):
            pts = [r for r in table if r["complete"] and r["eps"] == eps and r["method"] == method]
            if not pts:
                continue
            xs = [r["vote"]["robust"]["accuracy"] for r in pts]
            ys = [r["vote"]["clean"]["accuracy"] for r in pts]
            xerr = [[x - r["vote"]["robust"]["ci95"][0] for x, r in zip(xs, pts)],
                    [r["vote"]["robust"]["ci95"][1] - x for x, r in zip(xs, pts)]]
            yerr = [[y - r["vote"]["clean"]["ci95"][0] for y, r in zip(ys, pts)],
                    [r["vote"]["clean"]["ci95"][1] - y for y, r in zip(ys, pts)]]
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt=style, capsize=3,
                        label="MimicDiffusion" if method == "mimic" else "DiffPure")
            for x, y, r in zip(xs, ys, pts):
                ax.annotate(r["point"].split("-", 1)[1], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"worst-case robust accuracy, l_inf eps {eps:g} (vote of K)")
        ax.set_ylabel("clean accuracy (vote of K)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


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
