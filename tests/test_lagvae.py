"""InfoVAE / LagVAE: the MMD and its kernel, the multiplier update, the objective's special cases, the mutual
information estimator against brute force, and main_lagvae.py end to end."""
import json
import math

import pytest
import torch

from evaluation.lagvae import (evaluate_checkpoint, markdown_table, mutual_information_bounds,
                               pairwise_gaussian_log_prob, pareto_figure, read_run, summary_rows)
from main_lagvae import parse_args
from models.lagvae import BernoulliMLPDecoder, GaussianMLPEncoder, diagonal_gaussian_log_prob
from objectives.lagvae import (MULTIPLIER_RANGE, consistency_terms, constraint_violations, gaussian_kl,
                               information_objective, lagrangian, mmd, mmd_kernel, mmd_noise_floor,
                               multiplier_ascent_step, multiplier_optimizer)
from objectives.vae import standard_normal_log_prob
from tests.scripts import assert_speed_rows, read_metrics, run_script


def test_kernel_matches_its_definition():
    torch.manual_seed(0)
    a, b = torch.randn(3, 5), torch.randn(4, 5)
    brute = torch.tensor([[math.exp(-((x - y) ** 2).mean().item() / 5) for y in b] for x in a])
    assert torch.allclose(mmd_kernel(a, b), brute, atol=1e-6)


def test_mmd_is_zero_for_identical_samples_and_grows_with_a_mean_shift():
    torch.manual_seed(0)
    z = torch.randn(200, 16)
    assert abs(mmd(z, z).item()) < 1e-6
    shifted = [mmd(z, z + shift).item() for shift in (0.25, 0.5, 1.0, 2.0)]
    assert all(small < large for small, large in zip(shifted, shifted[1:])) and shifted[0] > 1e-5


def test_noise_floor_formula_matches_monte_carlo():
    """The spec measured ~2.5 at z=64, batch 250; the closed form is checked against 400 pairs of samples."""
    torch.manual_seed(0)
    draws = torch.stack([1e4 * mmd(torch.randn(250, 64), torch.randn(250, 64)) for _ in range(400)])
    assert mmd_noise_floor(250, 64) == pytest.approx(draws.mean().item(), rel=0.05)
    assert mmd_noise_floor(250, 64) == pytest.approx(2.5, abs=0.1)
    assert mmd_noise_floor(250, 32) > mmd_noise_floor(250, 64) < mmd_noise_floor(100, 64)


def test_analytic_kl_equals_the_monte_carlo_expectation():
    torch.manual_seed(0)
    mean, log_std = torch.randn(3, 4), 0.3 * torch.randn(3, 4)
    z = mean + torch.exp(log_std) * torch.randn(200000, 3, 4)
    monte_carlo = (diagonal_gaussian_log_prob(z, mean, log_std) - standard_normal_log_prob(z)).mean(0)
    assert torch.allclose(gaussian_kl(mean, log_std), monte_carlo, atol=0.02)


def tiny_terms():
    torch.manual_seed(0)
    encoder, decoder = GaussianMLPEncoder(z_dim=4, width=8), BernoulliMLPDecoder(z_dim=4, width=8)
    x = torch.bernoulli(torch.full((6, 1, 28, 28), 0.3))
    return consistency_terms(encoder, decoder, x), encoder


def test_infovae_with_mi_0_e1_1_e2_0_is_exactly_the_vae_loss():
    terms, encoder = tiny_terms()
    loss = information_objective(terms, mi=0.0, l1=1.0, l2=0.0)
    negative_elbo = terms["nll"] + terms["kl"]
    assert torch.equal(loss, negative_elbo)
    grads = torch.autograd.grad(loss, list(encoder.parameters()), retain_graph=True)
    reference = torch.autograd.grad(negative_elbo, list(encoder.parameters()))
    assert all(torch.equal(g, r) for g, r in zip(grads, reference))


