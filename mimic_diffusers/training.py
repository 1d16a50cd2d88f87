"""Resumable Accelerate training of the two models a pipeline needs: the DDPM UNet and the classifier.

Both loops are step based: the batch of step k is a pure function of (seed, k), so a run killed at any
point resumes from its last `save_state` checkpoint and continues exactly where it was, across as
many sittings as needed. EMA weights (diffusers `EMAModel`) are checkpointed with the rest, and so is
the loss window of the next log record; records past the checkpoint are dropped on resume, so the log
of a resumed run equals that of an uninterrupted one (tests/test_training_resume.py kills runs to check).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .reports import atomic_write


@dataclass
class TrainConfig:
    output_dir: str
    dataset: str = "mnist5k"
    max_steps: int = 8000
    batch_size: int = 64
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    gradient_accumulation_steps: int = 1
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 50
    ema_decay: float = 0.999
    seed: int = 0
    cpu: bool = False
    mixed_precision: str = "no"
    model: dict = field(default_factory=dict)

    def validate(self):
        for name in ("max_steps", "batch_size", "checkpoint_every", "gradient_accumulation_steps", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        return self


DEFAULT_UNET = dict(
    sample_size=28,
    in_channels=1,
    out_channels=1,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D",) * 3,
    up_block_types=("UpBlock2D",) * 3,
    norm_num_groups=8,
)
DEFAULT_CLASSIFIER = dict(
    model_name="resnet10t", num_classes=10, in_chans=1, image_size=28, model_kwargs={"channels": [32, 64, 128, 256]}
)


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the batch used at `step`: epochs are seeded permutations, so resume is exact."""
    per_epoch = n // batch_size
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return perm[k * batch_size : (k + 1) * batch_size]


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (zero fill): the classifier's augmentation."""
    b, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def _last_checkpoint(output_dir: str) -> Tuple[Optional[str], int]:
    root = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(root):
        return None, 0
    steps = [
        int(m.group(1))
        for d in os.listdir(root)
        if (m := re.fullmatch(r"step-(\d+)", d)) and os.path.exists(os.path.join(root, d, "complete"))
    ]
    if not steps:
        return None, 0
    return os.path.join(root, f"step-{max(steps)}"), max(steps)


LOSS_WINDOW = "loss_window.json"


def _load_loss_window(checkpoint: Optional[str]) -> list:
    path = os.path.join(checkpoint, LOSS_WINDOW) if checkpoint else None
    if path is None or not os.path.exists(path):  # no checkpoint, or one written before the window was saved
        return []
    with open(path) as f:
        return json.load(f)


def _truncate_log(log_path: str, step: int):
    """Drop log records past `step` (and a line cut by a kill): the resumed run redoes and relogs them."""
    if not os.path.exists(log_path):
        return
    with open(log_path) as f:
        kept = [line for line in f if line.endswith("\n") and json.loads(line)["step"] <= step]
    atomic_write(log_path, "".join(kept))  # a kill here leaves the old log or the new one, never half


def _save_checkpoint(accelerator, output_dir: str, step: int, keep: int, loss_window: list):
    root = os.path.join(output_dir, "checkpoints")
    path = os.path.join(root, f"step-{step}")
    accelerator.save_state(path)
    if accelerator.is_main_process:
        # The losses since the last log record, so the first record after a resume averages the same steps.
        with open(os.path.join(path, LOSS_WINDOW), "w") as f:
            json.dump(loss_window, f)
        # The marker is written last: a checkpoint killed mid-write is never resumed from.
        with open(os.path.join(path, "complete"), "w") as f:
            f.write(str(step))
        done = sorted(int(d.split("-")[1]) for d in os.listdir(root) if d.startswith("step-"))
        for old in done[:-keep]:
            shutil.rmtree(os.path.join(root, f"step-{old}"), ignore_errors=True)


