"""CyGen on images: the conv flow encoder's Jacobian and log-det, batch independence, one compatibility code path
for toys and images, downstream accuracy, and main_image.py end to end."""
import math

import pytest
import torch
from torch import nn
from torch.func import jacrev

import main_image
from evaluation.downstream import (BatchedClassifiers, DownstreamResult, batch_orders, downstream_accuracy,
                                   train_and_score, train_classifiers)
from models.decoders import GaussianDecoder
from models.image import image_decoder, image_encoder
from models.sylvester import HouseholderSylvesterEncoder
from models.tangents import linearize
from models.toy import toy_encoder
from objectives.cygen import compatibility_terms, exact_compatibility
from tests.scripts import read_metrics, run_script
from tests.test_cygen_objective import brute_force_mixed_hessians
from tests.test_data import write_tiny_svhn


@pytest.fixture(params=[(1, 28, 28), (3, 32, 32)], ids=["grayscale28", "colour32"])
def tiny_image_encoder(request):
    """The paper's conv bodies with a small latent (d_z = 3, 2 flows, 2 reflections), in float64."""
    torch.manual_seed(0)
    return request.param, image_encoder(request.param, z_dim=3, n_flows=2, n_householder=2).double()


def test_image_flow_jacobian_and_log_det_match_brute_force(tiny_image_encoder):
    shape, encoder = tiny_image_encoder
    x = torch.rand(2, *shape, dtype=torch.float64)
    e = torch.randn(2, 3, dtype=torch.float64)
    params = encoder.flow_params(x)
    sample = encoder.transform(params, e[None])
    jacobian = encoder.jacobian(params, sample.tanh_grad[0])
    for b in range(2):
        row = encoder.flow_params(x[b:b + 1])
        brute = jacrev(lambda e_row: encoder.transform(row, e_row[None, None]).z[0, 0])(e[b])
        assert torch.allclose(jacobian[b], brute, atol=1e-10)
        log_normal = -0.5 * e[b].pow(2).sum() - 1.5 * math.log(2 * math.pi)
        assert torch.isclose(sample.log_q[0, b], log_normal - torch.linalg.slogdet(brute)[1], atol=1e-10)


@pytest.mark.parametrize("body, x_shape", [
    (image_encoder((1, 28, 28)).body, (1, 28, 28)), (image_encoder((3, 32, 32)).body, (3, 32, 32)),
    (toy_encoder().body, (2,)), (nn.Sequential(nn.Linear(2, 4), nn.Softplus(), nn.Linear(4, 3)), (2,))],
    ids=["grayscale28", "colour32", "toy", "forward_ad_fallback"])
def test_layerwise_tangents_equal_torch_func_jvp(body, x_shape):
    torch.manual_seed(0)
    body = body.double()
    x, x_t = torch.randn(3, *x_shape, dtype=torch.float64), torch.randn(3, *x_shape, dtype=torch.float64)
    output, tangent = linearize(body, x, x_t)
    expected_output, expected_tangent = torch.func.jvp(body, (x,), (x_t,))
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(tangent, expected_tangent)
    assert tangent.abs().max() > 1e-3  # a tangent that vanished would pass the comparison vacuously


def test_image_encoder_rows_are_independent(tiny_image_encoder):
    shape, encoder = tiny_image_encoder
    x = torch.rand(4, *shape, dtype=torch.float64)
    e = torch.randn(1, 4, 3, dtype=torch.float64)
    z = encoder.transform(encoder.flow_params(x), e).z
    x_changed = x.clone()
    x_changed[1:] = torch.rand_like(x[1:])
    assert torch.equal(encoder.transform(encoder.flow_params(x_changed), e).z[0, 0], z[0, 0])
    one_by_one = torch.cat([encoder.transform(encoder.flow_params(x[b:b + 1]), e[:, b:b + 1]).z for b in range(4)], 1)
    assert torch.allclose(one_by_one, z, atol=1e-12)


