"""Pages of the studies and benchmarks stored as JSON in `benchmarks/results/`, and of the trained default."""

from __future__ import annotations

import json
import os

from .common import RESULTS, header, load, loose, machine_line, pct, rel, run_block, steps_label, steps_text


def fewest_steps() -> str:
    d, text, meta = loose("fewest-steps.json")
    a = d["args"]
    text += (
        run_block(
            meta,
            extra=[
                f"- **N**: standard accuracy on the first {a['standard_images']} test images; robust accuracy on the first "
                f"{a['bpda_images']} under BPDA+EOT ({a['bpda_steps']} iterations, EOT {a['bpda_eot']}, l_inf eps {a['eps']:g}), "
                f"attacking the purifier with that S; one purification per image; same images and seeds at every S",
                f"- **Timing**: {d['timing']}",
            ],
        )
        + "\n"
    )
    text += (
        f"| S | standard acc, one purification, n = {a['standard_images']} [95% CI] | vs S = 100 (points) "
        f"| BPDA+EOT acc, eps {a['eps']:g}, one purification, n = {a['bpda_images']} [95% CI] "
        "| vs S = 100 (points) "
        "| s / 64 images | speed-up |\n|---|---|---|---|---|---|---|\n"
    )
    for r in d["rows"]:
        text += (
            f"| {r['num_inference_steps']} | {r['standard_accuracy']:.1%} [{r['standard_ci95'][0]:.1%}, "
            f"{r['standard_ci95'][1]:.1%}] | {r['standard_delta_points']:+.1f} | {r['bpda_accuracy']:.1%} "
            f"[{r['bpda_ci95'][0]:.1%}, {r['bpda_ci95'][1]:.1%}] | {r['bpda_delta_points']:+.1f} | "
            f"{r['seconds_per_batch']:.2f} | {r['speedup_vs_max_steps']:.2f}x |\n"
        )
    return text


def bench() -> str:
    d, text, meta = loose("bench-cpu.json")
    text += run_block(meta, extra=[machine_line(d)]) + "\n"
    text += "| mode | batch | seconds | images/s | ratio to unguided |\n|---|---|---|---|---|\n"
    for key, r in d["timing"].items():
        mode, batch = key.rsplit("/b", 1)
        text += f"| {mode} | {batch} | {r['seconds']:.2f} | {r['images_per_s']:.2f} | {r['ratio_to_unguided']:.2f} |\n"
    text += "\n| purification memory | peak MB above baseline | seconds |\n|---|---|---|\n"
    for key, r in d["memory"].items():
        text += f"| {steps_label(key)} | {r['peak_mb_above_baseline']:.0f} | {r['seconds']:.1f} |\n"
    text += "\n| one exact gradient through the chain | peak MB above baseline | seconds |\n|---|---|---|\n"
    for key, r in d["exact_gradient"].items():
        text += f"| {steps_label(key)} | {r['peak_mb_above_baseline']:.0f} | {r['seconds']:.1f} |\n"
    ratios = [r["ratio_to_unguided"] for key, r in d["timing"].items() if key.startswith("mimic/")]
    mem = d["memory"]
    text += (
        f"\nMimicDiffusion against the unguided floor (same scheduler, same steps): {min(ratios):.2f}x to "
        f"{max(ratios):.2f}x."
    )
    if "mimic/T10" in mem and "mimic/T100" in mem:
        ratio = mem["mimic/T100"]["peak_mb_above_baseline"] / mem["mimic/T10"]["peak_mb_above_baseline"]
        text += f" Peak purification memory at S = 100 is {ratio:.2f}x that at S = 10."
    return text + "\n"


def bench_speedups() -> str:
    d, text, meta = loose("bench-cpu-speedups.json")
    text += run_block(meta, extra=[machine_line(d)]) + "\n"
    modes = ["mimic", "mimic+channels_last", "mimic+compile", "mimic+autocast"]
    batches = sorted({int(k.rsplit("/b", 1)[1]) for k in d["timing"]})
    text += (
        "Seconds per purification:\n\n| batch | unguided | mimic (plain) | +channels_last | +compile | +autocast bf16 |\n"
        "|---|---|---|---|---|---|\n"
    )
    for b in batches:
        cells = [d["timing"].get(f"{mode}/b{b}") for mode in ["unguided"] + modes]
        text += f"| {b} | " + " | ".join("-" if c is None else f"{c['seconds']:.2f}" for c in cells) + " |\n"
    return text


def study_name(attack: str, params: dict) -> str:
    if attack == "exact-pgd-eot" and params.get("guidance_feedback") is False:
        return "feedback-cut-pgd-eot"
    return attack


