"""RobustBench's CIFAR WideResNets as a diffusers classifier component, without the robustbench package.

Why: `robustbench` 1.1.1 pins timm==1.0.9 and gdown==5.1.0, so it cannot be a dependency. The two WideResNet
families most of its CIFAR zoo uses are rewritten here with the SAME parameter/buffer names, so its checkpoints
load without renaming. Checked against RobustBench/robustbench@78fcc9e: `robustbench/model_zoo/architectures/
wide_resnet.py` and `dm_wide_resnet.py`, `model_zoo/cifar10.py` / `cifar100.py`, `utils.py` (load_model).

`ARCHITECTURES` name -> RobustBench models it serves (CIFAR-10 Linf unless said otherwise):

* "wrn-28-10": classic `WideResNet(depth=28, widen_factor=10)`: "Standard" (CIFAR-10 Linf/L2/corruptions), the
  classifier of MimicDiffusion (psky1111/MimicDiffusion load_model.py) and of DiffPure's `cifar10-wideresnet-28-10`.
* "wrn-28-10-sub": the same plus unused `sub_block1` weights: Carmon2019Unlabeled, Sehwag2020Hydra,
  Wang2020Improving, Wu2020Adversarial_extra, Zhang2020Geometry, Sridhar2021Robust.
* "wrn-34-10": classic 34-10: e.g. Sehwag2021Proxy, Jia2022LAS-AT_34_10, Addepalli2022Efficient_WRN_34_10,
  Chen2021LTD_WRN34_10, Cui2023Decoupled_WRN-34-10, Chen2024Data_WRN_34_10.
* "wrn-70-16": DeepMind `DMWideResNet(depth=70, width=16, Swish)`, mean/std inside: Gowal2020Uncovering_70_16
  (_extra), Rebuffi2021Fixing_70_16_cutmix_ddpm/_extra, Gowal2021Improving_70_16_ddpm_100m, Pang2022Robustness_
  WRN70_16, Wang2023Better_WRN-70-16; L2: Gowal2020Uncovering(_extra), Rebuffi2021Fixing_70_16_cutmix_ddpm/_extra,
  Wang2023Better_WRN-70-16; corruptions: Rebuffi2021Fixing_70_16_cutmix_extra_Linf/_L2; CIFAR-100 Linf: Gowal2020
  Uncovering(_extra), Rebuffi2021Fixing_70_16_cutmix_ddpm, Pang2022Robustness_WRN70_16, Wang2023Better_WRN-70-16.
  DiffPure (NVlabs/DiffPure utils.py): `wrn-70-16-at0` = Gowal2021Improving_70_16_ddpm_100m, `wrn-70-16-at1` /
  `wrn-70-16-L2-at1` = Rebuffi2021Fixing_70_16_cutmix_extra (Linf / L2).
* "dm-wrn-28-10": `DMWideResNet(depth=28, width=10, Swish)`: Gowal2020Uncovering_28_10_extra, Rebuffi2021Fixing_
  28_10_cutmix_ddpm, Gowal2021Improving_28_10_ddpm_100m (DiffPure's wrn-28-10-at1/-at0), Pang2022Robustness_
  WRN28_10, Wang2023Better_WRN-28-10.
* "wrn-70-16-classic": classic 70-16: Jia2022LAS-AT_70_16; also DiffPure's paper WRN-70-16 (`cifar10-wrn-70-16-
  dropout`, classifiers/cifar10_resnet.py: dropout 0.3, a no-op in eval) with `mean=CIFAR10_MEAN, std=CIFAR10_STD`.
"""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (the loader looks it up here)
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def _stage(child: str, block, n: int, in_planes: int, out_planes: int, stride: int, *args) -> nn.Sequential:
    """`n` blocks (only the first changes width and stride) under one named child. RobustBench's NetworkBlock /
    _BlockGroup wrappers only add that name to the keys ("block1.layer.0..." / "layer.0.block.0...")."""
    blocks = [block(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, *args) for i in range(n)]
    return nn.Sequential(OrderedDict([(child, nn.Sequential(*blocks))]))