@pytest.mark.parametrize("mi,nll_weight,kl_weight", [(1.0, 3.0, 2.0), (-1.0, 2.0, 3.0), (0.0, 2.0, 2.0)])
def test_the_sign_of_mi_moves_the_nll_or_the_kl_weight(mi, nll_weight, kl_weight):
    terms = {"nll": torch.tensor(10.0), "kl": torch.tensor(100.0), "mmd": torch.tensor(1000.0)}
    expected = nll_weight * 10 + kl_weight * 100 + 0.5 * 1000
    assert information_objective(terms, mi, 2.0, 0.5).item() == pytest.approx(expected)


def test_multiplier_gradient_of_the_lagrangian_is_the_constraint_violation():
    terms = {"nll": torch.tensor(80.0), "kl": torch.tensor(9.0), "mmd": torch.tensor(3.0)}
    for mi in (1.0, -1.0):
        l1, l2 = torch.tensor(2.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
        gradient = torch.autograd.grad(lagrangian(terms, mi, l1, l2, e1=86.0, e2=5.0), (l1, l2))
        assert torch.allclose(torch.stack(gradient), constraint_violations(terms, 86.0, 5.0))
        assert constraint_violations(terms, 86.0, 5.0).tolist() == [3.0, -2.0]


def test_multiplier_update_follows_the_violation_and_respects_the_clip():
    multipliers = torch.ones(2, requires_grad=True)
    optimizer = multiplier_optimizer(multipliers, lr=0.01)
    multiplier_ascent_step(multipliers, optimizer, torch.tensor([3.0, -2.0]))
    l1, l2 = multipliers.tolist()
    assert l1 > 1 > l2  # the violated constraint's multiplier rises, the slack one's falls

    for start, violation, bound in ((99.99, 5.0, MULTIPLIER_RANGE[1]), (0.0011, -5.0, MULTIPLIER_RANGE[0])):
        multipliers = torch.full((2,), start, requires_grad=True)
        optimizer = multiplier_optimizer(multipliers, lr=1.0)
        for _ in range(3):
            multiplier_ascent_step(multipliers, optimizer, torch.full((2,), violation))
        assert multipliers.tolist() == pytest.approx([bound, bound])


def test_pairwise_log_prob_and_mutual_information_bounds_match_brute_force():
    torch.manual_seed(0)
    mean, log_std = torch.randn(7, 3).double(), 0.5 * torch.randn(7, 3).double()
    z = mean + torch.exp(log_std) * torch.randn(7, 3).double()
    brute = diagonal_gaussian_log_prob(z[:, None], mean[None], log_std[None])  # [i, j] = log q(z_i | x_j)
    assert torch.allclose(pairwise_gaussian_log_prob(z, mean, log_std), brute)
    infonce = (brute.diagonal() - (torch.logsumexp(brute, dim=1) - math.log(7))).mean().item()
    others = brute.masked_fill(torch.eye(7, dtype=torch.bool), -math.inf)
    leave_one_out = (brute.diagonal() - (torch.logsumexp(others, dim=1) - math.log(6))).mean().item()
    assert mutual_information_bounds(mean, log_std, z, chunk=3) == pytest.approx((infonce, leave_one_out))


def gaussian_channel_bounds(dim, a, s, n, repeats):
    """Mean bounds for x ~ N(0, I_dim), q(z|x) = N(a x, s^2 I), whose I(x;z) = dim/2 log(1 + a^2 / s^2)."""
    bounds = []
    for _ in range(repeats):
        mean = a * torch.randn(n, dim)
        log_std = torch.full_like(mean, math.log(s))
        bounds.append(mutual_information_bounds(mean, log_std, mean + s * torch.randn_like(mean)))
    lower, upper = torch.tensor(bounds, dtype=torch.float64).mean(0).tolist()
    return lower, upper, dim / 2 * math.log(1 + a ** 2 / s ** 2)


def test_bounds_bracket_the_mutual_information_of_a_gaussian_channel():
    torch.manual_seed(0)
    lower, upper, true = gaussian_channel_bounds(dim=4, a=1.0, s=0.3, n=1000, repeats=10)  # I = 4.99 < log N
    assert lower < true - 0.1 and upper > true + 0.1  # Monte-Carlo std of the means ~0.02
    lower, upper, true = gaussian_channel_bounds(dim=2, a=1.0, s=0.5, n=1000, repeats=10)  # I = 1.61 << log N
    assert lower == pytest.approx(true, abs=0.1) and upper == pytest.approx(true, abs=0.1)  # tight


def test_lower_bound_is_capped_at_log_n_and_the_upper_bound_is_not():
    torch.manual_seed(0)
    lower, upper, true = gaussian_channel_bounds(dim=8, a=1.0, s=0.1, n=500, repeats=1)  # I = 18.5 > log N
    assert lower <= math.log(500) + 1e-9 and upper > true
    n = 50
    same_mean, same_log_std = torch.zeros(n, 4), torch.zeros(n, 4)
    assert mutual_information_bounds(same_mean, same_log_std, torch.randn(n, 4)) == pytest.approx((0, 0), abs=1e-9)
    far_mean, far_log_std = 100 * torch.randn(n, 4), torch.full((n, 4), -3.0)
    lower, upper = mutual_information_bounds(far_mean, far_log_std, far_mean + 0.05 * torch.randn(n, 4))
    assert lower == pytest.approx(math.log(n), abs=1e-6) and upper > 100


def test_bernoulli_decoder_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    decoder = BernoulliMLPDecoder(z_dim=3, width=8)
    x, z = torch.bernoulli(torch.full((2, 1, 28, 28), 0.5)), torch.randn(5, 2, 3)
    reference = torch.distributions.Bernoulli(logits=decoder.logits(z)).log_prob(x.flatten(1)).sum(-1)
    assert torch.allclose(decoder.log_prob(x, z), reference, atol=1e-4)


# ---- main_lagvae.py end to end --------------------------------------------------------------------------------

TINY = ["--width", "32", "--z_dim", "8", "--n_train", "500", "--batch_size", "50", "--epochs", "1",
        "--eval_every", "5", "--n_eval", "100", "--eval_batch_size", "50", "--iwae_k", "4", "--lr", "1e-3",
        "--device", "cpu"]
SMOKE = [["--method", "lagvae", "--mi", "1", "--e1", "400", "--e2", "5", "--lambda_lr", "0.01"],
         ["--method", "lagvae", "--mi", "-1", "--lambda_lr", "0.01"]]


def check_run_folder(run_dir):
    rows = read_metrics(run_dir)
    assert [row["step"] for row in rows] == ["5", "10"]
    assert rows[0]["test_iwae_nll"] == "" and float(rows[1]["test_iwae_nll"]) > 0
    for row in rows:
        assert float(row["train_elbo"]) == pytest.approx(float(row["train_nll"]) + float(row["train_kl"]))
        lower, upper = float(row["test_mi_lower_infonce"]), float(row["test_mi_upper_l1out"])
        assert 0 <= lower <= math.log(100) + 1e-6 and lower <= upper
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "samples" / "step00000010.png").stat().st_size > 0
    return rows


