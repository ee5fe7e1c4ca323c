"""Datasets as tensors resident on the training device (uint8), with a seeded validation split.

MNIST and Fashion-MNIST: 28x28x1, 10 classes; training crops are +-2 px shifts (zero padded).
smallNORB: stereo pairs 2x96x96, 5 classes, resized to 48x48 at load time; random 32x32 crops
in training, the center crop at evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dse.config import DatasetConfig
from dse.data.formats import check_header, read_idx, read_norb
from dse.data.sources import locate
from dse.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    n_classes: int
    channels: int
    stored_size: int  # side of the images as kept on the device
    pad: int  # zero padding before the random training crop
    crop: int  # side of the model's input


INFO = {
    "mnist": DatasetInfo(n_classes=10, channels=1, stored_size=28, pad=2, crop=28),
    "fashion_mnist": DatasetInfo(n_classes=10, channels=1, stored_size=28, pad=2, crop=28),
    "smallnorb": DatasetInfo(n_classes=5, channels=2, stored_size=48, pad=0, crop=32),
}

NORB_SIDE = 96  # smallNORB's images as stored, before the resize to stored_size


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # [N, C, S, S] uint8
    labels: torch.Tensor  # [N] int64

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DeviceDataset:
    name: str
    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.info.channels, self.info.crop, self.info.crop)


def _check_pair(images: np.ndarray, labels: np.ndarray, paths: tuple[Path, Path], n_classes: int):
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{paths[0]}: {images.shape[0]} images but {paths[1]} has {labels.shape[0]} labels"
        )
    if images.shape[0] == 0:
        raise DataError(f"{paths[0]}: no images (0 samples)")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{paths[1]}: labels must be a list of integers in [0, {n_classes}), "
            f"found {labels.dtype.name} {list(labels.shape)}"
        )
    outside = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if outside.size:
        first = int(outside[0])
        raise DataError(
            f"{paths[1]}: label {labels[first]} of sample {first} is not in [0, {n_classes}) "
            f"({outside.size} labels outside it)"
        )


def _check_idx_images(path: Path, shape: tuple[int, ...], dtype: np.dtype, info: DatasetInfo):
    if len(shape) != 3 or shape[1:] != (info.stored_size,) * 2 or dtype != np.uint8:
        raise DataError(
            f"{path}: expected uint8 images of shape [N, {info.stored_size}, "
            f"{info.stored_size}], found {dtype.name} {list(shape)}"
        )


def _check_norb_images(path: Path, shape: tuple[int, ...], dtype: np.dtype):
    side = NORB_SIDE
    if len(shape) != 4 or shape[1:] != (2, side, side) or dtype != np.uint8:
        raise DataError(
            f"{path}: expected uint8 stereo pairs [N, 2, {side}, {side}], "
            f"found {dtype.name} {list(shape)}"
        )


def _read_idx_split(images_path: Path, labels_path: Path, info: DatasetInfo):
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_idx_images(images_path, images.shape, images.dtype, info)
    _check_pair(images, labels, (images_path, labels_path), info.n_classes)
    return images[:, None], labels.astype(np.int64)


def _read_norb_split(images_path: Path, labels_path: Path, info: DatasetInfo):
    images, labels = read_norb(images_path), read_norb(labels_path)
    _check_norb_images(images_path, images.shape, images.dtype)
    _check_pair(images, labels, (images_path, labels_path), info.n_classes)
    # Resize to 48x48 by area averaging (an exact 2x2 mean for the 96x96 originals).
    small = F.interpolate(
        torch.from_numpy(images.astype(np.float32)), size=info.stored_size, mode="area"
    )
    return small.round_().clamp_(0, 255).to(torch.uint8).numpy(), labels.astype(np.int64)


@lru_cache(maxsize=4)
def _read_arrays(name: str, files: tuple[tuple[str, Path], ...]):
    """(train_images, train_labels, test_images, test_labels) as numpy; cached per process."""
    paths = dict(files)
    reader = _read_norb_split if name == "smallnorb" else _read_idx_split
    info = INFO[name]
    train = reader(paths["train_images"], paths["train_labels"], info)
    test = reader(paths["test_images"], paths["test_labels"], info)
    return (*train, *test)


@dataclass(frozen=True)
class SplitSizes:
    """How many samples a dataset's files hold, and where."""

    train: int
    test: int
    train_images: Path
    test_images: Path

    def check(self, config: DatasetConfig, where: str | None = None) -> None:
        """The section's val_size, train_subset and test_subset fit these files, else a
        DataError naming the key, after `where` the section comes from when given (a space
        file's base, point or axis value). A subset larger than its split would silently be
        all of it, and the trial's stored config claim samples it never saw."""
        problem = self._problem(config)
        if problem:
            raise DataError(f"{where}: {problem}" if where else problem)

    def _problem(self, config: DatasetConfig) -> str | None:
        if config.val_size >= self.train:
            return (
                f"dataset.val_size: {config.val_size} leaves no training data ({self.train} "
                f"training samples in {self.train_images})"
            )
        return _subset_problem(
            "train_subset", config.train_subset, self.train - config.val_size, self.train_images
        ) or _subset_problem("test_subset", config.test_subset, self.test, self.test_images)