class BasicBlock(nn.Module):
    """Pre-activation WRN block (TRADES code). When the width changes, the activated input feeds the 1x1
    `convShortcut`; otherwise the raw input is the identity shortcut (which has no weights at all)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(in_planes), nn.ReLU()  # not in-place: safer for attack gradients
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(out_planes), nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate, self.equalInOut = drop_rate, in_planes == out_planes
        self.convShortcut = None if self.equalInOut else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(activated)))
        out = self.conv2(F.dropout(out, p=self.drop_rate, training=self.training) if self.drop_rate else out)
        return (x if self.equalInOut else self.convShortcut(activated)) + out


class WideResNet(nn.Module):
    """Classic CIFAR WideResNet (Zagoruyko & Komodakis) as RobustBench builds it; no input normalisation.
    `sub_block1` only adds the weights (unused in forward) that some zoo checkpoints carry, so they load strictly."""

    def __init__(
        self,
        depth: int = 28,
        num_classes: int = 10,
        widen_factor: int = 10,
        sub_block1: bool = False,
        drop_rate: float = 0.0,
        bias_last: bool = True,
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"depth={depth} must be 6n+4 (e.g. 28, 34, 70)")
        n, ch = (depth - 4) // 6, [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = _stage("layer", BasicBlock, n, ch[0], ch[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = _stage("layer", BasicBlock, n, ch[0], ch[1], 1, drop_rate)
        self.block2 = _stage("layer", BasicBlock, n, ch[1], ch[2], 2, drop_rate)
        self.block3 = _stage("layer", BasicBlock, n, ch[2], ch[3], 2, drop_rate)
        self.bn1, self.relu = nn.BatchNorm2d(ch[3]), nn.ReLU()
        self.fc = nn.Linear(ch[3], num_classes, bias=bias_last)
        self.nChannels = ch[3]
        for m in self.modules():  # RobustBench/TRADES init, so a freshly built net trains like theirs
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8)  # 32x32 CIFAR input -> 1x1
        return self.fc(out.flatten(1))  # flatten(1), not view(-1, C): a wrong input size errors, not reshapes


class _Block(nn.Module):
    """DeepMind WRN block: like `BasicBlock`, but the first conv pads by hand to mimic TF's `SAME`
    (asymmetric (0, 1) padding at stride 2), which gives other results than padding=1."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, activation_fn=nn.SiLU):
        super().__init__()
        self.batchnorm_0, self.relu_0 = nn.BatchNorm2d(in_planes), activation_fn()
        self.conv_0 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=0, bias=False)
        self.batchnorm_1, self.relu_1 = nn.BatchNorm2d(out_planes), activation_fn()
        self.conv_1 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.has_shortcut = in_planes != out_planes
        self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False) if self.has_shortcut else None
        self._pad = {1: (1, 1, 1, 1), 2: (0, 1, 0, 1)}[stride]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu_0(self.batchnorm_0(x))
        out = self.conv_1(self.relu_1(self.batchnorm_1(self.conv_0(F.pad(activated, self._pad)))))
        return (self.shortcut(activated) if self.has_shortcut else x) + out


