"""The frontier study's answer, from the report's table (`frontier_report.rows`): which MimicDiffusion points
beat DiffPure beyond the intervals, whether the points still missing can change that, and the README's
one-sentence answer. "Beats" means the MimicDiffusion point's 95% interval lies wholly above that of every
DiffPure point of equal or higher clean accuracy.
"""
from frontier import POINTS

from mimic_diffusers.metrics import wilson_interval

EXTREMES = ("mimic-gs4", "mimic-gs64")  # the guidance scales at both ends, rerun at twice the budgets
# the authors' window and H as an upsampling, run for the two most robust scales
VARIANT_WORDS = {"wide": "wide-window", "up": "upsampling"}
VARIANTS = tuple(VARIANT_WORDS)


def grid_points() -> list:
    """The points every eps needs before the study is complete: each guidance scale and each DiffPure t*."""
    return [p for p in POINTS if p.startswith("diffpure-") or p.count("-") == 1]


def variant_points(table: list, eps: float, rule: str = "vote") -> list:
    """The variants one eps needs besides the grid: the wider window and the upsampling H of the two guidance
    scales most robust at that eps (a screen counts with its bound); of every scale while one is unknown."""
    scales = [p for p in grid_points() if p.startswith("mimic-")]
    known = {r["point"]: r if r["complete"] else r["screen"] for r in table
             if r["eps"] == eps and r["point"] in scales and (r["complete"] or r.get("screen"))}
    best = scales if len(known) < len(scales) else sorted(scales, key=lambda p: -known[p][rule]["robust"]["accuracy"])[:2]
    return [f"{p}-{v}" for p in best for v in VARIANTS]


def needed_points(table: list, eps: float, rule: str = "vote") -> list:
    """Every point one eps needs before it is answered: the grid and its variants."""
    return grid_points() + variant_points(table, eps, rule)


def pct(a: dict) -> str:
    return f"{a['accuracy']:.1%} [{a['ci95'][0]:.1%}, {a['ci95'][1]:.1%}]"


def answer(table: list, eps: float, rule: str = "vote") -> dict:
    """MimicDiffusion points that beat every DiffPure point of equal or higher clean accuracy by more than
    the intervals (their robust intervals do not overlap), at one eps under one scoring rule; and whether
    the points still missing can change that (`decided`, with what settles a "no" in `settled_by`)."""
    done = [r for r in table if r["complete"] and r["eps"] == eps]
    mimic = [r for r in done if r["method"] == "mimic"]
    diffpure = [r for r in done if r["method"] == "diffpure"]
    winners = [m["point"] for m in mimic if beats(m[rule]["clean"]["accuracy"], m[rule]["robust"]["ci95"][0], diffpure, rule)]
    measured = {r["point"] for r in done}
    variants = variant_points(table, eps, rule)
    required = needed_points(table, eps, rule)
    out = {"eps": eps, "rule": rule, "mimic_points": len(mimic), "diffpure_points": len(diffpure),
           "grid_points": sum(p in measured for p in grid_points()), "winners": winners,
           "decided": all(p in measured for p in required), "settled_by": None,
           "screened_points": sum(bool(r.get("screen")) for r in table if r["eps"] == eps and r["point"] in grid_points()),
           "variants": variants, "variants_measured": sum(p in measured for p in variants),
           "variants_screened": sum(bool(r.get("screen")) for r in table if r["eps"] == eps and r["point"] in variants)}
    every_diffpure = {p for p in grid_points() if p.startswith("diffpure-")} <= {d["point"] for d in diffpure}
    if every_diffpure and not out["decided"]:
        if winners:
            out["decided"] = True  # more points can add winners, not remove one
        else:
            settled = cannot_win([p for p in required if p.startswith("mimic-") and p not in measured],
                                 {r["point"]: r for r in table if r["eps"] == eps and r.get("screen")}, diffpure, rule)
            out.update(decided=settled is not None, settled_by=settled)
    return out


def still_to_run(a: dict) -> str:
    """What an undecided eps still needs, in words."""
    def screened(n):
        return f", {n} screened" if n else ""

    known = len(a["variants"]) == len(VARIANTS) * 2  # the two most robust scales are known
    variants = (f"; {a['variants_measured']} of the {len(a['variants'])} variants of the two most robust scales "
                f"({', '.join(a['variants'])}) measured{screened(a['variants_screened'])}" if known else "")
    return f"{a['grid_points']} of the {len(grid_points())} grid points measured{screened(a['screened_points'])}{variants}"


