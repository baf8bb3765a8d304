"""Binary HVAE (symmetric learning and ZGR-ELBO): likelihoods, the ZGR gradient, the separation of the two symmetric
steps, resume, and smoke runs of "main_sym.py", "main_elbo.py", generate.py and the limiting-chain study."""
import copy
import json
import shutil

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from evaluation import symvae as symvae_evaluation
from evaluation.samples import load_sample_tensor
from main_elbo import ElboUpdate
from main_sym import SymmetricUpdate, parse_args, train
from models.binary_hvae import bernoulli_log_prob, build_model, gaussian_log_prob
from objectives.symvae import bernoulli_kl, decoder_step_loss, encoder_step_loss, elbo_loss, zgr_binary
from tests.scripts import assert_speed_rows, read_metrics, run_script

TINY_MODEL = ["--arch", "mlp", "--mlp_width", "32", "--conditional_width", "32", "--nz0", "6", "--nz1", "10"]
TINY = [*TINY_MODEL, "--batch_size", "16", "--niters", "4", "--log_every", "2", "--checkpoint_every", "2",
        "--image_every", "4", "--display_chain_steps", "2", "--stats_batch_size", "16", "--device", "cpu"]


def tiny_model(dataset="mnist", encoder="ladder"):
    torch.manual_seed(0)
    return build_model(dataset, encoder, "mlp", nz0=6, nz1=10, conditional_width=32, mlp_width=32)


def test_log_likelihoods_match_torch_distributions():
    logits, x = torch.randn(5, 1, 28, 28), torch.rand(5, 1, 28, 28)
    bits = torch.bernoulli(torch.sigmoid(torch.randn_like(logits)))
    expected = Bernoulli(logits=logits).log_prob(bits).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_prob(logits, bits), expected)
    log_sigma = torch.tensor(-0.7)
    expected = Normal(logits, log_sigma.exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_prob(x, logits, log_sigma), expected)
    for dataset, distribution in (("mnist", lambda out, m: Bernoulli(logits=out)),
                                  ("fmnist", lambda out, m: Normal(out, m.p_x_given_z1.log_sigma.exp()))):
        model = tiny_model(dataset)
        z1 = torch.bernoulli(torch.full((5, 10), 0.5))
        data = bits if dataset == "mnist" else x
        expected = distribution(model.p_x_given_z1.net(z1), model).log_prob(data).flatten(1).sum(1)
        torch.testing.assert_close(model.p_x_given_z1.log_prob(data, z1), expected)


def test_bernoulli_kl_matches_torch():
    logits_q, logits_p = torch.randn(100) * 3, torch.randn(100) * 3
    expected = kl_divergence(Bernoulli(logits=logits_q), Bernoulli(logits=logits_p))
    torch.testing.assert_close(bernoulli_kl(logits_q, logits_p), expected)


def test_zgr_gradient_has_the_documented_form():
    """Forward: a hard Bernoulli bit; backward: d z / d logits = (z (1 - p) + (1 - z) p) / 2."""
    torch.manual_seed(0)
    logits = (torch.randn(4000) * 2).requires_grad_()
    weights = torch.randn(4000)
    z = zgr_binary(logits)
    (weights * z).sum().backward()
    p = torch.sigmoid(logits.detach())
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(logits.grad, weights * (z.detach() * (1 - p) + (1 - z.detach()) * p) / 2)
    assert abs(z.detach().mean() - p.mean()) < 0.03  # the bits follow sigmoid(logits)


