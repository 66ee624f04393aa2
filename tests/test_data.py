"""Data loaders: built-in MNIST, CIFAR pickles (and a malicious one), .npz, bad input."""

import os
import pickle

import numpy as np
import pytest

from vitconv.numeric.train.data import (
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


def _npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.mark.parametrize(("name", "make", "match"), [
    ("test images of another size",
     lambda rng: (rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), np.arange(8) % 2,
                  rng.integers(0, 256, (4, 32, 32), dtype=np.uint8), np.arange(4) % 2),
     r"training images are \(1, 28, 28\) .* but test images \(1, 32, 32\)"),
    ("a label of 1e9",
     lambda rng: (rng.integers(0, 256, (8, 8, 8), dtype=np.uint8),
                  np.array([0, 1, 0, 1, 0, 1, 0, 10**9]),
                  rng.integers(0, 256, (2, 8, 8), dtype=np.uint8), np.array([0, 1])),
     r"1000000001 classes; expected 2 to 1000"),
    ("an empty training set",
     lambda rng: (np.zeros((0, 8, 8), dtype=np.uint8), np.zeros(0, dtype=np.int64),
                  rng.integers(0, 256, (2, 8, 8), dtype=np.uint8), np.array([0, 1])),
     r"the training or test set is empty"),
])
def test_npz_that_cannot_be_used_is_refused_by_name(tmp_path, name, make, match):
    path = _npz(tmp_path / "x.npz", *make(np.random.default_rng(0)))
    with pytest.raises(DataError, match=match):
        load_npz(path)


def test_rgba_images_are_channels_last(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (6, 32, 32, 4), dtype=np.uint8)
    split = load_npz(_npz(tmp_path / "rgba.npz", x[:4], np.array([0, 1, 0, 1]), x[4:],
                          np.array([0, 1])))
    assert split.image_shape == (4, 32, 32)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", None])
def test_truncated_or_empty_npz_gives_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:  # a real archive cut in half
        rng = np.random.default_rng(4)
        _npz(path, rng.integers(0, 256, (8, 8, 8), dtype=np.uint8), np.arange(8) % 2,
             rng.integers(0, 256, (2, 8, 8), dtype=np.uint8), np.array([0, 1]))
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"not a readable \.npz without pickles"):
        load_npz(path)


def test_a_preallocating_pickle_is_refused(tmp_path):
    """A pickle that asks numpy for a 10^12-element array before any data arrives."""
    import numpy.core.multiarray as multiarray  # noqa: F401 - the name the pickle uses

    bomb = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01"
            b"\x8a\x06\x00\x10\xa5\xd4\xe8\x00\x85q\x02c_codecs\nencode\nq\x03X\x01\x00\x00"
            b"\x00bq\x04X\x06\x00\x00\x00latin1q\x05\x86q\x06Rq\x07\x87q\x08Rq\t.")
    _write_cifar10(tmp_path / "bomb")
    (tmp_path / "bomb" / "test_batch").write_bytes(bomb)
    with pytest.raises(DataError, match=r"refusing an array pre-allocated with shape"):
        load_cifar(tmp_path / "bomb")


def test_split_digest_is_content_not_name(mnist):
    import dataclasses

    renamed = dataclasses.replace(mnist, name="another-name")
    changed = dataclasses.replace(mnist, test_labels=mnist.test_labels[::-1].copy())
    assert renamed.digest == mnist.digest != changed.digest


# --- IDX files (MNIST layout; Fashion-MNIST from Debian) ------------------------------------

def _idx(array, type_code=0x08, dims=None):
    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    dims = array.ndim if dims is None else dims
    header = bytes([0, 0, type_code, dims]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def _write_idx_folder(folder, n_train=20, n_test=10, side=4):
    import gzip

    import numpy as np

    rng = np.random.default_rng(0)
    parts = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side)),
             "train-labels-idx1-ubyte": np.arange(n_train) % 10,
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side)),
             "t10k-labels-idx1-ubyte": np.arange(n_test) % 10}
    for stem, array in parts.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx(array)))
    return parts


def test_an_idx_folder_loads_as_a_split(tmp_path):
    import numpy as np

    from vitconv.numeric.train.data import load_data

    parts = _write_idx_folder(tmp_path)
    split = load_data(tmp_path)
    assert split.train_images.shape == (20, 1, 4, 4) and split.classes == 10
    assert np.array_equal(split.test_images[:, 0], parts["t10k-images-idx3-ubyte"])
    assert np.array_equal(split.train_labels, parts["train-labels-idx1-ubyte"])


@pytest.mark.parametrize("content, rule", [
    (b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc", "two zero bytes"),
    (b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc", "only unsigned bytes"),
    (b"\x00\x00\x08\x02" + (3).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"abc",
     "2 dimensions, expected 1"),
    (b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"abc", "truncated or padded"),
    (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"abc", "truncated or padded"),
    (b"\x00\x00\x08\x01" + (0).to_bytes(4, "big"), "out of range"),
    (b"\x00\x00\x08\x01\x00", "cut short"),
])
def test_malformed_idx_files_are_refused_by_name(tmp_path, content, rule):
    from vitconv.numeric.train.data import DataError, read_idx

    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rule):
        read_idx(path, 1)


def test_images_and_labels_must_agree_in_number(tmp_path):
    import gzip

    import numpy as np

    from vitconv.numeric.train.data import DataError, load_idx_split

    _write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros(9))))
    with pytest.raises(DataError, match="10 test images but 9 labels"):
        load_idx_split(tmp_path)


def test_fashion_mnist_from_the_debian_package():
    from vitconv.numeric.train.data import FASHION_MNIST_DIR, DataError, load_data

    if not FASHION_MNIST_DIR.is_dir():
        with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
            load_data("fashion-mnist")
        pytest.skip("dataset-fashion-mnist is not installed")
    split = load_data("fashion-mnist")
    assert split.train_images.shape == (60000, 1, 28, 28)
    assert split.test_images.shape == (10000, 1, 28, 28)
    assert split.classes == 10


def test_default_data_is_fashion_mnist_when_installed_else_mnist_with_one_line(monkeypatch,
                                                                               tmp_path):
    import vitconv.numeric.train.data as data

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)
    assert data.default_source() == ("fashion-mnist", None)
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "missing")
    source, note = data.default_source()
    assert source is None and "\n" not in note
    assert "apt-get install dataset-fashion-mnist" in note and "MNIST subset" in note
