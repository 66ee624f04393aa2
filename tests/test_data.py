"""Data loaders: built-in MNIST, CIFAR pickles (and a malicious one), .npz, bad input."""

import os
import pickle

import numpy as np
import pytest

from numeric.train.data import (
    DataError,
    load_cifar,
    load_data,
    load_npz,
    mnist_split,
    nested_subsets,
)


@pytest.fixture(scope="module")
def mnist():
    return mnist_split()


def test_mnist_split(mnist):
    assert mnist.train_images.shape == (4000, 1, 28, 28)
    assert mnist.test_images.shape == (1000, 1, 28, 28)
    assert np.bincount(mnist.test_labels).tolist() == [100] * 10
    assert mnist.train_images.dtype == np.uint8 and mnist.classes == 10


def test_nested_balanced_subsets(mnist):
    order = nested_subsets(mnist.train_labels, seed=3)
    assert sorted(order.tolist()) == list(range(4000))
    for n in (250, 500, 1000):
        counts = np.bincount(mnist.train_labels[order[:n]], minlength=10)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(order, nested_subsets(mnist.train_labels, seed=3))
    assert not np.array_equal(order, nested_subsets(mnist.train_labels, seed=4))


def _write_cifar10(folder, n=6, side=8):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "test_batch"):
        batch = {b"data": rng.integers(0, 256, (n, 3 * side * side), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)


def test_cifar10_layout(tmp_path):
    _write_cifar10(tmp_path / "c10")
    split = load_data(tmp_path / "c10")
    assert split.name == "cifar-10" and split.train_images.shape == (12, 3, 8, 8)
    assert split.test_images.shape == (6, 3, 8, 8) and split.classes == 10


def test_cifar100_layout(tmp_path):
    folder = tmp_path / "c100"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("train", "test"):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3 * 16 * 16), dtype=np.uint8),
                         b"fine_labels": [0, 5, 99, 3]}, f)
    split = load_cifar(folder)
    assert split.name == "cifar-100" and split.classes == 100
    assert split.train_images.shape == (4, 3, 16, 16)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_code_execution_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_cifar10(tmp_path / "evil")
    with open(tmp_path / "evil" / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Payload(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os)\.system"):
        load_cifar(tmp_path / "evil")
    assert not (tmp_path / "pwned").exists()


def test_corrupt_pickle(tmp_path):
    _write_cifar10(tmp_path / "bad")
    (tmp_path / "bad" / "test_batch").write_bytes(b"\x80\x02not a pickle at all")
    with pytest.raises(DataError, match="not a readable CIFAR pickle"):
        load_cifar(tmp_path / "bad")


def test_npz_variants(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (10, 12, 12, 3), dtype=np.uint8)  # channel-last
    np.savez(tmp_path / "a.npz", x_train=x[:8], y_train=np.arange(8) % 3, x_test=x[8:],
             y_test=np.array([0, 2]))
    split = load_npz(tmp_path / "a.npz")
    assert split.train_images.shape == (8, 3, 12, 12) and split.classes == 3
    np.savez(tmp_path / "b.npz", images=x[..., 0], labels=np.arange(10) % 2)
    assert load_data(tmp_path / "b.npz").test_images.shape == (2, 1, 12, 12)
    np.savez(tmp_path / "c.npz", images=x.astype(np.float32), labels=np.arange(10))
    with pytest.raises(DataError, match="must be uint8"):
        load_npz(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", stuff=np.zeros(3))
    with pytest.raises(DataError, match="expected arrays x_train"):
        load_npz(tmp_path / "d.npz")


def test_unknown_format_and_patch_size(tmp_path):
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(DataError, match="unknown data format"):
        load_data(tmp_path / "data.csv")
    _write_cifar10(tmp_path / "c10", side=10)
    with pytest.raises(DataError, match="not a multiple of patch_size=4"):
        load_data(tmp_path / "c10").check_patch_size(4)