@pytest.mark.parametrize("setting,encoder_count,image_net_count", [
    ("mnist-ladder", 2_202_386, 375_457),  # the spec: encoder 2.20M, p(z1|z0) 0.44M, p(x|z1) 0.375M
    ("mnist-reverse", 2_262_986, 375_457),  # q(z0|z1) = nz1-600-600-600-nz0 with a skip
    # trunk width 1000 and its z0 MLP 1000-1000-1000-30 (2,032,030 weights; 1000-600-600 would give 3,301,986 in all)
    ("fmnist-ladder", 4_354_786, 375_458),  # p(x|z1) also holds the Gaussian's log sigma
])
def test_parameter_counts_match_the_official_networks(setting, encoder_count, image_net_count):
    def count(module):
        return sum(p.numel() for p in module.parameters())
    dataset, encoder = setting.split("-")
    model = build_model(dataset, encoder, "conv", 30, 100)
    assert (count(model.encoder), count(model.p_z1_given_z0), count(model.p_x_given_z1)) == (
        encoder_count, 442_300, image_net_count)


def test_channels_last_conv_nets_compute_what_nchw_ones_do():
    """build_model stores conv weights channels-last for speed; the layout must not change the numbers."""
    torch.manual_seed(0)
    model = build_model("mnist", "ladder", "conv", 30, 100)
    assert model.encoder.trunk[2].weight.is_contiguous(memory_format=torch.channels_last)
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert not nchw.encoder.trunk[2].weight.is_contiguous(memory_format=torch.channels_last)
    x, z1 = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3)), torch.bernoulli(torch.full((4, 100), 0.5))
    for ours, reference in zip((*model.encoder(x), model.p_x_given_z1.net(z1)),
                               (*nchw.encoder(x), nchw.p_x_given_z1.net(z1))):
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("encoder", ["ladder", "reverse"])
def test_each_symmetric_step_moves_only_its_own_side(encoder):
    """The ladder encoder reads p(z1|z0)'s logits, but its step must leave p(z1|z0) untouched (detached)."""
    model = tiny_model(encoder=encoder)
    update = SymmetricUpdate(model, lr=1e-2)
    decoder_before = [p.detach().clone() for p in model.decoder_parameters()]
    loss, _ = encoder_step_loss(model, 16)
    loss.backward()
    assert all(p.grad is None for p in model.decoder_parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    update.optimizers["encoder"].step()
    assert all(torch.equal(a, b) for a, b in zip(decoder_before, model.decoder_parameters()))
    model.zero_grad(set_to_none=True)
    loss, _ = decoder_step_loss(model, torch.bernoulli(torch.full((16, 1, 28, 28), 0.3)))
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())


def test_ladder_elbo_trains_the_shared_prior_logits():
    """In the ELBO, unlike the symmetric encoder step, p(z1|z0) gets gradients through q(z1|z0,x) and the KL."""
    model = tiny_model()
    loss, terms = elbo_loss(model, torch.bernoulli(torch.full((16, 1, 28, 28), 0.3)))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    assert set(terms) == {"dloss", "kl0", "kl1"}


