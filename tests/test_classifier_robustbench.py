"""RobustBenchClassifier: RobustBench's CIFAR WideResNets (key names, structure), conversion and saving.

The structure and key names are proved against a second, independent forward pass written here with
torch.nn.functional only, reading weights from the state dict by RobustBench's key names
(robustbench/model_zoo/architectures/wide_resnet.py and dm_wide_resnet.py).
"""

import argparse
import json
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_unet

import mimic_diffusers.classifier_robustbench  # noqa: F401  (in sys.modules before any pipeline loading)
from mimic_diffusers import MimicDiffusionPipeline, MimicDiffusionScheduler
from mimic_diffusers.classifier_robustbench import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    RobustBenchClassifier,
)


class Recording(dict):
    """A state dict that remembers which keys the reference forward read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def randomize(classifier, seed=0):
    """Random weights AND BatchNorm statistics, so every tensor matters to the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in classifier.model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            is_bn_scale = name.endswith(("bn1.weight", "bn2.weight")) or ("batchnorm" in name and "weight" in name)
            if is_bn_scale or name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 4
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return classifier.eval()


def bn(x, sd, prefix):
    return F.batch_norm(
        x,
        sd[f"{prefix}.running_mean"],
        sd[f"{prefix}.running_var"],
        sd[f"{prefix}.weight"],
        sd[f"{prefix}.bias"],
        training=False,
        eps=1e-5,
    )


def classic_reference(sd, x):
    """TRADES/RobustBench WideResNet: pre-activation blocks, 1x1 convShortcut on the activated input."""
    out = F.conv2d(x, sd["conv1.weight"], padding=1)
    for stage, stride in (("block1", 1), ("block2", 2), ("block3", 2)):
        i = 0
        while f"{stage}.layer.{i}.conv1.weight" in sd:
            p, s = f"{stage}.layer.{i}", stride if i == 0 else 1
            act = F.relu(bn(out, sd, f"{p}.bn1"))
            h = F.conv2d(act, sd[f"{p}.conv1.weight"], stride=s, padding=1)
            h = F.conv2d(F.relu(bn(h, sd, f"{p}.bn2")), sd[f"{p}.conv2.weight"], padding=1)
            has_shortcut = f"{p}.convShortcut.weight" in sd
            out = (F.conv2d(act, sd[f"{p}.convShortcut.weight"], stride=s) if has_shortcut else out) + h
            i += 1
    out = F.relu(bn(out, sd, "bn1")).mean(dim=(2, 3))
    return F.linear(out, sd["fc.weight"], sd["fc.bias"])


def dm_reference(sd, x, mean, std):
    """DeepMind WideResNet: normalise inside, Swish, TF-'SAME' padding (0, 1) on strided convs."""
    swish = lambda t: t * torch.sigmoid(t)  # noqa: E731
    out = (x - torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)) / torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    out = F.conv2d(out, sd["init_conv.weight"], padding=1)
    for group, stride in enumerate((1, 2, 2)):
        i = 0
        while f"layer.{group}.block.{i}.conv_0.weight" in sd:
            p, s = f"layer.{group}.block.{i}", stride if i == 0 else 1
            act = swish(bn(out, sd, f"{p}.batchnorm_0"))
            h = F.conv2d(F.pad(act, (1, 1, 1, 1) if s == 1 else (0, 1, 0, 1)), sd[f"{p}.conv_0.weight"], stride=s)
            h = F.conv2d(swish(bn(h, sd, f"{p}.batchnorm_1")), sd[f"{p}.conv_1.weight"], padding=1)
            has_shortcut = f"{p}.shortcut.weight" in sd
            out = (F.conv2d(act, sd[f"{p}.shortcut.weight"], stride=s) if has_shortcut else out) + h
            i += 1
    out = swish(bn(out, sd, "batchnorm")).mean(dim=(2, 3))
    return F.linear(out, sd["logits.weight"], sd["logits.bias"])


def small(architecture="wrn-28-10", **kwargs):
    torch.manual_seed(0)
    return RobustBenchClassifier(architecture=architecture, depth=10, width=2, **kwargs).eval()


