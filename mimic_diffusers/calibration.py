"""Calibrate the guidance scale of a pipeline: the scale at which clean images keep their accuracy.

The guidance scale sets how hard each guided step pulls the predicted clean image toward the input. Too weak,
and a clean image drifts to another class while it is purified; stronger, and the purifier keeps more of its
input, including any perturbation in it. A scale that suits one UNet does not carry over to another, so a new
pipeline measures it: clean accuracy through the purifier at each candidate scale, on the same images and with
the same noise, against the classifier's own clean accuracy on those images.

Selection rule (`SELECTION_RULES`): a scale passes when clean accuracy through the purifier is at most
`tolerance` points below the classifier's. Among the passing scales, `prefer="smallest"` (the default) takes the
smallest, the weakest pull toward the input that keeps clean accuracy; `prefer="largest"` takes the largest.
When no scale passes there is no choice (`CalibrationResult.chosen` is None).

Seeds: image k of the calibration set is purified with its own generator, seeded from (`seed`, k) and the same
at every scale, so a result depends neither on the batch size nor on the other images, and the scales are
compared on the same noise (a paired comparison).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch

DEFAULT_SCALES: Tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
DEFAULT_TOLERANCE = 1.0  # points of clean accuracy below the classifier's
DEFAULT_NUM_IMAGES = 256
SELECTION_RULES = {
    "smallest": "the smallest passing scale: the weakest pull toward the input that keeps clean accuracy "
    "(a stronger pull also pulls harder toward any perturbation in the input)",
    "largest": "the largest passing scale: the strongest pull toward the input among those that keep clean accuracy",
}


@dataclass(frozen=True)
class ScaleAccuracy:
    """Clean accuracy through the purifier at one guidance scale.

    Args:
        scale (`float`): the candidate `guidance_scale`.
        correct (`int`): images the purifier-then-classifier gets right.
        lost (`int`): images the classifier alone gets right and the purifier-then-classifier wrong.
        gained (`int`): images the classifier alone gets wrong and the purifier-then-classifier right.
        passes (`bool`): within the tolerance of the classifier's clean accuracy.
    """

    scale: float
    correct: int
    lost: int
    gained: int
    passes: bool


@dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate_guidance_scale` measured and chose.

    Args:
        scales (`tuple` of `ScaleAccuracy`): one per candidate, in ascending order of scale.
        classifier_correct (`int`): images the classifier alone gets right.
        num_images (`int`): images measured.
        tolerance (`float`): points of clean accuracy a passing scale may lose against the classifier.
        prefer (`str`): the selection rule, a key of `SELECTION_RULES`.
        num_inference_steps (`int`): purification steps the scales were measured at.
        seed (`int`): root of the per-image generators.
        chosen (`float`, *optional*): the chosen scale; None when no candidate passes.
    """

    scales: Tuple[ScaleAccuracy, ...]
    classifier_correct: int
    num_images: int
    tolerance: float
    prefer: str
    num_inference_steps: int
    seed: int
    chosen: Optional[float]

    @property
    def classifier_accuracy(self) -> float:
        return self.classifier_correct / self.num_images

    @property
    def rule(self) -> str:
        return SELECTION_RULES[self.prefer]

    def accuracy(self, row: ScaleAccuracy) -> float:
        return row.correct / self.num_images

    def table(self) -> str:
        """A Markdown table: scale -> clean accuracy through the purifier, with the classifier's and the verdict."""
        n = self.num_images
        classifier = f"{self.classifier_correct / n:.1%} ({self.classifier_correct}/{n})"
        header = "| guidance_scale | clean accuracy through the purifier | classifier alone | lost / gained | passes |"
        lines = [header, "|---|---|---|---|---|"]
        for row in self.scales:
            verdict = ("yes" if row.passes else "no") + (" (chosen)" if row.scale == self.chosen else "")
            lines.append(
                f"| {row.scale:g} | {row.correct / n:.1%} ({row.correct}/{n}) | {classifier} | "
                f"{row.lost} / {row.gained} | {verdict} |"
            )
        return "\n".join(lines)

    def explanation(self) -> str:
        """Why this scale (or why none): the threshold, the rule and the outcome, in a few lines."""
        floor = self.classifier_accuracy - self.tolerance / 100
        text = (
            f"A scale passes when clean accuracy through the purifier is at least {max(floor, 0):.1%}: the "
            f"classifier's {self.classifier_accuracy:.1%} on the same {self.num_images} images minus the "
            f"tolerance of {self.tolerance:g} point(s).\nRule: {self.rule}.\n"
        )
        if self.chosen is not None:
            passing = ", ".join(f"{r.scale:g}" for r in self.scales if r.passes)
            return text + f"Passing scales: {passing}. Chosen: guidance_scale={self.chosen:g}."
        best = max(self.scales, key=lambda r: (r.correct, -r.scale))
        return text + (
            f"No candidate scale passes: the best, {best.scale:g}, reaches {self.accuracy(best):.1%}, "
            f"{100 * (self.classifier_accuracy - self.accuracy(best)):.1f} points below the classifier."
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "classifier_accuracy": self.classifier_accuracy, "rule": self.rule}


