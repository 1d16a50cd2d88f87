"""Gradio Space: attack an MNIST digit (or your own image), purify it with MimicDiffusion, classify it.

The pipeline folder comes from the env var MIMIC_PIPELINE (default: the shipped `mnist-mimic`, installed
with the package; a folder is looked up as given, next to this file, then in the repository root; a Hub
repo id works too). Everything runs offline.
The logic lives in plain functions (`run_attack`, `purify_and_classify`, ...; image input and output in
`space_io.py` next to this file) so it is tested without a browser; `build_demo` only wires them to the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import gradio as gr
import torch
from space_io import DIGIT, UPLOAD, UPSCALE, load_upload, to_pil, trajectory_strip  # noqa: F401 (next to this file)

from mimic_diffusers import MimicDiffusionPipeline
from mimic_diffusers.data import load_image_dataset, to_tensors
from mimic_diffusers.defaults import DEFAULT_PIPELINE_NAME, SHIPPED_PIPELINES, shipped_pipeline_path
from mimic_diffusers.guidance import DISTANCES, STEP_SIZE_RULES
from mimic_diffusers.hub import looks_like_repo_id
from mimic_diffusers.image_io import unet_image_shape

try:
    from mimic_diffusers.attacks import bpda_attack, create_attack

    BPDA_NOTE = None
except Exception as error:  # the attack module is optional for the demo: hide the choice, say why
    bpda_attack = create_attack = None
    BPDA_NOTE = f"BPDA is unavailable here: `mimic_diffusers.attacks` could not be imported ({error})."

SPACE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SPACE_DIR))
DEFAULT_PIPELINE = DEFAULT_PIPELINE_NAME
NO_ATTACK, PGD, BPDA = "none", "PGD on the classifier", "BPDA+EOT on purifier + classifier"
ATTACK_STEPS = 10
# the short-range operator H: "up" (a bicubic upsampling, the paper's wording) or "down" (DPS's forward operator)
SR_DIRECTIONS = ("up", "down")


def available_attacks() -> List[str]:
    return [NO_ATTACK] + ([PGD] if create_attack is not None else []) + ([BPDA] if bpda_attack is not None else [])


def resolve_pipeline_path(path: Optional[str] = None) -> str:
    """MIMIC_PIPELINE / `path`: absolute or existing as given, else next to this app, else in the repo root,
    else a shipped pipeline's name (`mnist-mimic`); anything else is passed on as a Hub repo id."""
    path = path or os.environ.get("MIMIC_PIPELINE", DEFAULT_PIPELINE)
    for candidate in (path, os.path.join(SPACE_DIR, path), os.path.join(REPO_ROOT, path)):
        if os.path.isdir(candidate):
            return candidate
    if path in SHIPPED_PIPELINES:
        return shipped_pipeline_path(path)
    if not looks_like_repo_id(path):
        raise FileNotFoundError(
            f"pipeline folder {path!r} not found (next to app.py or in the repository root); "
            "set MIMIC_PIPELINE to a pipeline folder or a Hub repo id"
        )
    return path


def load_pipeline(path: Optional[str] = None) -> MimicDiffusionPipeline:
    pipe = MimicDiffusionPipeline.from_pretrained(resolve_pipeline_path(path))
    if pipe.classifier is None:
        raise ValueError("the demo needs a pipeline with a classifier component")
    return pipe


@lru_cache(maxsize=1)
def mnist_test_split():
    return load_image_dataset("mnist5k", split="test")


def image_size(pipe) -> int:
    return unet_image_shape(pipe.unet)[1]


def mnist_digit(pipe, index) -> Tuple[torch.Tensor, int]:
    """(1, C, H, W) image in [0, 1] and the true label of test image `index`."""
    data = mnist_test_split()
    if index is None or not float(index).is_integer() or not 0 <= int(index) < len(data):
        raise gr.Error(f"digit index must be an integer in 0..{len(data) - 1}, got {index}")
    x, y = to_tensors(data, pipe.unet.config.in_channels, indices=[int(index)])
    if x.shape[-1] != image_size(pipe):
        raise gr.Error(f"this pipeline takes {image_size(pipe)} px images, MNIST digits are {x.shape[-1]} px")
    return x, int(y[0])


def guided_pipeline(pipe, **options) -> MimicDiffusionPipeline:
    """The same models with a scheduler carrying `options` (validated; the shared `pipe` is untouched)."""
    try:
        purifier = pipe.with_scheduler_options(**options)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    purifier.set_progress_bar_config(desc="purifying")
    return purifier