def images(n=2, seed=1, dtype=torch.float32):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_all_keys_read(sd):
    assert {k for k in sd.read if not k.endswith("num_batches_tracked")} == {
        k for k in sd if not k.endswith("num_batches_tracked")
    }


@pytest.mark.parametrize(
    "architecture, mean, std",
    [
        ("wrn-28-10", None, None),  # RobustBench "Standard": raw [0, 1] input
        ("wrn-28-10-sub", None, None),
        ("wrn-70-16-classic", CIFAR10_MEAN, CIFAR10_STD),  # DiffPure's WRN-70-16: normalisation in the component
    ],
)
def test_classic_wrn_matches_functional_reference(architecture, mean, std):
    clf = randomize(small(architecture, mean=mean, std=std)).double()
    sd = Recording(clf.model.state_dict())
    # RobustBench's names, including the shortcut that exists only where the width changes
    for key in (
        "conv1.weight",
        "block1.layer.0.convShortcut.weight",
        "block2.layer.0.bn1.running_var",
        "block3.layer.0.conv2.weight",
        "bn1.num_batches_tracked",
        "fc.weight",
        "fc.bias",
    ):
        assert key in sd, key
    assert ("sub_block1.layer.0.conv1.weight" in sd) == architecture.endswith("-sub")
    assert all(key.startswith("model.") for key in clf.state_dict())
    x = images(dtype=torch.float64)
    normalised = (
        x
        if mean is None
        else (x - torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1))
        / torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    )
    torch.testing.assert_close(clf(x), classic_reference(sd, normalised))
    sd.read |= {k for k in sd if k.startswith("sub_block1.")}  # unused in forward, as in RobustBench
    assert_all_keys_read(sd)


@pytest.mark.parametrize(
    "dataset, num_classes, mean, std",
    [("cifar10", 10, CIFAR10_MEAN, CIFAR10_STD), ("cifar100", 100, CIFAR100_MEAN, CIFAR100_STD)],
)
def test_dm_wrn_matches_functional_reference(dataset, num_classes, mean, std):
    clf = randomize(small("wrn-70-16", dataset=dataset, num_classes=num_classes)).double()
    sd = Recording(clf.model.state_dict())
    for key in (
        "init_conv.weight",
        "layer.0.block.0.shortcut.weight",
        "layer.1.block.0.batchnorm_0.running_mean",
        "layer.2.block.0.conv_1.weight",
        "batchnorm.bias",
        "logits.weight",
        "logits.bias",
    ):
        assert key in sd, key
    assert "mean" not in sd and "std" not in sd  # non-persistent, as in RobustBench: checkpoints lack them
    x = images(dtype=torch.float64)
    logits = clf(x)
    assert logits.shape == (2, num_classes)
    torch.testing.assert_close(logits, dm_reference(sd, x, mean, std))
    assert_all_keys_read(sd)


def test_full_size_parameter_counts():
    with torch.device("meta"):  # shapes only: no 1 GB of weights to initialise
        counts = {a: sum(p.numel() for p in RobustBenchClassifier(a).parameters()) for a in ("wrn-28-10", "wrn-70-16")}
    assert counts == {"wrn-28-10": 36_479_194, "wrn-70-16": 266_796_506}  # ~36.5M and ~267M


@pytest.mark.parametrize(
    "architecture, options",
    [("wrn-28-10", {}), ("wrn-70-16", {}), ("wrn-28-10", {"mean": CIFAR10_MEAN, "std": CIFAR10_STD})],
)
def test_save_pretrained_round_trip_is_safetensors(tmp_path, architecture, options):
    clf = randomize(small(architecture, robustbench_name="Standard", threat_model="L2", **options))
    clf.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "diffusion_pytorch_model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["architecture"], config["robustbench_name"], config["dataset"], config["threat_model"]) == (
        architecture,
        "Standard",
        "cifar10",
        "L2",
    )
    loaded = RobustBenchClassifier.from_pretrained(tmp_path, use_safetensors=True).eval()
    x = images()
    torch.testing.assert_close(loaded(x), clf(x))