def check_files(name: str, data_dir: str | Path | None = None, whole: bool = False) -> SplitSizes:
    """Find the dataset's files and check them as `load_dataset` would, reading only the
    image headers (and the small label files), or, when `whole`, each gzipped image file
    through to its checksum: `dse run` calls it so before it writes anything, as a corrupt
    file would otherwise fail every trial. Returns how many samples they hold."""
    paths = locate(name, data_dir)
    info = INFO[name]
    kind, reader = ("norb", read_norb) if name == "smallnorb" else ("idx", read_idx)
    counts: dict[str, int] = {}
    for split in ("train", "test"):
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        shape, dtype = check_header(images_path, kind, whole)
        if kind == "idx":
            _check_idx_images(images_path, shape, dtype, info)
        else:
            _check_norb_images(images_path, shape, dtype)
        labels = reader(labels_path)
        _check_pair(np.empty((shape[0], 0)), labels, (images_path, labels_path), info.n_classes)
        counts[split] = shape[0]
    return SplitSizes(counts["train"], counts["test"], paths["train_images"], paths["test_images"])


def check_data(config: DatasetConfig, where: str, data_dir: str | Path | None = None) -> None:
    """The section's dataset files are there and its subsets fit them, else a DataError after
    `where` (the config file): `dse train` and `dse calibrate` call it before they start, as
    `load_dataset` would find it only once training is under way."""
    check_files(config.name, data_dir).check(config, where)


def load_dataset(
    config: DatasetConfig, device: torch.device | str = "cpu", data_dir: str | Path | None = None
) -> DeviceDataset:
    """Read the dataset, split off validation (seeded by split_seed), move it to the device.

    The result is cached per process (the last two): a worker running trial after trial on
    the same data and device keeps one copy instead of building a new one per trial.
    Training only reads these tensors.
    """
    files = tuple(sorted(locate(config.name, data_dir).items()))
    return _device_dataset(config, str(device), files)


def _subset_problem(key: str, wanted: int | None, available: int, path: Path) -> str | None:
    """A subset larger than the split would be silently the whole split, and the trial's
    stored config would claim samples it never saw."""
    if wanted is None or wanted <= available:
        return None
    left = " after dataset.val_size" if key == "train_subset" else ""
    return f"dataset.{key}: {wanted} is more than the {available} samples{left} in {path}"


@lru_cache(maxsize=2)
def _device_dataset(
    config: DatasetConfig, device: str, files: tuple[tuple[str, Path], ...]
) -> DeviceDataset:
    info = INFO[config.name]
    train_x, train_y, test_x, test_y = _read_arrays(config.name, files)
    n = len(train_y)
    source = dict(files)
    SplitSizes(n, len(test_y), source["train_images"], source["test_images"]).check(config)
    rng = np.random.default_rng(config.split_seed)
    order = rng.permutation(n)
    val_idx, train_idx = order[: config.val_size], order[config.val_size :]
    if config.train_subset is not None:
        train_idx = train_idx[: config.train_subset]
    test_idx = np.arange(len(test_y))
    if config.test_subset is not None:
        test_idx = rng.permutation(len(test_y))[: config.test_subset]

    def split(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
        idx = np.sort(idx)  # the order is the loader's job; sorted keeps memory access linear
        return Split(
            images=torch.from_numpy(np.ascontiguousarray(x[idx])).to(device),
            labels=torch.from_numpy(y[idx]).to(device),
        )

    return DeviceDataset(
        name=config.name,
        info=info,
        train=split(train_x, train_y, train_idx),
        val=split(train_x, train_y, val_idx),
        test=split(test_x, test_y, test_idx),
    )