class DMWideResNet(nn.Module):
    """DeepMind's WideResNet (Gowal et al. 2020, Rebuffi et al. 2021) as in RobustBench's `dm_wide_resnet.py`.
    Normalises [0, 1] input itself with non-persistent `mean`/`std` buffers (as there: not in checkpoints).
    Defaults are the zoo's: 70-16 with Swish (= SiLU, same values and gradient as RobustBench's autograd Swish)."""

    def __init__(
        self,
        num_classes: int = 10,
        depth: int = 70,
        width: int = 16,
        activation_fn=nn.SiLU,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        padding: int = 0,
        num_input_channels: int = 3,
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"depth={depth} must be 6n+4 (e.g. 28, 70)")
        self.register_buffer("mean", torch.tensor(mean).view(num_input_channels, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(num_input_channels, 1, 1), persistent=False)
        self.padding = padding
        n, ch = (depth - 4) // 6, [16, 16 * width, 32 * width, 64 * width]
        self.init_conv = nn.Conv2d(num_input_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(
            *[
                _stage("block", _Block, n, ch[i], ch[i + 1], stride, activation_fn)
                for i, stride in enumerate((1, 2, 2))
            ]
        )
        self.batchnorm, self.relu = nn.BatchNorm2d(ch[3]), activation_fn()
        self.logits = nn.Linear(ch[3], num_classes)
        self.num_channels = ch[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding > 0:
            x = F.pad(x, (self.padding,) * 4)
        out = self.layer(self.init_conv((x - self.mean) / self.std))
        out = F.avg_pool2d(self.relu(self.batchnorm(out)), 8)
        return self.logits(out.flatten(1))


# name -> (family, depth, width, sub_block1, default mean/std inside the component or None)
ARCHITECTURES = {
    "wrn-28-10": ("classic", 28, 10, False, None),
    "wrn-28-10-sub": ("classic", 28, 10, True, None),
    "wrn-34-10": ("classic", 34, 10, False, None),
    "wrn-70-16-classic": ("classic", 70, 16, False, None),
    "wrn-70-16": ("dm", 70, 16, False, "dataset"),
    "dm-wrn-28-10": ("dm", 28, 10, False, "dataset"),
}
DATASET_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}
THREAT_MODELS = ("Linf", "L2", "corruptions")
CHECKPOINT_WRAPPERS = ("state_dict", "model_state_dict", "model")
# Leading "module." (DataParallel) and "model." (RobustBench's loader strips it too); no WRN key starts so.
KEY_PREFIXES = re.compile(r"^(?:module\.|model\.)+")


class RobustBenchClassifier(ModelMixin, ConfigMixin):
    """A RobustBench CIFAR WideResNet taking (B, 3, 32, 32) images in [0, 1] and returning logits. Saved with a
    pipeline as safetensors + config.json, weights under `model.<RobustBench key>`. `depth`/`width` override the
    registry entry's size (small variants for tests or other checkpoints)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        architecture: str = "wrn-28-10",
        num_classes: int = 10,
        robustbench_name: Optional[str] = None,
        dataset: str = "cifar10",
        threat_model: str = "Linf",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        depth: Optional[int] = None,
        width: Optional[int] = None,
    ):
        super().__init__()
        for name, value, choices in (
            ("architecture", architecture, ARCHITECTURES),
            ("dataset", dataset, DATASET_STATS),
            ("threat_model", threat_model, THREAT_MODELS),
        ):
            if value not in choices:
                raise ValueError(f"{name}={value!r} is unknown; choose one of {list(choices)}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        family, default_depth, default_width, sub_block1, stats = ARCHITECTURES[architecture]
        depth, width = depth or default_depth, width or default_width
        mean, std = DATASET_STATS[dataset] if mean is None and stats == "dataset" else (mean, std)
        if mean is not None and (len(mean) != 3 or len(std) != 3):
            raise ValueError(f"mean and std need 3 values each, got {mean} and {std}")
        # Normalisation sits where RobustBench puts it (inside DMWideResNet), else here (non-persistent), so that
        # self.model's state dict is exactly the checkpoint's.
        self.register_buffer("input_mean", None, persistent=False)
        self.register_buffer("input_std", None, persistent=False)
        if family == "dm":
            self.model = DMWideResNet(num_classes, depth, width, nn.SiLU, mean, std)
        else:
            self.model = WideResNet(depth, num_classes, width, sub_block1=sub_block1)
            if mean is not None:
                self.input_mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
                self.input_std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_mean is not None:
            images = (images - self.input_mean) / self.input_std
        return self.model(images)

    @classmethod
    def from_checkpoint(
        cls,
        path,
        architecture: str,
        num_classes: int = 10,
        robustbench_name: Optional[str] = None,
        dataset: str = "cifar10",
        threat_model: str = "Linf",
        **config,
    ) -> "RobustBenchClassifier":
        """One-time conversion of a RobustBench checkpoint file (e.g. `models/cifar10/Linf/Standard.pt`), loaded
        with `weights_only=True` only (no pickled code runs): a bare state dict or one under "state_dict" /
        "model_state_dict" / "model", leading "module." / "model." stripped, loaded strictly. `config`: more
        `__init__` arguments (mean, std, depth, width). Then `save_pretrained(folder)` writes safetensors."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path={path!r}: no such checkpoint file")
        classifier = cls(
            architecture=architecture,
            num_classes=num_classes,
            robustbench_name=robustbench_name,
            dataset=dataset,
            threat_model=threat_model,
            **config,
        )
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{path!r} holds non-tensor objects, which weights_only=True refuses; in a trusted "
                "environment re-save just its state dict (torch.save(ckpt['state_dict'], ...))"
            ) from error
        for wrapper in CHECKPOINT_WRAPPERS:
            if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
                checkpoint = checkpoint[wrapper]
                break
        if not isinstance(checkpoint, dict):
            raise ValueError(f"{path!r} holds a {type(checkpoint).__name__}, not a state dict")
        state = {KEY_PREFIXES.sub("", key): value for key, value in checkpoint.items()}
        expected = set(classifier.model.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{path!r} does not match architecture={architecture!r}: {len(missing)} missing keys "
                f"{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
            )
        try:
            classifier.model.load_state_dict(state, strict=True)
        except RuntimeError as error:  # right names, wrong shapes (e.g. num_classes or width)
            raise ValueError(f"{path!r} does not fit architecture={architecture!r}: {error}") from error
        return classifier.eval()