def robustbench_style_state_dict(clf):
    return {f"module.{key}": value.clone() for key, value in clf.model.state_dict().items()}


@pytest.mark.parametrize(
    "wrap", [lambda sd: sd, lambda sd: {"state_dict": sd, "epoch": 200}, lambda sd: {"model_state_dict": sd}]
)
@pytest.mark.parametrize("architecture", ["wrn-28-10", "wrn-70-16"])
def test_from_checkpoint_converts_robustbench_files(tmp_path, wrap, architecture):
    clf = randomize(small(architecture))
    torch.save(wrap(robustbench_style_state_dict(clf)), tmp_path / "ckpt.pt")
    converted = RobustBenchClassifier.from_checkpoint(
        tmp_path / "ckpt.pt", architecture, robustbench_name="Standard", depth=10, width=2
    )
    assert converted.config.robustbench_name == "Standard" and not converted.training
    x = images()
    torch.testing.assert_close(converted(x), clf(x))


def test_from_checkpoint_errors(tmp_path):
    sd = robustbench_style_state_dict(small())
    sd["module.fc.weights"] = sd.pop("module.fc.weight")
    torch.save(sd, tmp_path / "renamed.pt")
    with pytest.raises(
        ValueError,
        match=r"architecture='wrn-28-10'.*1 missing keys \['fc.weight'\].*"
        r"1 unexpected keys \['fc.weights'\]",
    ):
        RobustBenchClassifier.from_checkpoint(tmp_path / "renamed.pt", "wrn-28-10", depth=10, width=2)
    with pytest.raises(ValueError, match="does not fit architecture='wrn-28-10'"):  # right names, wrong shapes
        torch.save(robustbench_style_state_dict(small(num_classes=100)), tmp_path / "c100.pt")
        RobustBenchClassifier.from_checkpoint(tmp_path / "c100.pt", "wrn-28-10", depth=10, width=2)
    with pytest.raises(ValueError, match="weights_only"):  # pickled objects are refused, never unpickled
        torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, tmp_path / "args.pt")
        RobustBenchClassifier.from_checkpoint(tmp_path / "args.pt", "wrn-28-10")
    with pytest.raises(FileNotFoundError, match="path=.*nowhere.pt"):
        RobustBenchClassifier.from_checkpoint(tmp_path / "nowhere.pt", "wrn-28-10")


@pytest.mark.parametrize("architecture", ["wrn-28-10", "wrn-70-16"])
def test_input_gradients_flow(architecture):
    clf = small(architecture)
    x = images().requires_grad_(True)
    F.cross_entropy(clf(x), torch.tensor([3, 7])).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_unknown_choices_are_named():
    with pytest.raises(
        ValueError,
        match=r"architecture='wrn-99-1' is unknown; choose one of \[.*'wrn-28-10'.*"
        r"'wrn-70-16'",
    ):
        RobustBenchClassifier(architecture="wrn-99-1")
    with pytest.raises(ValueError, match="dataset='imagenet'.*cifar100"):
        RobustBenchClassifier(dataset="imagenet")
    with pytest.raises(ValueError, match="threat_model='Linfinity'.*corruptions"):
        RobustBenchClassifier(threat_model="Linfinity")


def test_attaches_to_a_pipeline_and_round_trips(tmp_path):
    clf = randomize(small("wrn-70-16", robustbench_name="Rebuffi2021Fixing_70_16_cutmix_extra"))
    pipe = MimicDiffusionPipeline(
        unet=tiny_unet(channels=3, size=32), scheduler=MimicDiffusionScheduler(), classifier=clf
    )
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["classifier"] == ["mimic_diffusers.classifier_robustbench", "RobustBenchClassifier"]
    loaded = MimicDiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.classifier, RobustBenchClassifier)
    assert loaded.classifier.config.robustbench_name == "Rebuffi2021Fixing_70_16_cutmix_extra"
    x = images()
    torch.testing.assert_close(loaded.classify(x), pipe.classify(x))