def test_contradicting_flags_are_refused(capsys):
    for argv, message in ((["--log_every", "3", "--checkpoint_every", "10"], "multiples of --log_every"),
                          (["--encoder", "wake"], "argument --encoder: invalid choice: 'wake'"),
                          (["--batch_size", "0"], "--batch_size 0 (must be > 0)")):
        with pytest.raises(SystemExit) as exit_info:
            parse_args("symmetric", "", argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("script,dataset,encoder", [("main_sym.py", "mnist", "ladder"),
                                                    ("main_sym.py", "fmnist", "reverse"),
                                                    ("main_elbo.py", "mnist", "reverse"),
                                                    ("main_elbo.py", "fmnist", "ladder")])
def test_smoke(script, dataset, encoder, tmp_path):
    run_dir = tmp_path / "run"
    run_script(script, *TINY, "--dataset", dataset, "--encoder", encoder, "--run_dir", str(run_dir))
    rows = read_metrics(run_dir)
    assert [row["step"] for row in rows] == ["2", "4"]
    assert all(float(row["pmi1"]) >= 0 and row["mean_sq_weight"] for row in rows)
    assert (run_dir / "samples" / "step0000004.png").stat().st_size > 0
    information = json.loads((run_dir / "mutual_information.json").read_text())
    assert len(information["p_z0_z1"]) == 10 and len(information["q_x_z0"]) == 6
    if script == "main_sym.py" and dataset == "mnist":  # the limiting-chain study on a trained run folder
        summary = symvae_evaluation.summarize(tmp_path, kind="quick", device="cpu", results=tmp_path / "results",
                                              n_samples=30, n_components=4, chain_steps=(1, 3))
        assert summary.name == "symvae_quick" and (tmp_path / "results/figures/symvae_quick/run.png").exists()
        metrics = {row["metric"]: row["ours"] for row in summary.rows}
        for reference in ("test set", "its own random-code samples"):
            assert all(metrics[f"Fréchet on PCA-4 pixel features vs {reference}, limiting chain {k} steps"] >= 0
                       for k in (1, 3))
        assert metrics["Fréchet on PCA-4 pixel features vs its own random-code samples, random code (sampling floor)"] > 0
        assert metrics["limiting (3 steps) / random-code ratio (paper: README FID ratio)"] > 0
        for seed in (0, 1):  # launch.py --seeds: <run>/seed<S>, one row of mean ± std over the seeds
            shutil.copytree(run_dir, tmp_path / "seeds" / "run" / f"seed{seed}")
        seeds = symvae_evaluation.summarize(tmp_path / "seeds", kind="quick", device="cpu",
                                            results=tmp_path / "results", n_samples=30, n_components=4,
                                            chain_steps=(1, 3))
        assert [row["metric"] for row in seeds.rows] == list(metrics)
        assert all(row["ours"].endswith(" ± 0 (2 seeds)") for row in seeds.rows)  # the same study of the same model
    if script == "main_elbo.py" and dataset == "fmnist":  # generate.py on a trained run folder
        run_script("generate.py", "--run_dir", str(run_dir), "--chain_steps", "3", "--n_grid", "10",
                   "--save_samples", "12", "--mode", "limiting", "--device", "cpu")
        samples = load_sample_tensor(run_dir / "samples_limiting_12.pt")
        assert samples.shape == (12, 1, 28, 28) and samples.dtype == torch.uint8
        assert (run_dir / "samples" / "generated_random_step0000004.png").exists()


@pytest.mark.parametrize("method,update", [("symmetric", SymmetricUpdate), ("elbo", ElboUpdate)])
def test_resume_equals_uninterrupted(method, update, tmp_path):
    common = [*TINY_MODEL, "--dataset", "fmnist", "--batch_size", "8", "--log_every", "3", "--checkpoint_every", "3",
              "--image_every", "3", "--display_chain_steps", "1", "--stats_batch_size", "8", "--device", "cpu"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(method, update, "", [*common, "--niters", "6", "--run_dir", str(straight)])
    train(method, update, "", [*common, "--niters", "3", "--run_dir", str(resumed)])
    train(method, update, "", [*common, "--niters", "6", "--run_dir", str(resumed), "--resume"])
    assert read_metrics(resumed) == read_metrics(straight)
    a, b = (torch.load(path / "checkpoint.pt") for path in (straight, resumed))
    assert all(torch.equal(a["models"]["model"][key], value) for key, value in b["models"]["model"].items())


def test_speed_benchmark_writes_its_summary(tmp_path):
    path = tmp_path / "speed.json"
    run_script("bench/bench_sym.py", "--device", "cpu", "--arch", "mlp", "--batch_size", "8", "--repeats", "1",
               "--warmup", "0", "--summary", str(path))
    rows = json.loads(path.read_text())["rows"]
    methods = {row["method"] for row in rows}
    assert methods == {"Symmetric", "ELBO", "Symmetric, official habits", "ELBO, official habits"}
    assert_speed_rows(rows, ["Symmetric", "ELBO"])
    assert {"images per s", "estimated hours of 200000 iterations"} <= {row["metric"] for row in rows}
    assert not any("spec" in row["metric"] for row in rows)  # the 5.9 s comparison is for the paper's config only
