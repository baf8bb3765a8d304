"""CVAE on MNIST quadrants: the task's masks, the CLL estimators against a closed form, Jensen, the frozen baseline,
and main_cvae.py end to end (early stopping restores the best epoch, --resume, bad flags)."""
import json
import math
from functools import partial

import pytest
import torch

from data.images import load_image_dataset
from evaluation import summarize_cvae
from evaluation.cvae import negative_clls
from models.cvae import CVAE, BaselineNet, DiagonalGaussian
from objectives.cvae import (QUADRANT_SETTINGS, Conditionals, QuadrantTask, conditionals, log_likelihood,
                             negative_cll_importance, negative_cll_monte_carlo, negative_elbo, negative_elbo_particles)
from tests.scripts import read_metrics, run_script


def random_images(n, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n_quadrants", QUADRANT_SETTINGS)
def test_masks_partition_the_image(n_quadrants):
    task = QuadrantTask(n_quadrants)
    images = random_images(4)
    x, y = task.split(images)
    image = images.flatten(1).float() / 255
    assert task.input_mask.sum() == 196 * n_quadrants and y.shape == (4, 196 * (4 - n_quadrants))
    assert torch.equal(x[:, task.input_mask], image[:, task.input_mask])
    assert (x[:, ~task.input_mask] == -1).all()
    assert torch.equal(task.complete(x, y), image)
    # Pyro's choice: the bottom-left quadrant is always given, the bottom-right one never.
    mask = task.input_mask.view(28, 28)
    assert mask[14:, :14].all() and not mask[14:, 14:].any()


def linear_gaussian(a=1.5, b=0.3, noise_std=0.7, prior_loc=0.2, prior_std=1.3):
    """z ~ N(prior_loc, prior_std^2), y | z ~ N(a z + b, noise_std^2): p(y), p(z|y) in closed form."""
    prior = DiagonalGaussian(torch.tensor([[prior_loc]]), torch.tensor([[prior_std]]))
    y = torch.tensor(2.1)
    marginal_std = math.sqrt(a ** 2 * prior_std ** 2 + noise_std ** 2)
    exact_log_p = torch.distributions.Normal(a * prior_loc + b, marginal_std).log_prob(y)
    posterior_var = 1 / (1 / prior_std ** 2 + a ** 2 / noise_std ** 2)
    posterior_loc = posterior_var * (prior_loc / prior_std ** 2 + a * (y - b) / noise_std ** 2)
    exact_posterior = DiagonalGaussian(posterior_loc.view(1, 1), torch.tensor([[math.sqrt(posterior_var)]]))

    def log_p_y_given_z(z):
        return torch.distributions.Normal(a * z[..., 0] + b, noise_std).log_prob(y)
    return log_p_y_given_z, prior, exact_posterior, exact_log_p


def test_importance_sampling_is_exact_with_the_true_posterior_and_converges_otherwise():
    log_p_y_given_z, prior, exact_posterior, exact_log_p = linear_gaussian()
    generator = torch.Generator().manual_seed(0)
    # With q = p(z|y) every weight equals p(y): the estimate is exact at any S.
    exact = negative_cll_importance(log_p_y_given_z, Conditionals(prior, exact_posterior), 3, generator)
    assert exact.item() == pytest.approx(-exact_log_p.item(), abs=1e-5)
    # A wrong (wider, shifted) proposal and the prior-sampling estimator converge to -log p(y) as S grows.
    wrong = Conditionals(prior, DiagonalGaussian(exact_posterior.loc + 0.3, exact_posterior.scale * 1.5))
    errors = [abs(negative_cll_importance(log_p_y_given_z, wrong, s, generator).item() + exact_log_p.item())
              for s in (2, 200000)]
    assert errors[1] < 2e-3 and errors[1] < errors[0]
    monte_carlo = negative_cll_monte_carlo(log_p_y_given_z, wrong, 200000, generator).item()
    assert monte_carlo == pytest.approx(-exact_log_p.item(), abs=5e-3)


def tiny_models(seed=0):
    torch.manual_seed(seed)
    return BaselineNet(16, 16), CVAE(z_dim=3, hidden_1=16, hidden_2=16)


def test_importance_sampling_is_below_the_elbo_on_average():
    baseline, cvae = tiny_models()
    task = QuadrantTask(1)
    x, y = task.split(random_images(64))
    parts, log_p = conditionals(cvae, baseline, task, x, y), partial(log_likelihood, cvae, task, x, y)
    generator = torch.Generator().manual_seed(0)
    importance = negative_cll_importance(log_p, parts, 100, generator).mean()
    elbo_bound = negative_elbo_particles(log_p, parts, 10, generator).mean()
    assert importance < elbo_bound
    # The analytic-KL -ELBO used for training estimates the same bound.
    assert negative_elbo(cvae, baseline, task, x, y)[0].mean().item() == pytest.approx(elbo_bound.item(), rel=0.02)


def test_baseline_receives_no_gradient_from_the_cvae_loss():
    baseline, cvae = tiny_models()
    assert all(p.requires_grad for p in baseline.parameters())  # so only the objective's no_grad can protect it
    task = QuadrantTask(2)
    negative_elbo(cvae, baseline, task, *task.split(random_images(8)))[0].mean().backward()
    assert all(p.grad is None for p in baseline.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cvae.parameters())


def test_negative_clls_reports_every_estimator():
    baseline, cvae = tiny_models()
    values = negative_clls(QuadrantTask(3), random_images(10), baseline, cvae, n_samples=7, batch_size=4)
    assert set(values) == {"nn", "cvae_mc", "cvae_is", "cvae_elbo10"}
    assert all(math.isfinite(v) and v > 0 for v in values.values())


TINY = ["--n_train", "256", "--n_valid", "256", "--n_test", "64", "--hidden_1", "32", "--hidden_2", "32",
        "--z_dim", "4", "--batch_size", "64", "--n_samples", "5", "--n_figure_digits", "3", "--device", "cpu"]
# lr 0.05 makes the validation loss of this run go up at epoch 5, so patience 1 stops it there.
EARLY_STOPPING_NN = [*TINY, "--model", "nn", "--quadrants", "2", "--lr", "0.05", "--patience", "1", "--epochs", "20"]


@pytest.fixture(scope="module")
def stopped_baseline(tmp_path_factory):
    """A --model nn run that stopped early; also the --baseline_run of the CVAE tests."""
    run_dir = tmp_path_factory.mktemp("cvae") / "nn"
    run_script("main_cvae.py", *EARLY_STOPPING_NN, "--run_dir", str(run_dir))
    return run_dir


def test_early_stopping_restores_the_best_epoch_and_resume_keeps_it_stopped(stopped_baseline):
    run_dir = stopped_baseline
    rows = read_metrics(run_dir)
    losses = [float(row["valid_loss"]) for row in rows]
    best_epoch = losses.index(min(losses)) + 1
    assert len(rows) == best_epoch + 1 < 20, "the run should stop one epoch (patience 1) after its best"
    state = torch.load(run_dir / "checkpoint.pt")
    assert state["best"]["epoch"] == best_epoch and state["step"] == len(rows)
    result = json.loads((run_dir / "test_cll.json").read_text())
    assert result["best_epoch"] == best_epoch and (run_dir / "samples" / "completions.png").stat().st_size > 0
    # The reported CLL is the best epoch's model, not the last one's.
    images = load_image_dataset("mnist").test_x[:64]

    def test_cll(weights):
        baseline = BaselineNet(32, 32)
        baseline.load_state_dict(weights)
        return negative_clls(QuadrantTask(2), images, baseline.eval())["nn"]
    best, last = test_cll(state["best"]["model"]), test_cll(state["models"]["model"])
    assert result["negative_cll"]["nn"] == pytest.approx(best, rel=1e-5) and best != pytest.approx(last, rel=1e-5)

    run_script("main_cvae.py", *EARLY_STOPPING_NN, "--run_dir", str(run_dir), "--resume")
    assert read_metrics(run_dir) == rows
    assert json.loads((run_dir / "test_cll.json").read_text())["negative_cll"] == result["negative_cll"]


def test_cvae_resumed_equals_uninterrupted(stopped_baseline, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = [*TINY, "--model", "cvae", "--quadrants", "2", "--baseline_run", str(stopped_baseline)]
    run_script("main_cvae.py", *args, "--epochs", "2", "--run_dir", str(straight))
    run_script("main_cvae.py", *args, "--epochs", "1", "--run_dir", str(resumed))
    run_script("main_cvae.py", *args, "--epochs", "2", "--run_dir", str(resumed), "--resume")
    assert read_metrics(straight) == read_metrics(resumed)
    assert {"kl", "reconstruction"} <= set(read_metrics(straight)[0])
    results = [json.loads((run / "test_cll.json").read_text())["negative_cll"] for run in (straight, resumed)]
    assert results[0] == results[1] and set(results[0]) == {"nn", "cvae_mc", "cvae_is", "cvae_elbo10"}
    baseline_result = json.loads((stopped_baseline / "test_cll.json").read_text())["negative_cll"]
    assert results[0]["nn"] == pytest.approx(baseline_result["nn"], rel=1e-6)

    refused = run_script("main_cvae.py", *args, "--quadrants", "3", "--run_dir", str(tmp_path / "refused"),
                         check=False)
    assert refused.returncode == 1 and "--quadrants 2 (here 3)" in refused.stderr


def test_cvae_trains_its_own_baseline_and_keeps_it_on_resume(tmp_path):
    args = [*TINY, "--model", "cvae", "--quadrants", "1", "--gen_uses_x", "false", "--run_dir", str(tmp_path)]
    run_script("main_cvae.py", *args, "--epochs", "1")
    assert len(read_metrics(tmp_path / "baseline")) == len(read_metrics(tmp_path)) == 1
    # Resumed for longer, the CVAE continues on the baseline its first epoch was trained with.
    run_script("main_cvae.py", *args, "--epochs", "2", "--resume")
    assert len(read_metrics(tmp_path / "baseline")) == 1 and len(read_metrics(tmp_path)) == 2


@pytest.mark.parametrize("args,message", [
    (["--model", "nn", "--baseline_run", "somewhere"], "it needs --model cvae"),
    (["--quadrants", "4"], "argument --quadrants: invalid choice: 4 (choose from 1, 2, 3)"),
    (["--n_samples", "0"], "--n_samples 0 (must be > 0)"),
])
def test_contradicting_flags_are_refused(args, message, tmp_path):
    result = run_script("main_cvae.py", *args, "--run_dir", str(tmp_path / "run"), check=False)
    assert result.returncode == 2 and message in result.stderr


def write_test_cll(folder, model, quadrants, negative_cll, best_epoch=3):
    folder.mkdir(parents=True)
    (folder / "test_cll.json").write_text(json.dumps({
        "quadrants": quadrants, "model": model, "best_epoch": best_epoch, "n_train": 100, "n_test": 50,
        "n_samples": 10, "negative_cll": negative_cll}))


def test_summary_reads_each_setting_and_reports_mean_and_std_over_seed_folders(tmp_path):
    """The CLL table of run_cvae.sh's folders; with launch.py --seeds (q<N>-{nn,cvae}/seed<S>) mean ± std."""
    def write_seed(root, seed, offset):
        for quadrants in QUADRANT_SETTINGS:
            nn = 100.0 / quadrants + offset
            nn_run, cvae_run = (root / f"q{quadrants}-{model}" / ("" if seed is None else f"seed{seed}")
                                for model in ("nn", "cvae"))
            write_test_cll(nn_run, "nn", quadrants, {"nn": nn})
            write_test_cll(cvae_run, "cvae", quadrants, {"nn": nn, "cvae_mc": nn - 30 / quadrants,
                                                         "cvae_is": nn - 31 / quadrants, "cvae_elbo10": nn - 29})

    write_seed(tmp_path / "one", None, 0.0)
    one = summarize_cvae.summarize(tmp_path / "one", kind="quick", device="cpu", results=tmp_path / "results")
    rows = {(row["method"], row["dataset"]): row["ours"] for row in one.rows}
    assert rows["NN (baseline)", "MNIST, 2 input quadrant(s)"] == 50.0
    assert rows["gap NN - CVAE (Monte Carlo)", "MNIST, 3 input quadrant(s)"] == 10.0
    assert "best epochs NN/CVAE: 3 / 3, 3 / 3, 3 / 3" in one.notes and "(Monte Carlo): True" in one.notes
    for seed, offset in ((0, 0.0), (1, 2.0)):
        write_seed(tmp_path / "seeds", seed, offset)
    seeds = summarize_cvae.summarize(tmp_path / "seeds", kind="quick", device="cpu", results=tmp_path / "results")
    rows = {(row["method"], row["dataset"]): row["ours"] for row in seeds.rows}
    assert rows["NN (baseline)", "MNIST, 2 input quadrant(s)"] == f"51 ± {2 ** 0.5:.2g} (2 seeds)"
    assert rows["gap NN - CVAE (Monte Carlo)", "MNIST, 3 input quadrant(s)"] == "10 ± 0 (2 seeds)"
    assert "best epochs NN/CVAE: 3 / 3 & 3 / 3," in seeds.notes
    (tmp_path / "seeds" / "q2-cvae" / "seed1" / "test_cll.json").unlink()
    with pytest.raises(ValueError, match="hold other seeds"):
        summarize_cvae.summarize(tmp_path / "seeds", kind="quick", device="cpu", results=tmp_path / "results")