@pytest.mark.parametrize("args", SMOKE, ids=[" ".join(a) for a in SMOKE])
def test_smoke(args, tmp_path):
    run_script("main_lagvae.py", *TINY, *args, "--run_dir", str(tmp_path / "run"))
    rows = check_run_folder(tmp_path / "run")
    assert float(rows[1]["l1"]) != 1.0  # the multipliers moved


def test_resumed_run_equals_uninterrupted(tmp_path):
    lagvae = ["--method", "lagvae", "--mi", "1", "--e1", "300", "--lambda_lr", "0.01"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_script("main_lagvae.py", *TINY, *lagvae, "--epochs", "2", "--eval_every", "10", "--run_dir", str(straight))
    run_script("main_lagvae.py", *TINY, *lagvae, "--epochs", "1", "--eval_every", "10", "--run_dir", str(resumed))
    run_script("main_lagvae.py", *TINY, *lagvae, "--epochs", "2", "--eval_every", "10", "--run_dir", str(resumed),
               "--resume")
    final_only = ("elapsed_s", "test_iwae_nll")  # the shorter first segment ended with its own IWAE estimate
    assert read_metrics(resumed, drop=final_only) == read_metrics(straight, drop=final_only)
    assert read_metrics(resumed)[-1] == read_metrics(straight)[-1]
    a, b = (torch.load(path / "checkpoint.pt") for path in (straight, resumed))
    assert torch.equal(a["multipliers"], b["multipliers"])
    assert all(torch.equal(a["models"]["decoder"][k], v) for k, v in b["models"]["decoder"].items())


def test_infovae_then_lagvae_from_it_reports_infeasible_constraints(tmp_path):
    vae = tmp_path / "vae"
    run_script("main_lagvae.py", *TINY, "--method", "infovae", "--mi", "1", "--e1", "1", "--e2", "1",
               "--run_dir", str(vae))
    check_run_folder(vae)
    result = run_script("main_lagvae.py", *TINY, "--method", "lagvae", "--e1", "1", "--e2", "1", "--lambda_lr", "100",
                        "--init_from", str(vae), "--run_dir", str(tmp_path / "run"))
    assert f"starting from the networks of {vae} (step 10)" in result.stdout
    assert "below the MMD noise floor" in result.stdout
    assert "-ELBO" in result.stdout and "looks infeasible; raise --e1" in result.stdout
    # the VAE's networks were loaded: 5 steps from them beat the VAE's own first 5 steps from scratch
    assert float(read_metrics(tmp_path / "run")[0]["test_elbo"]) < float(read_metrics(vae)[0]["test_elbo"])

    mismatch = run_script("main_lagvae.py", *TINY, "--width", "16", "--init_from", str(vae),
                          "--run_dir", str(tmp_path / "other"), check=False)
    assert mismatch.returncode == 1 and "do not fit --width / --z_dim" in mismatch.stderr
    check_sweep_summary(tmp_path)


def check_sweep_summary(root):
    """The summary's re-evaluation of final checkpoints (on stand-in images), its cache, table and figure."""
    torch.manual_seed(0)
    train_x, test_x = (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8) for n in (500, 300))
    points = [read_run(root / name) for name in ("vae", "run")]
    for point in points:
        metrics = evaluate_checkpoint(root / point["name"], lambda data_root, n_train: (train_x[:n_train], test_x),
                                      torch.device("cpu"), n_z_samples=2)
        assert (metrics["train_images"], metrics["test_images"]) == (500, 300)
        assert 0 <= metrics["test_mi_lower_infonce"] <= math.log(300) + 1e-6
        assert metrics["test_mi_lower_infonce"] <= min(metrics["test_mi_upper_l1out"], metrics["test_kl"])
        point.update(metrics)
    cached = evaluate_checkpoint(root / "vae", None, torch.device("cpu"), n_z_samples=2)  # None: no images read
    assert cached == {key: value for key, value in points[0].items() if key in cached}
    pareto_figure(root / "pareto.png", points, title="LagVAE, stand-in images")
    assert (root / "pareto.png").stat().st_size > 0
    assert "| InfoVAE mi=+1 e1=1 e2=1 |" in markdown_table(points)
    rows = summary_rows(points)
    assert any("I_q(x;z) in [InfoNCE, min(L1Out, KL)] on all 300 test images" in row["metric"] for row in rows)


@pytest.mark.parametrize("args,message", [
    (["--method", "betavae"], "argument --method: invalid choice: 'betavae'"),
    (["--method", "infovae", "--e1", "-1"], "must be >= 0"),
    (["--n_eval", "20000"], "exceeds the 10000 MNIST test images"),
    (["--n_train", "100"], "holds less than one batch"),
])
def test_contradicting_flags_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_bench_writes_the_speed_summary(tmp_path):
    summary_path = tmp_path / "lagvae_speed.json"
    run_script("bench/bench_lagvae.py", "--device", "cpu", "--batch_size", "20", "--width", "16", "--repeats", "1",
               "--summary", str(summary_path))
    summary = json.loads(summary_path.read_text())
    metrics = [row["metric"] for row in summary["rows"]]
    assert metrics.count("ms per step") == 3 and metrics.count("x the VAE step") == 2
    assert summary["kind"] == "quick" and metrics.count("images per s") == 3
    assert_speed_rows(summary["rows"], ["VAE (baseline: ELBO, same networks)", "InfoVAE (mi=+1, e1=1, e2=1)",
                                        "LagVAE (mi=+1, e1=86, e2=5, multiplier ascent)"])