class PixelPair(nn.Module):
    """A 2-pixel 'image' [B, 1, 1, 2] seen through a 1x1 conv then flattened, or the same weights as a Linear on
    [B, 2]: the toy and the image code paths on one network."""

    def __init__(self, as_image):
        super().__init__()
        self.as_image = as_image
        self.conv = nn.Conv2d(1, 4, 1)

    def forward(self, x):
        if self.as_image:
            return torch.tanh(self.conv(x)).flatten(1)  # [B, 4 channels x 2 pixels], channel-major
        w, b = self.conv.weight.view(4, 1), self.conv.bias
        return torch.tanh(x.unsqueeze(1) * w + b.unsqueeze(-1)).flatten(1)


class ImageMean(nn.Module):
    def __init__(self, as_image):
        super().__init__()
        self.as_image, self.linear = as_image, nn.Linear(2, 2)

    def forward(self, z):
        mean = torch.tanh(self.linear(z))
        return mean.view(-1, 1, 1, 2) if self.as_image else mean


def paired_models():
    models = {}
    for as_image in (False, True):
        torch.manual_seed(0)
        encoder = HouseholderSylvesterEncoder(PixelPair(as_image), 8, 2, n_flows=2, n_householder=2).double()
        decoder = GaussianDecoder(ImageMean(as_image), 0.3).double()
        models["image" if as_image else "toy"] = (encoder, decoder)
    return models


def test_compatibility_agrees_between_image_and_toy_layouts():
    models = paired_models()
    x = torch.randn(3, 2, dtype=torch.float64)
    e, eta = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    for variant in ("jacnorm_x", "jacnorm_lite_x"):
        toy = compatibility_terms(*models["toy"], x, variant, e=e, eta=eta)
        image = compatibility_terms(*models["image"], x.view(3, 1, 1, 2), variant, e=e, eta=eta.view(3, 1, 1, 2))
        assert torch.allclose(toy, image, rtol=1e-12)
    encoder, decoder = models["toy"]
    torch.manual_seed(1)
    exact = exact_compatibility(encoder, decoder, x)["jacnorm_x"]
    torch.manual_seed(1)  # the same base noise e as exact_compatibility drew
    brute = brute_force_mixed_hessians(encoder, decoder, x, torch.randn(3, 2, dtype=torch.float64))
    assert torch.isclose(exact, brute.pow(2).sum((-1, -2)).mean(), rtol=1e-8)


def test_image_compatibility_loss_backpropagates_to_every_weight():
    torch.manual_seed(0)
    encoder, decoder = image_encoder((1, 28, 28), z_dim=4, n_flows=2, n_householder=2), image_decoder((1, 28, 28), 4)
    compatibility_terms(encoder, decoder, torch.rand(2, 1, 28, 28), "jacnorm_x").mean().backward()
    weights = [*encoder.parameters(), *decoder.parameters()]
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in weights)
    assert all(w.grad.abs().sum() > 0 for w in decoder.parameters())


def test_downstream_classifier_separates_separable_latent_classes():
    torch.manual_seed(0)
    labels = torch.arange(400) % 2
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])
    train_z = centres[labels] + torch.randn(5, 400, 2)
    test_z = centres[labels] + torch.randn(400, 2)
    assert min(train_and_score(train_z, labels, test_z, labels, n_trials=2, epochs=5)) > 0.97
    overlapping = torch.randn(5, 400, 2), torch.randn(400, 2)  # both classes from one distribution: chance level
    assert max(train_and_score(overlapping[0], labels, overlapping[1], labels, n_trials=2, epochs=5)) < 0.62