def calibration_seed(seed: int, index: int) -> int:
    """The generator seed of image `index` under `seed` (a hash: distinct seeds give unrelated streams)."""
    return int(hashlib.sha256(f"calibrate/{seed}/{index}".encode()).hexdigest()[:8], 16)


def check_calibration_arguments(
    scales: Sequence[float], tolerance: float, prefer: str, num_inference_steps: int, batch_size: int
) -> Tuple[float, ...]:
    """Validate the arguments of `calibrate_guidance_scale`; returns the scales sorted ascending.

    Raises:
        ValueError: naming the argument and what it expects.
    """
    scales = tuple(scales)
    if not scales:
        raise ValueError("scales: expected at least one candidate guidance scale")
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scales: every candidate must be a finite number > 0, got {scale!r}")
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales: candidates must be distinct, got {list(scales)}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 100:
        raise ValueError(f"tolerance: expected points of accuracy in [0, 100], got {tolerance!r}")
    if prefer not in SELECTION_RULES:
        raise ValueError(f"prefer: expected one of {sorted(SELECTION_RULES)}, got {prefer!r}")
    for name, value in (("num_inference_steps", num_inference_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return tuple(sorted(float(s) for s in scales))


def calibrate_guidance_scale(
    pipe,
    images: torch.Tensor,
    labels: torch.Tensor,
    scales: Sequence[float] = DEFAULT_SCALES,
    tolerance: float = DEFAULT_TOLERANCE,
    prefer: str = "smallest",
    num_inference_steps: int = 100,
    batch_size: int = 32,
    seed: int = 0,
    on_scale: Optional[Callable[[ScaleAccuracy], None]] = None,
) -> CalibrationResult:
    r"""Measure clean accuracy through the purifier at each candidate guidance scale and choose one.

    The pipeline itself is unchanged: each scale runs on a copy of it with that `guidance_scale` (its other
    scheduler options kept). Module docstring: the selection rule and the seeds.

    Args:
        pipe (`MimicDiffusionPipeline`): a guided pipeline with a classifier.
        images (`torch.Tensor`): clean images (N, C, H, W) in [0, 1], of the UNet's shape.
        labels (`torch.Tensor`): their labels (N,), int64.
        scales (`Sequence[float]`, defaults to `DEFAULT_SCALES`): candidate guidance scales, each > 0.
        tolerance (`float`, defaults to 1.0): points of clean accuracy a passing scale may lose against the
            classifier alone.
        prefer (`str`, defaults to "smallest"): the selection rule among passing scales, a key of
            `SELECTION_RULES`.
        num_inference_steps (`int`, defaults to 100): purification steps; calibrate at the steps you deploy.
        batch_size (`int`, defaults to 32): images per purification call (results do not depend on it).
        seed (`int`, defaults to 0): root of the per-image generators.
        on_scale (`Callable`, *optional*): called with each `ScaleAccuracy` as soon as it is measured.
    Returns:
        `CalibrationResult`: every scale's clean accuracy, the classifier's, and the chosen scale (None when
        none passes).

    Example:
        >>> from mimic_diffusers.calibration import calibrate_guidance_scale
        >>> result = calibrate_guidance_scale(pipe, images, labels, scales=[2, 4, 8, 16])
        >>> print(result.table())
        >>> pipe = pipe.with_scheduler_options(guidance_scale=result.chosen)
    """
    scales = check_calibration_arguments(scales, tolerance, prefer, num_inference_steps, batch_size)
    if getattr(pipe, "classifier", None) is None:
        raise ValueError(
            "pipe: the pipeline has no classifier; calibration compares its clean accuracy with and "
            "without purification"
        )
    config = pipe.scheduler.config
    if not (config.long_range or config.short_range):
        raise ValueError(
            "pipe: its scheduler has no guidance (long_range and short_range are both off), so the "
            "guidance scale changes nothing"
        )
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images: expected a tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
        raise ValueError(
            f"labels: expected a tensor ({len(images)},) of class indices, one per image, got "
            f"{tuple(getattr(labels, 'shape', ())) or type(labels).__name__}"
        )
    if len(images) == 0:
        raise ValueError("images: expected at least one image")

    labels = labels.cpu()  # predictions are compared on the CPU; the pipeline moves the images where it runs
    batches = [slice(i, i + batch_size) for i in range(0, len(images), batch_size)]
    with torch.no_grad():
        classifier_right = torch.cat([pipe.classify(images[b]).argmax(1).cpu() for b in batches]) == labels

    rows: List[ScaleAccuracy] = []
    for scale in scales:
        candidate = pipe.with_scheduler_options(guidance_scale=scale)
        predictions = []
        for b in batches:
            # CPU generators: the same noise on every device, one per image whatever the batch
            generators = [
                torch.Generator().manual_seed(calibration_seed(seed, k))
                for k in range(b.start, min(b.stop, len(images)))
            ]
            purified = candidate(
                images[b], num_inference_steps=num_inference_steps, generator=generators, output_type="pt"
            ).images
            with torch.no_grad():
                predictions.append(candidate.classify(purified).argmax(1).cpu())
        right = torch.cat(predictions) == labels
        correct, baseline = int(right.sum()), int(classifier_right.sum())
        # integer comparison: no rounding decides a pass at the boundary
        passes = 100 * (baseline - correct) <= tolerance * len(images)
        row = ScaleAccuracy(
            scale=scale,
            correct=correct,
            lost=int((classifier_right & ~right).sum()),
            gained=int((~classifier_right & right).sum()),
            passes=bool(passes),
        )
        rows.append(row)
        if on_scale is not None:
            on_scale(row)

    passing = [r.scale for r in rows if r.passes]
    chosen = (min(passing) if prefer == "smallest" else max(passing)) if passing else None
    return CalibrationResult(
        scales=tuple(rows),
        classifier_correct=int(classifier_right.sum()),
        num_images=len(images),
        tolerance=float(tolerance),
        prefer=prefer,
        num_inference_steps=num_inference_steps,
        seed=seed,
        chosen=chosen,
    )


def calibration_images(
    pipe, dataset: str, split: str = "test", num_images: int = DEFAULT_NUM_IMAGES, skip: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images `skip .. skip + num_images - 1` of a data set's split, as the UNet takes them.

    Args:
        pipe (`MimicDiffusionPipeline`): sets the channels and size the images must have.
        dataset (`str`): an embedded name (`mnist5k`), a local imagefolder or a Hub data set id
            (`mimic_diffusers.data.load_image_dataset`, as in evaluation configs).
        split (`str`, defaults to "test"): the split.
        num_images (`int`): how many images.
        skip (`int`, defaults to 0): images to skip at the start of the split.
    Returns:
        (images (N, C, H, W) in [0, 1], labels (N,)).
    """
    from .data import load_image_dataset, to_tensors
    from .image_io import unet_image_shape

    data = load_image_dataset(dataset, split=split)
    if skip + num_images > len(data):
        raise ValueError(
            f"num_images (--num-images): {num_images} images after skipping {skip} need "
            f"{skip + num_images}, but split {split!r} of {dataset!r} has {len(data)}"
        )
    shape = unet_image_shape(pipe.unet)
    x, y = to_tensors(data, shape[0], indices=range(skip, skip + num_images))
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"dataset: {dataset!r} has {tuple(x.shape[1:])} images, the UNet takes {shape}")
    return x, y


def check_write_target(pipeline_folder: str, output_dir: Optional[str] = None) -> str:
    """Where `write_guidance_scale` would write, checked before any work: the folder it reads, and a refusal of
    what it must not write (the shipped pipeline in place, an `output_dir` that already exists).

    Args:
        pipeline_folder (`str`): a saved pipeline folder, or a shipped pipeline's name (`mnist-mimic`).
        output_dir (`str`, *optional*): the new folder a calibrated copy would go to.
    Returns:
        `str`: the folder `pipeline_folder` names.
    """
    from .defaults import SHIPPED_PIPELINES, is_shipped_pipeline, resolve_pipeline

    folder = resolve_pipeline(pipeline_folder) if pipeline_folder in SHIPPED_PIPELINES else pipeline_folder
    if not os.path.isfile(os.path.join(folder, "scheduler", "scheduler_config.json")):
        raise FileNotFoundError(f"{pipeline_folder!r} has no scheduler/scheduler_config.json to write the scale into")
    if output_dir is None and is_shipped_pipeline(folder):
        raise ValueError(
            f"{pipeline_folder!r} is the pipeline shipped inside the installed package ({folder}), which is never "
            "rewritten: write the calibrated scale into a copy (output_dir; `mimic-diffusers calibrate "
            "--output-dir FOLDER`), or copy the folder first and calibrate the copy"
        )
    if output_dir is not None and os.path.exists(output_dir):
        raise FileExistsError(
            f"output_dir {output_dir!r} already exists: the calibrated copy goes to a new folder (to calibrate a "
            "folder in place, pass it as the pipeline without an output_dir)"
        )
    return folder


def write_guidance_scale(pipeline_folder: str, scale: float, output_dir: Optional[str] = None) -> Optional[float]:
    """Set `guidance_scale` in `<pipeline_folder>/scheduler/scheduler_config.json`, atomically (a temporary file
    renamed over it: a failure leaves the old file, never half of one), keeping every other key; the model card's
    row for the option and its preset sentence follow, so the card states the scale the folder loads with.

    With `output_dir`, a copy of the folder gets the scale instead and `pipeline_folder` stays as it is; the copy
    is written next to `output_dir` and renamed into place, so it appears whole or not at all. The pipeline shipped
    inside the package (`mnist-mimic`) is package data: it is only ever copied, never rewritten.

    Args:
        pipeline_folder (`str`): a saved pipeline folder, or a shipped pipeline's name (`mnist-mimic`) with
            `output_dir`.
        scale (`float`): the guidance scale to write.
        output_dir (`str`, *optional*): a new folder for a calibrated copy of `pipeline_folder`.
    Returns:
        The scale the file held before (None: the step-size rule's default).

    Example:
        >>> previous = write_guidance_scale("mnist-mimic", 8.0, output_dir="pipelines/mnist-gs8")  # a copy
    """
    folder = check_write_target(pipeline_folder, output_dir)
    if output_dir is None:
        return _write_scale(folder, scale)
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".calibrate-")
    try:
        copy = os.path.join(tmp, "pipeline")
        shutil.copytree(folder, copy)
        previous = _write_scale(copy, scale)
        os.replace(copy, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return previous


def _write_scale(pipeline_folder: str, scale: float) -> Optional[float]:
    """`write_guidance_scale` in place, on a folder `check_write_target` accepted."""
    from .reports import atomic_write

    path = os.path.join(pipeline_folder, "scheduler", "scheduler_config.json")
    with open(path) as f:
        config = json.load(f)
    previous = config.get("guidance_scale")
    config["guidance_scale"] = float(scale)
    # the layout diffusers' `save_config` writes, so a rewrite changes only this one value
    atomic_write(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    _update_card(pipeline_folder, config)
    return previous


def _update_card(pipeline_folder: str, config: dict) -> None:
    """The card's `guidance_scale` row and preset sentence (`modelcard.CARD_TEMPLATE`) for `config`; the rest of
    the card (data set, training, results) is the builder's and stays as written."""
    from .reports import atomic_write
    from .results_schema import matching_preset

    path = os.path.join(pipeline_folder, "README.md")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        card = f.read()
    value = json.dumps(config["guidance_scale"])
    card = re.sub(
        r"^(\| `guidance_scale` \| `)[^`]*(` \|)", lambda m: m.group(1) + value + m.group(2), card, flags=re.M
    )
    preset = matching_preset(config)
    recipe = f"These options equal the `{preset}` preset." if preset else "These options match no named preset."
    card = re.sub(r"These options (?:equal the `[^`]+` preset|match no named preset)\.", recipe, card, count=1)
    atomic_write(path, card)
