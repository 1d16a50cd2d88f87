"""The page of the full-size cost measurements and the projection of the paper's protocol."""

from __future__ import annotations

from .common import loose, run_block, steps_label

# DiffBreak (NeurIPS 2025), one A100, DiffPure on CIFAR-10: a published anchor, quoted, not measured here
DIFFBREAK_A100 = "about 17 s per full gradient at batch <= 10 and 53 s at batch 128 (the largest that fits)"


def cost_at_scale() -> str:
    d, text, meta = loose("cost-at-scale.json")
    c, proj = d["cifar"], d["projection"]
    text += (
        run_block(
            meta,
            extra=[
                "- **Models**: random weights with the architectures of google/ddpm-cifar10-32 "
                "(35.7M parameters) + RobustBench WRN-28-10, and google/ddpm-ema-church-256 (113.7M, "
                "256x256) + timm resnet50 (`mimic_diffusers.unet_configs`)"
            ],
        )
        + "\n"
    )
    text += (
        "Purification, CIFAR architecture (seconds per image at S = 100 inference steps; batches timed at "
        "S = 10, whose window holds the same 30% of guided steps, times 10):\n\n"
        "| timed at | unguided | MimicDiffusion | ratio |\n|---|---|---|---|\n"
    )
    for key, r in c["purification"].items():
        if key.startswith("mimic/"):
            base = c["purification"][key.replace("mimic/", "unguided/")]
            label = steps_label(key.split("/", 1)[1])
            text += (
                f"| {label} | {base['seconds_per_image_at_T100']:.2f} | {r['seconds_per_image_at_T100']:.2f} | "
                f"{r['ratio_to_unguided']:.2f}x |\n"
            )
    text += "\nOne exact chain gradient (CIFAR architecture; each case in a fresh process):\n\n"
    text += "| S, batch, memory mode | seconds | peak MB above baseline |\n|---|---|---|\n"
    for key, r in c["gradients"].items():
        text += (
            f"| {steps_label(key)} | failed: {r['error'][-60:]!r} | |\n"
            if "error" in r
            else f"| {steps_label(key)} | {r['seconds']:.1f} | {r['peak_mb_above_baseline']:.0f} |\n"
        )
    e = c["batched_eot"]
    text += (
        f"\nBatched EOT, one feedback-cut gradient ({e['eot']} draws, batch {e['batch']}, S = {e['steps']}): "
        "looped "
        f"{e['looped']:.1f} s, batched {e['batched']:.1f} s: {e['speedup']:.2f}x.\n"
    )
    if "imagenet_size" in d:
        im = d["imagenet_size"]
        text += "\nImageNet-size UNet (256x256), batch 1:\n\n| measurement | seconds |\n|---|---|\n"
        for key, r in im["purification"].items():
            text += (
                f"| purification {steps_label(key)} (per image at S = 100) | {r['seconds_per_image_at_T100']:.1f} |\n"
            )
        for key, r in im["gradients"].items():
            seconds = "failed" if "error" in r else f"{r['seconds']:.1f}"
            text += f"| exact gradient {steps_label(key)} | {seconds} |\n"
        ten = im["gradients"].get("T10/b1/checkpointed", {})
        if "seconds" in ten:  # every step of an S = 100 chain costs what one of the S = 10 chain's does
            text += (
                f"\nExtrapolated linearly in S: about {ten['seconds'] * 10 / 60:.0f} min per exact gradient at "
                f"S = 100 (batch 1), with {ten['peak_mb_above_baseline'] / 1024:.1f} GB peak at S = 10.\n"
            )
    fit = proj["chain_gradient_seconds_fit"]
    p = proj["protocol"]
    text += (
        f"\nProjection of the paper's CIFAR-10 protocol on this machine ({p['images']} images, one at a time): "
        f"BPDA+EOT ({p['bpda-eot']['steps']} iterations x EOT {p['bpda-eot']['eot']}, one S = 100 purification per "
        f"gradient at {proj['purification_seconds_per_image']:.1f} s) about {proj['bpda_eot_hours']:,.0f} hours; the "
        f"feedback-cut PGD-EOT ({p['feedback-cut-pgd-eot']['steps']} x EOT {p['feedback-cut-pgd-eot']['eot']} through "
        f"a {p['feedback-cut-pgd-eot']['gradient_steps']}-step chain, {fit['at_gradient_steps']:.1f} s per gradient "
        f"from a linear fit in S) about {proj['feedback_cut_pgd_eot_hours']:,.0f} hours. For comparison, DiffBreak "
        f"reports on one A100 {DIFFBREAK_A100}, for DiffPure with its own score model and step count: the order "
        "of magnitude, not a like-for-like ratio.\n"
    )
    return text