def beats(clean: float, lower: float, diffpure: list, rule: str) -> bool:
    """A point of this clean accuracy and lower end of its robust interval beats DiffPure: there is a DiffPure
    point of equal or higher clean accuracy, and its interval lies below `lower` for all of them."""
    rivals = [d for d in diffpure if d[rule]["clean"]["accuracy"] >= clean]
    return bool(rivals) and all(lower > d[rule]["robust"]["ci95"][1] for d in rivals)


def cannot_win(missing: list, screens: dict, diffpure: list, rule: str):
    """Why no MimicDiffusion point in `missing` can beat DiffPure once measured, or None when one still can.
    A screened point (only the cascade's first attacks run) has its clean accuracy, and its robust accuracy
    after those attacks bounds the worst case from above (later attacks only remove samples), so its best
    interval is the one it has now. An unmeasured point's best is every image clean and robust: its rivals
    are then the cleanest DiffPure points (any less clean point faces those too)."""
    out = {"screened": [], "unmeasured": None}
    for point in missing:
        if point in screens:
            s = screens[point]["screen"]
            clean, robust = s[rule]["clean"]["accuracy"], s[rule]["robust"]
            if beats(clean, robust["ci95"][0], diffpure, rule):
                return None
            rivals = [d for d in diffpure if d[rule]["clean"]["accuracy"] >= clean]
            by = max(rivals, key=lambda d: d[rule]["robust"]["ci95"][1]) if rivals else None
            out["screened"].append({"point": point, "attacks": s["attacks"], "robust": robust,
                                    "by": by and {"point": by["point"], "robust": by[rule]["robust"]}})
            continue
        n = diffpure[0]["n"]
        perfect = wilson_interval(n, n)[0]
        top = max(d[rule]["clean"]["accuracy"] for d in diffpure)
        if beats(top, perfect, diffpure, rule):
            return None
        by = max((d for d in diffpure if d[rule]["clean"]["accuracy"] == top), key=lambda d: d[rule]["robust"]["ci95"][1])
        out["unmeasured"] = {"points": (out["unmeasured"] or {}).get("points", []) + [point], "n": n,
                             "perfect": [perfect, 1.0], "by": {"point": by["point"], "robust": by[rule]["robust"]}}
    return out


def resting_on(a: dict) -> set:
    """The DiffPure points a settled answer rests on (their budgets must be checked too)."""
    s = a["settled_by"] or {}
    return ({s["unmeasured"]["by"]["point"]} if s.get("unmeasured") else set()) | {
        c["by"]["point"] for c in s.get("screened", []) if c["by"]}


def missing_checks(a: dict, checks: list) -> list:
    """The budget checks one eps's answer still needs: both extreme MimicDiffusion points (at some eps) and
    each DiffPure point the answer rests on, at this eps."""
    done = {(c["point"], c["eps"]) for c in checks}
    return ([p for p in EXTREMES if p not in {point for point, _ in done}]
            + [f"{p} at {a['eps']:g}" for p in sorted(resting_on(a)) if (p, a["eps"]) not in done])


def verdict(a: dict) -> str:
    """One eps's answer in words: who wins, or that nobody does (and, before the grid is complete, why the
    missing points cannot change it)."""
    if a["winners"]:
        return (f"{', '.join(a['winners'])} beat every DiffPure point of equal or higher clean accuracy beyond the "
                "95% intervals")
    text = "no MimicDiffusion setting beats DiffPure beyond the 95% intervals"
    s = a["settled_by"]
    if not s:
        return text
    reasons = []
    if s["screened"]:
        rivalled = [c for c in s["screened"] if c["by"]]
        by_attacks = {}  # the points screened with the same attacks, named together
        for c in rivalled:
            by_attacks.setdefault(" and ".join(c["attacks"]), []).append(c["point"])
        names = ", ".join(f"{', '.join(points)} (screened with {attacks} only)" for attacks, points in by_attacks.items())
        if rivalled:  # the best of them against the DiffPure point that stops it
            best = max(rivalled, key=lambda c: c["robust"]["ci95"][0])
            bound = (f"screens that bound the worst case from above, reach at most {best['point']}'s" if len(rivalled) > 1
                     else "a screen that bounds the worst case from above, reaches at most")
            reasons.append(f"{names}, {bound} {pct(best['robust'])}, whose lower end is not above the upper end of "
                           f"{best['by']['point']}'s {pct(best['by']['robust'])}")
        if len(rivalled) < len(s["screened"]):
            reasons.append(", ".join(c["point"] for c in s["screened"] if not c["by"])
                           + " are cleaner than every DiffPure point, so none is a rival")
    if s["unmeasured"]:
        u = s["unmeasured"]
        subject = f"for the {counted(u['points'], 'unmeasured')}, " if s["screened"] else ""  # else: all that is missing
        reasons.append(f"{subject}even all {u['n']} images robust gives the interval "
                       f"[{u['perfect'][0]:.1%}, 100.0%], which overlaps {u['by']['point']}'s {pct(u['by']['robust'])}")
    missing = [c["point"] for c in s["screened"]] + (s["unmeasured"]["points"] if s["unmeasured"] else [])
    return f"{text}, and the {counted(missing, 'grid point')} still to complete cannot change that: " + "; ".join(reasons)


