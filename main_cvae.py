"""Conditional VAE for structured output prediction: MNIST quadrant completion (Sohn, Lee, Yan, NeurIPS 2015).

    python main_cvae.py --model nn --quadrants 1 --run_dir runs/cvae/q1-nn          # the deterministic baseline
    python main_cvae.py --model cvae --quadrants 1 --baseline_run runs/cvae/q1-nn   # the CVAE on that baseline
    python main_cvae.py --model cvae --quadrants 1         # trains its baseline first, in <run_dir>/baseline

Both models train with Adam and early stopping on a held-out part of the training set (the best epoch is restored);
the test set is only used for the final negative conditional log-likelihoods, written to <run_dir>/test_cll.json.
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
import math
import time
from pathlib import Path

import torch

from data.images import BatchIterator, load_image_dataset
from evaluation.cvae import completion_figure, negative_clls
from models.cvae import CVAE, BaselineNet
from objectives.cvae import QUADRANT_SETTINGS, QuadrantTask, baseline_negative_cll, negative_elbo
from training import (ConfigError, RunFolder, add_common_args, add_flags_from_defaults, apply_precision,
                      check_ranges, load_checkpoint, progress, resolve_device, run_main,
                      seed_everything, write_json_atomic)

DEFAULTS = dict(
    quadrants=1, model="cvae",
    baseline_run="",  # a finished --model nn run; empty: train the baseline first in <run_dir>/baseline
    z_dim=200, hidden_1=500, hidden_2=500,
    gen_uses_x=True,  # the paper's p(y|x,z); false gives Pyro's p(y|z)
    batch_size=128, lr=1e-3, patience=3,
    data_root="datasets", n_valid=10000,  # held out from the end of the training set, for early stopping
    n_train=0,  # 0: all remaining training images; fewer for CPU-scale runs
    n_test=0,  # 0: the whole test set
    n_samples=100, eval_batch_size=100, n_figure_digits=10,
)
CHOICES = dict(quadrants=QUADRANT_SETTINGS, model=("nn", "cvae"))
MODEL_KEYS = ("quadrants", "model", "baseline_run", "z_dim", "hidden_1", "hidden_2", "gen_uses_x", "data_root",
              "n_valid", "n_train")
POSITIVE = ("z_dim", "hidden_1", "hidden_2", "batch_size", "lr", "patience", "n_samples", "eval_batch_size", "epochs")
# One line of --help per flag of DEFAULTS (its default is appended).
FLAG_HELP = dict(
    quadrants="quadrants of the image given as input x; the rest is predicted",
    model="nn (the deterministic baseline) or cvae",
    baseline_run="a finished --model nn run to start the CVAE from (empty: train it first in <run_dir>/baseline)",
    z_dim="latent dimensions",
    hidden_1="width of every network's first hidden layer",
    hidden_2="width of every network's second hidden layer",
    gen_uses_x="generation network p(y|x,z) as in the paper; false gives Pyro's p(y|z)",
    batch_size="training batch size",
    lr="Adam learning rate",
    patience="epochs without a better validation loss before early stopping",
    data_root="folder of the datasets (torchvision layout; downloaded there when online)",
    n_valid="images held out from the end of the training set for early stopping",
    n_train="training images used (0: all the rest; fewer for CPU-scale runs)",
    n_test="test images scored (0: the whole test set)",
    n_samples="samples per test image of the Monte Carlo and importance-sampling conditional log-likelihoods",
    eval_batch_size="images per evaluation batch",
    n_figure_digits="digits of the completion figure (0: no figure)",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, length_flag="epochs", default_length=101)
    add_flags_from_defaults(parser, DEFAULTS, FLAG_HELP, CHOICES)
    args = parser.parse_args(argv)
    check_ranges(parser, args, positive=POSITIVE, non_negative=("n_valid", "n_train", "n_test", "n_figure_digits"))
    if args.baseline_run and args.model != "cvae":
        parser.error("--baseline_run is the frozen baseline of a CVAE; it needs --model cvae")
    return args


def load_data(args, device):
    data = load_image_dataset("mnist", args.data_root, device=device, n_valid=args.n_valid)
    if args.n_train > len(data.train_x):
        raise ConfigError(f"--n_train {args.n_train} exceeds the {len(data.train_x)} training images left after "
                          f"--n_valid {args.n_valid}; lower one of them (0 = all)")
    if args.n_train:
        data.train_x, data.train_y = data.train_x[:args.n_train], data.train_y[:args.n_train]
    if args.n_test:
        data.test_x, data.test_y = data.test_x[:args.n_test], data.test_y[:args.n_test]
    return data


def build_model(flags):
    if flags["model"] == "nn":
        return BaselineNet(flags["hidden_1"], flags["hidden_2"])
    return CVAE(flags["z_dim"], flags["hidden_1"], flags["hidden_2"], flags["gen_uses_x"])


def loss_terms(model, baseline, task, x, y, generator=None):
    """(per-image loss [B], named per-image parts): masked BCE for the NN, -ELBO for the CVAE."""
    if baseline is None:
        return baseline_negative_cll(model, task, x, y), {}
    loss, reconstruction, kl = negative_elbo(model, baseline, task, x, y, generator)
    return loss, {"reconstruction": reconstruction, "kl": kl}


@torch.no_grad()
def validation_loss(model, baseline, task, images, args):
    # The same noise at every epoch, from its own generator, so epochs compare and training's RNG is untouched.
    generator = torch.Generator(device=images.device).manual_seed(args.seed)
    total = sum(loss_terms(model, baseline, task, *task.split(batch), generator)[0].sum()
                for batch in images.split(args.eval_batch_size))
    return total.item() / len(images)


def fit(run, args, data, task, device, baseline=None):
    """Train with early stopping on the validation loss; returns the model at its best epoch and that epoch.

    The checkpoint after every epoch holds the current model (for --resume) and the best one (to restore)."""
    autocast = apply_precision(args.precision, device)
    seed_everything(args.seed)
    model = build_model(vars(args)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, foreach=True)  # never the baseline's parameters
    best = {"model": {k: v.clone() for k, v in model.state_dict().items()}, "epoch": 0, "valid_loss": math.inf}
    state = run.restore({"model": model}, {"model": optimizer})
    best, epochs_since_best = state.get("best", best), state.get("epochs_since_best", 0)
    batches = BatchIterator(data.train_x, batch_size=args.batch_size, drop_last=False)

    for epoch in range(run.start_step, args.epochs):
        if epochs_since_best >= args.patience:
            break
        model.train()
        for images, _ in progress(batches, desc=f"{args.model} q{args.quadrants} epoch {epoch + 1}"):
            with autocast():
                loss, parts = loss_terms(model, baseline, task, *task.split(images))
            loss = loss.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # Sums over images (the last batch may be smaller), divided by the image count below.
            run.add_terms({name: value.mean() * len(images) for name, value in {"train_loss": loss, **parts}.items()})
        sums = run.read_terms(epoch + 1, mean=False)
        model.eval()
        valid_loss = validation_loss(model, baseline, task, data.valid_x, args)
        if valid_loss < best["valid_loss"]:
            best = {"model": {k: v.clone() for k, v in model.state_dict().items()}, "epoch": epoch + 1,
                    "valid_loss": valid_loss}
            epochs_since_best = 0
        else:
            epochs_since_best += 1
        run.log({"step": epoch + 1, **{k: v / len(data.train_x) for k, v in sums.items()},
                 "valid_loss": valid_loss, "best_epoch": best["epoch"], "elapsed_s": round(run.elapsed_s(), 2)})
        run.save_checkpoint(epoch + 1, {"model": model}, {"model": optimizer}, best=best,
                            epochs_since_best=epochs_since_best)
        print(f"epoch {epoch + 1}: valid {valid_loss:.3f} (best {best['valid_loss']:.3f} at epoch {best['epoch']})",
              flush=True)
    model.load_state_dict(best["model"])
    return model.eval(), best["epoch"]


def load_baseline(baseline_run, args, device):
    """The best model of a finished --model nn run on the same task and the same validation split."""
    state = load_checkpoint(Path(baseline_run) / "checkpoint.pt",
                            advice="Pass --baseline_run a finished --model nn run folder (or leave it empty).")
    flags = state["config"]["flags"]
    mismatched = [] if flags.get("model") == "nn" else [f"--model {flags.get('model')!r} (a baseline is nn)"]
    mismatched += [f"--{key} {flags.get(key)!r} (here {getattr(args, key)!r})"
                   for key in ("quadrants", "n_valid", "data_root") if flags.get(key) != getattr(args, key)]
    if mismatched:
        raise ConfigError(f"--baseline_run {baseline_run} is not a baseline for this run: it has "
                          + ", ".join(mismatched) + ". Train one with --model nn and the same task flags.")
    finished = state["epochs_since_best"] >= flags["patience"] or state["step"] >= flags["epochs"]
    if not finished:
        raise ConfigError(f"--baseline_run {baseline_run} stopped at epoch {state['step']} before early stopping or "
                          f"its --epochs; finish it with --resume first")
    baseline = build_model(flags).to(device)
    baseline.load_state_dict(state["best"]["model"])
    return baseline.eval().requires_grad_(False)


def train_baseline(args, data, task, device):
    """The baseline of a CVAE run without --baseline_run: trained (or resumed) in <run_dir>/baseline."""
    baseline_args = argparse.Namespace(**{**vars(args), "model": "nn", "baseline_run": "", "resume": True,
                                          "run_dir": str(Path(args.run_dir) / "baseline")})
    run = RunFolder(baseline_args.run_dir, vars(baseline_args), resume=True, model_keys=MODEL_KEYS)
    baseline, _ = fit(run, baseline_args, data, task, device)
    return baseline.requires_grad_(False)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    data = load_data(args, device)  # before the run folder: a bad dataset writes nothing
    run = RunFolder(args.run_dir, vars(args), resume=args.resume, model_keys=MODEL_KEYS)
    task = QuadrantTask(args.quadrants, device)
    baseline = None
    if args.model == "cvae" and args.baseline_run:
        baseline = load_baseline(args.baseline_run, args, device)
    elif args.model == "cvae" and run.resume_state:  # the CVAE's epochs so far saw this baseline: never retrain it
        baseline = load_baseline(Path(args.run_dir) / "baseline", args, device)
    elif args.model == "cvae":
        baseline = train_baseline(args, data, task, device)
    model, best_epoch = fit(run, args, data, task, device, baseline)
    baseline, cvae = (model, None) if baseline is None else (baseline, model)

    start = time.time()
    clls = negative_clls(task, data.test_x, baseline, cvae, args.n_samples, args.eval_batch_size, args.seed)
    results = {"quadrants": args.quadrants, "model": args.model, "best_epoch": best_epoch,
               "epochs_trained": run.checkpoint_step, "n_train": len(data.train_x), "n_test": len(data.test_x),
               "n_samples": args.n_samples, "negative_cll": clls, "eval_s": round(time.time() - start, 2)}
    write_json_atomic(run.path / "test_cll.json", results)
    if args.n_figure_digits:
        completion_figure(run.samples_dir / "completions.png", task, data.test_x[:args.n_figure_digits], baseline,
                          cvae, seed=args.seed,
                          title=f"{'CVAE vs NN' if cvae else 'NN'}, MNIST, {args.quadrants} input quadrant(s) "
                                f"({len(data.train_x)} training images, best epoch {best_epoch} of at most "
                                f"{args.epochs}): test completions" + (", CVAE z ~ p(z|x)" if cvae else ""))
    print(f"test negative CLL (nats/image), {args.quadrants} quadrant(s), best epoch {best_epoch}: "
          + ", ".join(f"{name} {value:.2f}" for name, value in clls.items()))


if __name__ == "__main__":
    run_main(main)