def run_attack(pipe, x, label: int, attack: str, eps: float, num_inference_steps: int, seed: int = 0) -> torch.Tensor:
    """Adversarial version of `x` (values in [0, 1], within eps in L-inf)."""
    if attack == NO_ATTACK or eps == 0:
        return x
    labels = torch.tensor([label])
    if attack == PGD and create_attack is not None:
        return create_attack("pgd-classifier", pipe, eps=eps, seed=seed, steps=ATTACK_STEPS)(x, labels).detach()
    if attack == BPDA and bpda_attack is not None:
        return bpda_attack(
            pipe,
            x,
            labels,
            eps,
            steps=ATTACK_STEPS,
            eot=1,
            num_inference_steps=num_inference_steps,
            generator=torch.Generator().manual_seed(seed),
        ).detach()
    raise gr.Error(f"attack must be one of {available_attacks()}, got {attack!r}")


@torch.no_grad()
def probabilities(pipe, x) -> Dict[str, float]:
    p = pipe.classify(x).softmax(-1)[0]
    return {str(k): float(v) for k, v in enumerate(p)}


@dataclass
class Outcome:
    clean: torch.Tensor  # (1, C, H, W) in [0, 1]
    adversarial: torch.Tensor
    purified: torch.Tensor
    probabilities: Dict[str, Dict[str, float]]  # "clean" / "adversarial" / "purified" -> {label: p}
    trajectory: List[Tuple[int, torch.Tensor]]  # (t, x0_hat in [0, 1]) for each guided step


def purify_and_classify(
    pipe,
    x,
    label: int,
    attack: str = NO_ATTACK,
    eps: float = 0.3,
    num_inference_steps: int = 100,
    seed: int = 0,
    **guidance,
) -> Outcome:
    """Attack `x`, purify the result with the guidance options given, classify all three images."""
    purifier = guided_pipeline(pipe, **guidance)
    x_adv = run_attack(purifier, x, label, attack, eps, num_inference_steps, seed)
    trajectory = []

    def keep_x0_hat(p, i, t, tensors):
        if p.scheduler.in_window(t):
            trajectory.append((int(t), ((tensors["x0_hat"] + 1) / 2).clamp(0, 1).cpu()))
        return {}

    purified = purifier(
        x_adv,
        num_inference_steps=num_inference_steps,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
        callback_on_step_end=keep_x0_hat,
        callback_on_step_end_tensor_inputs=["x0_hat"],
    ).images
    probs = {
        name: probabilities(pipe, image)
        for name, image in (("clean", x), ("adversarial", x_adv), ("purified", purified))
    }
    return Outcome(x, x_adv, purified, probs, trajectory)


def describe(outcome: Outcome, source_note: str, attack: str, eps: float, steps: int) -> str:
    lines = [source_note]
    if attack != NO_ATTACK:
        linf = float((outcome.adversarial - outcome.clean).abs().max())
        lines.append(f"Attack: {attack}, eps = {eps:g}, {ATTACK_STEPS} steps (L-inf distance to clean: {linf:.3f}).")
        if attack == PGD:
            lines.append("PGD sees only the bare classifier, never the purifier: it is not an adaptive attack.")
    if outcome.trajectory:
        ts = ", ".join(str(t) for t, _ in outcome.trajectory)
        lines.append(f"Purified with {steps} steps; guided steps (x0_hat strip, left to right): t = {ts}.")
    else:
        lines.append(f"Purified with {steps} steps; no step fell inside the guidance window.")
    return "\n\n".join(lines)


