"""`train-unet` / `train-classifier`: resumable Accelerate training (rerun the same command to resume)."""

import json

from ..training import TrainConfig, train_classifier, train_unet

DEFAULTS = {
    "train-unet": dict(max_steps=4000, learning_rate=1e-3, warmup_steps=200, weight_decay=0.0, batch_size=64),
    "train-classifier": dict(max_steps=3000, learning_rate=2e-3, warmup_steps=100, weight_decay=0.05, batch_size=64),
}


def add_arguments(p, name):
    d = DEFAULTS[name]
    p.add_argument("--output-dir", required=True, help="checkpoints, logs and the exported model go here")
    p.add_argument("--dataset", default="mnist5k", help="embedded name, local imagefolder or Hub id")
    p.add_argument("--max-steps", type=int, default=d["max_steps"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--learning-rate", type=float, default=d["learning_rate"])
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--warmup-steps", type=int, default=d["warmup_steps"])
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="{}", help="JSON overrides of the model config")


def run(args):
    try:
        model = json.loads(args.model)
    except json.JSONDecodeError as error:
        raise ValueError(f"--model must be a JSON object: {error}") from None
    config = TrainConfig(
        output_dir=args.output_dir,
        dataset=args.dataset,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        model=model,
    )
    (train_unet if args.command == "train-unet" else train_classifier)(config)
