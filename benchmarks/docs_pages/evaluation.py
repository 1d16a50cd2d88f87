"""Pages of the evaluation reports: one report, a budget curve, the eps sweep, and the README's finding."""
from __future__ import annotations

import os

from mimic_diffusers.reports import markdown_table

from .common import RESULTS, header, load, pct, pct_ci, rel, run_block, threat_label


def eval_report(folder: str, title_note: str = "") -> str:
    path = os.path.join(RESULTS, folder)
    summary = load(os.path.join(path, "summary.json"))
    text = header(f"`{rel(path)}/summary.json`", f"`{rel(path)}/run.json`")
    text += (title_note + "\n\n" if title_note else "")
    text += run_block(os.path.join(path, "run.json"), summary) + "\n" + markdown_table(summary)
    return text


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
        text += (f"**{threat_label(key)}**, n = {t['n']}:\n\n| run | attack | iterations | EOT | step size | robust acc [95% CI] "
                 f"| vote acc | all-{k} acc | mean abs input grad | attack s |\n|---|---|---|---|---|---|---|---|---|---|\n")
        for label, a in t["attacks"].items():
            p = a["params"]
            grad = "-" if a["grad_l1_mean"] is None else f"{a['grad_l1_mean']:.3g}"
            every = "-" if a.get("all_votes") is None else pct(a["all_votes"]["accuracy"])
            text += (f"| {label} | {a['name']} | {p.get('steps', '-')} | {p.get('eot', 1)} | {step_text(p, eps)} | "
                     f"{pct_ci(a)} | {pct(a['vote']['accuracy'])} | {every} | {grad} | {a['seconds']:.0f} |\n")
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
    text += f"Attack `{label}`, one purification scored (K = {summary['config']['votes']}).\n\n"
    text += "| l_inf eps | " + " | ".join(k.split("-", 1)[1] for k in cells) + " |\n"
    text += "|---|" + "---|" * len(cells) + "\n"
    n = {a["n"] for a in cells.values()}
    text += f"| robust acc (n={','.join(map(str, sorted(n)))}) | " + " | ".join(pct(a["accuracy"]) for a in cells.values()) + " |\n"
    text += "| 95% CI | " + " | ".join(f"[{a['ci95'][0]:.1%}, {a['ci95'][1]:.1%}]" for a in cells.values()) + " |\n"
    text += "| mean abs input grad | " + " | ".join(f"{a['grad_l1_mean']:.3g}" for a in cells.values()) + " |\n"
    text += "| attack s | " + " | ".join(f"{a['seconds']:.0f}" for a in cells.values()) + " |\n"
    text += f"\nClean accuracy through the defense: {pct_ci(summary['clean'])} (n={summary['clean']['n']}).\n"
    return text


def finding() -> str:
    """The README's headline table: the default and DiffPure under the paper's protocol and the strongest attack."""
    sources = {"MimicDiffusion (shipped default)": os.path.join(RESULTS, "eval-mnist-default", "summary.json"),
               "DiffPure (t* = 0.1)": os.path.join(RESULTS, "table5-t100", "diffpure", "summary.json")}
    text = header(*(f"`{rel(p)}`" for p in sources.values()))
    text += ("| defense | eps | N | clean | paper's protocol (AutoAttack, plain autograd) [zero-grad frac] | "
             "strongest attack | worst case per sample [95% CI] |\n|---|---|---|---|---|---|---|\n")
    counts = []
    for eps in (0.1, 0.3):
        for name, path in sources.items():
            s = load(path)
            t = s["threats"][f"Linf-{eps:g}"]
            aa = t["attacks"]["autoattack-standard"]
            label, strongest = min(t["attacks"].items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))
            text += (f"| {name} | {eps:g} | {t['n']} | {pct(s['clean']['accuracy'])} | {pct(aa['accuracy'])} "
                     f"[{aa['zero_grad_fraction']:.2f}] | `{label}` {pct(strongest['accuracy'])} | "
                     f"**{pct_ci(t['worst_case'])}** |\n")
            counts.append((name, len(t["attacks"])))
    per = "; ".join(f"{name}: {n}" for name, n in dict(counts).items())
    text += (f"\nl_inf threat, T = 100 steps for MimicDiffusion. A sample counts as robust only if it classifies its clean and "
             f"its attacked input correctly; the worst case per sample requires that under every attack run ({per}).\n")
    return text