def build_demo(pipe: Optional[MimicDiffusionPipeline] = None, default_steps: int = 100) -> gr.Blocks:
    pipe = pipe if pipe is not None else load_pipeline()
    config, n_test = pipe.scheduler.config, len(mnist_test_split())
    size, channels = image_size(pipe), pipe.unet.config.in_channels

    def on_purify(values, progress=gr.Progress(track_tqdm=True)):
        """`values`: {component: value} of every input (Gradio passes a dict when the inputs are a set)."""
        source, index, attack, eps, steps = (values[c] for c in (source_in, index_in, attack_in, eps_in, steps_in))
        progress(0, desc="loading the image")
        if source == UPLOAD:
            x, note = load_upload(values[upload_in], size, channels)
            probs = probabilities(pipe, x)
            label = int(max(probs, key=probs.get))  # an upload has no ground truth: attack the clean prediction
            note = f"{note}; attacked label = the classifier's clean prediction ({label})."
        else:
            x, label = mnist_digit(pipe, index)
            note = f"MNIST test digit #{int(index)}, true label {label}."
        guidance = {key: values[component] for key, component in guidance_in.items()}
        progress(0.05, desc=f"attack: {attack}")
        outcome = purify_and_classify(
            pipe, x, label, attack, float(eps), int(steps), int(values[seed_in] or 0), **guidance
        )
        p = outcome.probabilities
        return (
            to_pil(outcome.clean),
            p["clean"],
            to_pil(outcome.adversarial),
            p["adversarial"],
            to_pil(outcome.purified),
            p["purified"],
            trajectory_strip(outcome.trajectory),
            describe(outcome, note, attack, float(eps), int(steps)),
        )

    with gr.Blocks(title="MimicDiffusion adversarial purification") as demo:
        gr.Markdown(
            "# MimicDiffusion adversarial purification\nPick a test digit or upload an image, attack it, "
            "and watch the guided reverse diffusion recover it. MNIST digits are white on black."
        )
        with gr.Row():
            with gr.Column(scale=1):
                source_in = gr.Radio([DIGIT, UPLOAD], value=DIGIT, label="Input", elem_id="source")
                index_in = gr.Number(
                    0,
                    precision=0,
                    minimum=0,
                    maximum=n_test - 1,
                    label=f"Test digit (0..{n_test - 1})",
                    elem_id="index",
                )
                upload_in = gr.File(
                    label=f"Upload an image (up to 2 MB; converted to {size}x{size} grayscale)",
                    file_types=["image"],
                    type="filepath",
                    elem_id="upload",
                )
                attack_in = gr.Radio(available_attacks(), value=NO_ATTACK, label="Attack", elem_id="attack")
                if BPDA_NOTE:
                    gr.Markdown(BPDA_NOTE)
                eps_in = gr.Slider(0, 0.5, value=0.3, step=0.01, label="eps (L-inf)", elem_id="eps")
                steps_in = gr.Slider(
                    1,
                    config.num_train_timesteps,
                    value=default_steps,
                    step=1,
                    label="Inference steps",
                    elem_id="steps",
                )
                with gr.Accordion("Guidance options", open=False):
                    guidance_in = {  # the scheduler options the demo exposes, each its own input
                        "guidance_window_start": gr.Slider(
                            0.01,
                            1,
                            value=config.guidance_window_start,
                            step=0.01,
                            label="Window start (fraction of T)",
                        ),
                        "guidance_window_end": gr.Slider(
                            0, 0.99, value=config.guidance_window_end, step=0.01, label="Window end (fraction of T)"
                        ),
                        "distance": gr.Radio(sorted(DISTANCES), value=config.distance, label="Distance"),
                        "long_range": gr.Checkbox(config.long_range, label="Long-range guidance"),
                        "short_range": gr.Checkbox(config.short_range, label="Short-range guidance"),
                        "sr_direction": gr.Radio(
                            list(SR_DIRECTIONS), value=config.sr_direction, label="Short-range operator H (resamples)"
                        ),
                        "step_size_rule": gr.Dropdown(
                            sorted(STEP_SIZE_RULES), value=config.step_size_rule, label="Step size rule"
                        ),
                        "guidance_scale": gr.Number(
                            config.guidance_scale, label="Guidance scale (empty: the rule's default)"
                        ),
                    }
                    seed_in = gr.Number(0, precision=0, label="Seed")
                button = gr.Button("Attack and purify", variant="primary", elem_id="purify")
            with gr.Column(scale=2):
                with gr.Row():
                    outputs = []
                    for name in ("clean", "adversarial", "purified"):
                        with gr.Column(min_width=160):
                            outputs.append(
                                gr.Image(
                                    label=name.capitalize(),
                                    type="pil",
                                    format="png",
                                    interactive=False,
                                    elem_id=f"{name}-image",
                                )
                            )
                            outputs.append(
                                gr.Label(
                                    num_top_classes=3, label=f"{name.capitalize()} prediction", elem_id=f"{name}-label"
                                )
                            )
                strip = gr.Image(
                    label="x0_hat across the guidance window",
                    type="pil",
                    format="png",
                    interactive=False,
                    elem_id="trajectory",
                )
                info = gr.Markdown(elem_id="info")
        inputs = {source_in, index_in, upload_in, attack_in, eps_in, steps_in, seed_in, *guidance_in.values()}
        button.click(on_purify, inputs, outputs + [strip, info])
    return demo


if __name__ == "__main__":
    build_demo().queue().launch(max_file_size="2mb")