def _train(config: TrainConfig, model, loss_fn, export_fn):
    """The shared loop: AdamW + warmup/cosine, grad accumulation, EMA, checkpoints, resume, logs."""
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    os.makedirs(config.output_dir, exist_ok=True)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        cpu=config.cpu,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    def lr_lambda(step):
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=config.ema_decay)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)

    checkpoint, start = _last_checkpoint(config.output_dir)
    if checkpoint is not None:
        accelerator.load_state(checkpoint)
        accelerator.print(f"resumed from {checkpoint} (step {start})")
    with open(os.path.join(config.output_dir, "train_config.json"), "w") as f:
        json.dump(asdict(config), f, indent=1)
    log_path = os.path.join(config.output_dir, "train_log.jsonl")
    if accelerator.is_main_process:
        _truncate_log(log_path, start)
    bar = tqdm(
        range(start, config.max_steps),
        initial=start,
        total=config.max_steps,
        disable=not accelerator.is_local_main_process,
        desc="train",
    )
    running = _load_loss_window(checkpoint)
    for step in bar:
        model.train()
        with accelerator.accumulate(model):
            loss = loss_fn(model, step, accelerator.device)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        if accelerator.sync_gradients:
            ema.step(accelerator.unwrap_model(model).parameters())
        running.append(loss.detach().item())
        if (step + 1) % config.log_every == 0 and accelerator.is_main_process:
            record = {"step": step + 1, "loss": sum(running) / len(running), "lr": scheduler.get_last_lr()[0]}
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            running = []
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.max_steps:
            _save_checkpoint(accelerator, config.output_dir, step + 1, config.keep_checkpoints, running)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        ema.store(final.parameters())
        ema.copy_to(final.parameters())
        export_fn(final)
        ema.restore(final.parameters())
    return accelerator.unwrap_model(model)


def _train_images(config: TrainConfig, channels: int):
    from .data import load_image_dataset, to_tensors

    return to_tensors(load_image_dataset(config.dataset, split="train"), channels=channels)


def train_unet(config: TrainConfig):
    """Train a DDPM `UNet2DModel` (epsilon prediction, 1000-step linear schedule) on the train split."""
    config.validate()  # before anything is imported or built
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(config.seed)  # the initial weights, too, are a function of the seed
    unet = UNet2DModel(**{**DEFAULT_UNET, **config.model})
    images, _ = _train_images(config, unet.config.in_channels)
    images = images * 2 - 1  # the UNet works in [-1, 1]
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")

    def loss_fn(model, step, device):
        idx = batch_indices(step, len(images), config.batch_size, config.seed)
        g = torch.Generator().manual_seed(config.seed * 7919 + step)
        x0 = images[idx]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (len(idx),), generator=g)
        xt = noise_scheduler.add_noise(x0, noise, t)
        return F.mse_loss(model(xt.to(device), t.to(device)).sample, noise.to(device))

    return _train(config, unet, loss_fn, lambda m: m.save_pretrained(os.path.join(config.output_dir, "unet")))


def train_classifier(config: TrainConfig):
    """Train a timm classifier (random-shift augmentation, cross entropy) on the train split."""
    config.validate()  # before anything is imported or built
    from .classifier import TimmClassifier

    torch.manual_seed(config.seed)  # the initial weights, too, are a function of the seed
    classifier = TimmClassifier(**{**DEFAULT_CLASSIFIER, **config.model})
    images, labels = _train_images(config, classifier.config.in_chans)

    def loss_fn(model, step, device):
        idx = batch_indices(step, len(images), config.batch_size, config.seed)
        g = torch.Generator().manual_seed(config.seed * 7919 + step)
        x = random_shift(images[idx], 2, g)
        return F.cross_entropy(model(x.to(device)), labels[idx].to(device), label_smoothing=0.05)

    return _train(
        config, classifier, loss_fn, lambda m: m.save_pretrained(os.path.join(config.output_dir, "classifier"))
    )