def counted(points: list, noun: str) -> str:
    """"4 grid points and the wide-window and upsampling variants of mimic-gs4": how many grid points, and
    which variants of which scales are among `points`."""
    on_grid = set(grid_points())
    grid = sum(p in on_grid for p in points)
    noun += "s" if grid > 1 and noun.endswith("point") else ""
    scales = {}  # scales missing the same variants (in VARIANTS' order), named together
    for scale in dict.fromkeys(p.rsplit("-", 1)[0] for p in points if p not in on_grid):
        scales.setdefault(tuple(VARIANT_WORDS[k] for k in VARIANTS if f"{scale}-{k}" in points), []).append(scale)
    return " and the ".join(([f"{grid} {noun}"] if grid else [])
                            + [f"{' and '.join(words)} variant{'s' * (len(words) * len(group) > 1)} of {listed(group)}"
                               for words, group in scales.items()])


def listed(names: list) -> str:
    """"a, b and c"."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def answer_sentence(table: list, answers: list, checks: list = ()) -> str:
    """The README's one-sentence answer to the study's question, with its numbers (vote of K), and whether the
    budget check (`checks`) has shown the study's budgets to be enough: on both extreme MimicDiffusion points
    and on every DiffPure point an answer rests on."""
    parts = []
    for a in answers:
        flat = not missing_checks(a, checks)
        lowered = [f"{c['point']} at {c['eps']:g}" for c in checks if not c["flattened"]]
        budgets = ("the study's budgets" + (f", which twice the iterations still lowered beyond the interval "
                                             f"({', '.join(lowered)}: the budgets must rise)" if lowered else
                                             " (twice the iterations did not lower the worst case beyond its interval)"
                                             if flat else " (their check at twice the iterations is not complete)"))
        done = [r for r in table if r["complete"] and r["eps"] == a["eps"]]
        if not a["decided"]:
            parts.append(f"at l_inf {a['eps']:g} not yet answered ({still_to_run(a)})")
            continue
        best = {m: max((r for r in done if r["method"] == m), key=lambda r: r["vote"]["robust"]["accuracy"])
                for m in ("mimic", "diffpure") if any(r["method"] == m for r in done)}
        numbers = "; ".join(f"{r['point']} {pct(r['vote']['robust'])} at clean {r['vote']['clean']['accuracy']:.1%}"
                            for r in best.values())
        parts.append(f"at l_inf {a['eps']:g} and {budgets}, {verdict(a)} (the most robust fully attacked point of each"
                     f"{' so far' if a['grid_points'] < len(grid_points()) else ''}: {numbers})")
    text = "; ".join(parts) or "no point measured yet"
    return ("Does any MimicDiffusion setting beat DiffPure at equal or higher clean accuracy under the strongest "
            f"attacks (worst case per sample, vote of K, MNIST)? {text[0].upper() + text[1:]}.{recommendation(answers)}\n")


def recommendation(answers: list) -> str:
    """What the library does with the answer (the issue's rule): a winner becomes a named preset; with none at
    any eps, the default stays. Said only once every eps is answered."""
    if not answers or not all(a["decided"] for a in answers):
        return ""
    winners = sorted({w for a in answers for w in a["winners"]})
    if winners:
        return f" Candidates for a named robust preset: {', '.join(winners)}."
    return " So the library ships no frontier preset and keeps its default."