def test_batched_classifiers_train_as_each_trial_alone():
    """The trials as one batched model == each trial's own nn.Sequential and Adamax on the same batches."""
    torch.manual_seed(0)
    n_trials, epochs, batch_size = 3, 2, 32
    train_z, train_y = torch.randn(2, 100, 4, dtype=torch.float64), torch.arange(100) % 3
    batched = BatchedClassifiers(n_trials, 4, n_classes=3).double()
    alone = []
    for trial in range(n_trials):
        first, second = torch.nn.Linear(4, 100).double(), torch.nn.Linear(100, 3).double()
        with torch.no_grad():
            first.weight.copy_(batched.w1[trial].T), first.bias.copy_(batched.b1[trial, 0])
            second.weight.copy_(batched.w2[trial].T), second.bias.copy_(batched.b2[trial, 0])
        alone.append(torch.nn.Sequential(first, torch.nn.LeakyReLU(), second))
    train_classifiers(batched, train_z, train_y, epochs, batch_size, generator=torch.Generator().manual_seed(1))
    orders = torch.Generator().manual_seed(1)
    optimizers = [torch.optim.Adamax(c.parameters(), lr=1e-3, eps=1e-7) for c in alone]
    for epoch in range(epochs):
        for indices in batch_orders(n_trials, 100, batch_size, "cpu", orders):
            for trial, (classifier, optimizer) in enumerate(zip(alone, optimizers)):
                index = indices[trial]
                loss = torch.nn.functional.cross_entropy(classifier(train_z[epoch % 2][index]), train_y[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    for trial, classifier in enumerate(alone):
        assert torch.allclose(classifier[0].weight, batched.w1[trial].T, atol=1e-12)
        assert torch.allclose(classifier[2].weight, batched.w2[trial].T, atol=1e-12)
        assert torch.allclose(classifier[2].bias, batched.b2[trial, 0], atol=1e-12)
    assert not torch.allclose(batched.w1[0], batched.w1[1])  # trials start apart


def test_downstream_accuracy_reports_mean_and_spread_over_trials():
    torch.manual_seed(0)
    encoder = image_encoder((1, 28, 28), z_dim=4, n_flows=1, n_householder=1)
    images = (torch.rand(40, 1, 28, 28) * 255).to(torch.uint8)
    labels = torch.arange(40) % 10
    result = downstream_accuracy(encoder, images, labels, images, labels, n_trials=3, epochs=1, n_draws=2)
    assert len(result.accuracies) == 3 and 0 <= result.mean <= 100 and result.std >= 0


TINY_IMAGE = ["--n_train", "40", "--n_test", "20", "--batch_size", "20", "--compat_rows", "4", "--valid_size", "20",
              "--n_trials", "2", "--downstream_epochs", "1", "--downstream_draws", "2", "--gen_batch_size", "4",
              "--grid_size", "4", "--gen_niter", "2", "--gibbs_steps", "1", "--z_dim", "8", "--device", "cpu"]
IMAGE_CASES = [
    ("mnist", ["--method", "cygen", "--warm_up", "1", "--epochs", "1", "--save_samples", "6"]),
    ("mnist", ["--method", "elbo", "--warm_up", "1", "--epochs", "1", "--save_samples", "6"]),
    ("mnist", ["--method", "dae", "--set_p_var", "1", "--epochs", "2", "--gen_init", "uniform"]),
    ("fmnist", ["--method", "cygen", "--epochs", "2", "--cmtype", "jacnorm_lite_x"]),
    ("svhn", ["--method", "cygen", "--warm_up", "1", "--epochs", "1", "--kl_beta", "0.01", "--vae_clamp", "0.1",
              "--compat_rows", "0"]),
]


@pytest.mark.parametrize("dataset,args", IMAGE_CASES, ids=[f"{d} {' '.join(a[:2])}" for d, a in IMAGE_CASES])
def test_main_image_smoke(dataset, args, tmp_path):
    data_args = []
    if dataset == "svhn":
        (tmp_path / "data").mkdir()
        write_tiny_svhn(tmp_path / "data", n_train=60, n_test=20)
        data_args = ["--data_root", str(tmp_path / "data")]
    run_dir = tmp_path / "run"
    run_script("main_image.py", "--dataset", dataset, *data_args, *TINY_IMAGE, *args, "--run_dir", str(run_dir))
    rows = read_metrics(run_dir)
    assert [row["step"] for row in rows] == ["1", "2"]
    assert rows[-1]["accuracy"] and float(rows[-1]["valid_recon"]) == float(rows[-1]["valid_recon"])
    assert (run_dir / "samples" / "final_langevin.png").stat().st_size > 0
    if "--save_samples" in args:
        path = next((run_dir / "samples").glob("samples_*.pt"))
        samples = torch.load(path, weights_only=True)
        assert samples.dtype == torch.uint8 and samples.shape[0] == 6
    if args[1] == "elbo":  # resuming the finished run neither trains nor draws its samples again
        written = path.stat().st_mtime_ns
        resumed = run_script("main_image.py", "--dataset", dataset, *TINY_IMAGE, *args, "--run_dir", str(run_dir),
                             "--resume")
        assert "wrote" not in resumed.stdout and path.stat().st_mtime_ns == written
        assert len(read_metrics(run_dir)) == 2


def test_main_image_refuses_contradicting_flags(tmp_path):
    result = run_script("main_image.py", "--compat_rows", "200", "--batch_size", "100", "--run_dir",
                        str(tmp_path / "run"), check=False)
    assert result.returncode == 2 and "--compat_rows 200 exceeds --batch_size 100" in result.stderr


def test_cygen_pt_can_start_from_a_vae_runs_warm_up(tmp_path):
    common = ["--dataset", "mnist", *TINY_IMAGE, "--warm_up", "1", "--epochs", "1"]
    run_script("main_image.py", *common, "--method", "elbo", "--run_dir", str(tmp_path / "vae"))
    warm_up = tmp_path / "vae" / "warmup_checkpoint.pt"
    run_script("main_image.py", *common, "--method", "cygen", "--warm_start", str(warm_up),
               "--run_dir", str(tmp_path / "cygen"))
    vae_rows, cygen_rows = read_metrics(tmp_path / "vae"), read_metrics(tmp_path / "cygen")
    assert cygen_rows[0] == vae_rows[0] and cygen_rows[1]["phase"] == "cygen"
    refused = run_script("main_image.py", *common, "--method", "cygen", "--warm_start", str(warm_up),
                         "--kl_beta", "0.5", "--run_dir", str(tmp_path / "other"), check=False)
    assert refused.returncode == 1 and "--kl_beta: checkpoint 1.0, now 0.5" in refused.stderr


@pytest.mark.parametrize("dataset,n_official_train", [("mnist", 60000), ("fmnist", 60000), ("svhn", 60)])
def test_main_image_trains_on_the_whole_official_training_set(dataset, n_official_train, tmp_path):
    """The paper trains on all official training images (60k MNIST / Fashion-MNIST, 73,257 SVHN: here a tiny SVHN
    file of 60); the validation metrics use test images, so none is held out of training."""
    data_root = "datasets"
    if dataset == "svhn":
        write_tiny_svhn(tmp_path, n_train=n_official_train, n_test=20)
        data_root = str(tmp_path)
    args = main_image.parse_args(["--dataset", dataset, "--data_root", data_root, "--valid_size", "7"])
    splits = main_image.load_splits(args, "cpu")
    assert len(splits.train_x) == n_official_train
    assert torch.equal(splits.valid_x, splits.test_x[:7])


def test_downstream_classifier_can_train_on_more_images_than_the_encoder(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(main_image, "downstream_accuracy",
                        lambda encoder, x, *rest: seen.append(len(x)) or DownstreamResult(50.0, 0.0, [50.0]))
    main_image.main(["--dataset", "mnist", *TINY_IMAGE, "--epochs", "1", "--gen_niter", "0", "--downstream_n_train",
                     "300", "--run_dir", str(tmp_path / "run")])
    assert seen == [300]