def attack_study() -> str:
    d, text, meta = loose("exact-attack-study-t100.json")
    text += run_block(meta) + "\n" + steps_text(d["what"]) + "\n\n"
    text += (
        "| images | attack (current name) | chain steps | tau | loss | iterations | EOT | robust acc (mean of 2) | "
        "robust in both | mean abs grad | attack s |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for block in ("screening_16_images", "confirm_32_images"):
        b = d[block]
        for r in b["rows"]:
            p = r["params"]
            name = study_name(r["attack"], p)
            chain = p.get("gradient_steps", 100)
            tau = p.get("tau", "-") if name != "bpda-eot" else "-"
            text += (
                f"| {b['num_images']} | `{name}` | {chain} | {tau} | {p.get('loss', 'ce')} | {p.get('steps')} | "
                f"{p.get('eot', 1)} | {pct(r['robust_accuracy'])} | {pct(r['robust_every_purification'])} | "
                f"{r['grad_l1_mean']:.3g} | {r['seconds']:.0f} |\n"
            )
    earlier = d["confirm_32_images"].get("earlier_rows_same_images")
    if earlier:
        text += f"\nRecorded in another file, on the same 32 images: {earlier}.\n"
    return text


def gradient_diagnostics() -> str:
    d, text, meta = loose("exact-gradient-diagnostics.json")
    text += (
        run_block(
            meta,
            extra=[
                f"- **N**: {d['num_images']} test images; margin drop after one signed step of {d['step']:g}, mean of "
                f"{d['purifications']} purifications with the same noise before and after"
            ],
        )
        + "\n"
    )
    text += "| gradient | mean L1 | draw cosine | cosine with BPDA | margin drop |\n|---|---|---|---|---|\n"
    for r in d["rows"]:
        setting = r["setting"].replace("no feedback", "feedback cut")
        if r["options"].get("gradient") == "exact" and r["options"].get("guidance_feedback", True):
            setting += ", feedback kept"
        text += (
            f"| {setting} | {r['grad_l1_mean']:.3g} | {r['draw_cosine']:.2f} | {r['bpda_cosine']:.2f} | "
            f"{r['margin_drop']:.2f} |\n"
        )
    return text


def l2_tuning() -> str:
    paths = [
        os.path.join(RESULTS, "attack-tuning-l2-long-window.json"),
        os.path.join(RESULTS, "attack-tuning-l2-long-window-budget.json"),
    ]
    text = header(*(f"`{rel(p)}`" for p in paths), "`benchmarks/results/attack-tuning-l2-long-window.run.json`")
    first = load(paths[0])
    text += (
        run_block(
            paths[0][:-5] + ".run.json",
            extra=[
                f"- **N**: {first['num_images']} test images, l_inf eps {first['eps']:g}, S = {first['steps']}, scheduler "
                "options "
                f"`{json.dumps(first['scheduler_options'])}` (the l2-long-window row); each attacked set scored on 2 purifications"
            ],
        )
        + "\n"
    )
    text += (
        "| attack | loss | iterations | EOT | chain steps | robust acc (mean of 2) | robust in both | mean abs grad | attack s |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    for p in paths:
        for r in load(p)["rows"]:
            q = r["params"]
            text += (
                f"| `{study_name(r['attack'], q)}` | {q.get('loss', 'ce')} | {q['steps']} | {q.get('eot', 1)} | "
                f"{q.get('gradient_steps', 100)} | {pct(r['robust_accuracy'])} | {pct(r['robust_every_purification'])} | "
                f"{r['grad_l1_mean']:.3g} | {r['seconds']:.0f} |\n"
            )
    return text


def training() -> str:
    from .frontier_study import SOURCES, shipped_point, study

    path = os.path.join(RESULTS, "mnist-mimic-build.json")
    d = load(path)
    text = header(f"`{rel(path)}`", *SOURCES)
    by = {r["metric"]: r for r in d["results"]}
    clf = by["classifier clean accuracy"]
    samples = by["unguided samples: mean max-softmax"]
    shipped = next(r for r in study()["table"] if r["point"] == shipped_point() and r["complete"])
    hist = ", ".join(str(samples["histogram"][str(i)]) for i in range(10))
    text += "| bar | measured | target | n |\n|---|---|---|---|\n"
    text += f"| classifier clean accuracy | {pct(clf['value'])} | >= 98% | {clf['n']} |\n"
    text += f"| unguided UNet samples: classifier mean max-softmax | {samples['value']:.3f} | confident labels | {samples['n']} |\n"
    text += f"| their label histogram (0..9) | {hist} | every digit present | {samples['n']} |\n"
    text += (
        f"| the shipped default ({shipped['point']}): clean accuracy through the purifier (S = 100, one purification) "
        f"| {pct(shipped['first']['clean']['accuracy'])} | within 1 point of the classifier | {shipped['n']} |\n"
    )
    text += f"\nMeasured by `{clf['command']}`. Training commands as run:\n\n"
    for part, command in d["training"].items():
        text += (
            f"- {part}: `{command.split(' (', 1)[0]}` ({command.split(' (', 1)[1]}\n"
            if " (" in command
            else f"- {part}: `{command}`\n"
        )
    return text
