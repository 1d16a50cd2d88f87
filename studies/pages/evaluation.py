"""Pages of the evaluation reports: one report, a budget curve, the eps sweep, and the README's finding."""

from __future__ import annotations

import os

from mimic_diffusers.reports import markdown_table

from .common import RESULTS, header, load, pct, pct_ci, rel, run_block, threat_label


def eval_report(folder: str, title_note: str = "") -> str:
    path = os.path.join(RESULTS, folder)
    summary = load(os.path.join(path, "summary.json"))
    text = header(f"`{rel(path)}/summary.json`", f"`{rel(path)}/run.json`")
    text += title_note + "\n\n" if title_note else ""
    k = summary["config"]["votes"]
    text += run_block(os.path.join(path, "run.json"), summary) + "\n"
    text += (
        f"Accuracy columns: robust acc scores the first purification of each input, vote acc the majority of "
        f"K = {k}, all-{k} acc all {k}; n is the number of images.\n\n"
    )
    return text + markdown_table(summary)


def step_text(params: dict, eps: float) -> str:
    if "step_size" in params:
        return f"{params['step_size']:g}"
    return f"{2.5 * eps / params.get('steps', 20):g} (default)"


def curve(folder: str) -> str:
    """One compact row per attack run: iterations, EOT, step size, accuracy under each rule, gradient, time."""
    path = os.path.join(RESULTS, folder)
    summary = load(os.path.join(path, "summary.json"))
    k = summary["config"]["votes"]
    text = header(f"`{rel(path)}/summary.json`", f"`{rel(path)}/run.json`")
    text += run_block(os.path.join(path, "run.json"), summary) + "\n"
    for key, t in summary["threats"].items():
        eps = float(key.split("-", 1)[1])
        text += (
            f"**{threat_label(key)}**, n = {t['n']} images:\n\n| run | attack | iterations | EOT | step size "
            f"| robust acc, first purification [95% CI] | vote of K = {k} acc | all-{k} acc "
            "| mean abs input grad | attack s |\n|---|---|---|---|---|---|---|---|---|---|\n"
        )
        for label, a in t["attacks"].items():
            p = a["params"]
            grad = "-" if a["grad_l1_mean"] is None else f"{a['grad_l1_mean']:.3g}"
            every = "-" if a.get("all_votes") is None else pct(a["all_votes"]["accuracy"])
            text += (
                f"| {label} | {a['name']} | {p.get('steps', '-')} | {p.get('eot', 1)} | {step_text(p, eps)} | "
                f"{pct_ci(a)} | {pct(a['vote']['accuracy'])} | {every} | {grad} | {a['seconds']:.0f} |\n"
            )
        vote = pct(t["worst_case_vote"]["accuracy"]) if "worst_case_vote" in t else "-"
        text += f"| **worst case** | | | | | **{pct_ci(t['worst_case'])}** | {vote} | | | |\n\n"
    return text


def eps_sweep() -> str:
    path = os.path.join(RESULTS, "eval-mnist-eps-sweep")
    raw = load(os.path.join(path, "summary.json"))
    summary = raw
    text = header(f"`{rel(path)}/summary.json`", f"`{rel(path)}/run.json`")
    text += run_block(os.path.join(path, "run.json"), summary) + "\n"
    threats = summary["threats"]
    (label,) = {lab for t in threats.values() for lab in t["attacks"]}
    cells = {key: t["attacks"][label] for key, t in threats.items()}
    text += f"Attack `{label}`, the first purification scored (K = {summary['config']['votes']}).\n\n"
    text += "| l_inf eps | " + " | ".join(k.split("-", 1)[1] for k in cells) + " |\n"
    text += "|---|" + "---|" * len(cells) + "\n"
    n = {a["n"] for a in cells.values()}
    text += (
        f"| robust acc (n={','.join(map(str, sorted(n)))}) | "
        + " | ".join(pct(a["accuracy"]) for a in cells.values())
        + " |\n"
    )
    text += "| 95% CI | " + " | ".join(f"[{a['ci95'][0]:.1%}, {a['ci95'][1]:.1%}]" for a in cells.values()) + " |\n"
    text += "| mean abs input grad | " + " | ".join(f"{a['grad_l1_mean']:.3g}" for a in cells.values()) + " |\n"
    text += "| attack s | " + " | ".join(f"{a['seconds']:.0f}" for a in cells.values()) + " |\n"
    text += f"\nClean accuracy through the defense: {pct_ci(summary['clean'])} (n={summary['clean']['n']}).\n"
    return text


def strongest_attack(attacks: dict) -> tuple:
    """(label, entry) of the attack with the lowest robust accuracy, among those that judge success on more
    than one purification draw: a single-draw attack is weak against a randomized defense by construction
    (`weak_against_randomized`), so it is never named the strongest even where it scored lowest."""
    from mimic_diffusers.attacks import weak_against_randomized

    fair = {k: a for k, a in attacks.items() if not weak_against_randomized(a.get("name", k), a.get("params"))}
    if not fair:
        raise ValueError(f"no attack among {sorted(attacks)} can be named the strongest: all judge one draw only")
    return min(fair.items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))


def finding() -> str:
    """The README's headline table: the default and DiffPure under the paper's protocol and the strongest attack."""
    sources = {
        "MimicDiffusion (shipped default)": os.path.join(RESULTS, "eval-mnist-default", "summary.json"),
        "DiffPure (t* = 0.1)": os.path.join(RESULTS, "table5-t100", "diffpure", "summary.json"),
    }
    text = header(*(f"`{rel(p)}`" for p in sources.values()))
    text += (
        "| defense | eps | N | clean | paper's protocol (AutoAttack, plain autograd) [zero-grad frac] | "
        "strongest attack | worst case per sample [95% CI] |\n|---|---|---|---|---|---|---|\n"
    )
    counts = []
    for eps in (0.1, 0.3):
        for name, path in sources.items():
            s = load(path)
            t = s["threats"][f"Linf-{eps:g}"]
            aa = t["attacks"]["autoattack-standard"]
            label, strongest = strongest_attack(t["attacks"])
            text += (
                f"| {name} | {eps:g} | {t['n']} | {pct(s['clean']['accuracy'])} | {pct(aa['accuracy'])} "
                f"[{aa['zero_grad_fraction']:.2f}] | `{label}` {pct(strongest['accuracy'])} | "
                f"**{pct_ci(t['worst_case'])}** |\n"
            )
            counts.append((name, len(t["attacks"])))
    per = "; ".join(f"{name}: {n}" for name, n in dict(counts).items())
    text += (
        f"\nl_inf threat; S = 100 inference steps for MimicDiffusion; every accuracy scores the first "
        f"purification of each of the N images. A sample counts as robust only if it classifies its clean and "
        f"its attacked input correctly; the worst case per sample requires that under every attack run ({per}).\n"
    )
    return text
