"""Symmetric equilibrium learning of a binary-latent HVAE (Flach, Schlesinger, Shekhovtsov, AISTATS 2024).

    python main_sym.py --dataset mnist --encoder ladder --device cuda              # README setting, 200k iterations
    python main_sym.py --arch mlp --mlp_width 300 --conditional_width 300 --batch_size 128 --lr 3e-4 --niters 20000 \\
        --device cpu                                                                 # CPU scale (run_sym.sh --quick)

Each iteration: a decoder step (maximum likelihood of p on (z, x) with z ~ q(z|x_data)), then an encoder step
(maximum likelihood of q on ancestral samples of the updated p), each with its own Adam. main_elbo.py trains the
same model by the ELBO through the same loop (train() below).
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
import contextlib

import torch

from data.images import load_image_dataset
from evaluation.figures import save_labelled_grid
from evaluation.symvae import (METHOD_NAMES, MODEL_FLAGS, mean_squared_weight, mutual_information, progress_grid,
                               separate_rng_stream)
from models.binary_hvae import ARCHITECTURES, ENCODER_ORDERS, LIKELIHOODS, build_model
from objectives.symvae import clean_images, decoder_step_loss, encoder_step_loss, training_noise
from training import (RunFolder, add_common_args, add_flags_from_defaults, apply_precision,
                      check_ranges, progress, resolve_device, run_main, seed_everything, write_json_atomic)

DEFAULTS = dict(  # the README's settings; the official --stepsize default 1e-8 would not learn
    dataset="mnist", encoder="ladder", arch="conv", nz0=30, nz1=100,
    conditional_width=600, conv_channels=32, mlp_width=600,
    lr=1e-4, batch_size=1024, train_on_all=False, data_root="datasets",
    log_every=100, checkpoint_every=1000, image_every=1000, display_chain_steps=100, stats_batch_size=1024,
)
CHOICES = dict(dataset=tuple(LIKELIHOODS), encoder=ENCODER_ORDERS, arch=ARCHITECTURES)
MODEL_KEYS = ("method", *MODEL_FLAGS, "train_on_all")
POSITIVE = ("niters", "nz0", "nz1", "conditional_width", "conv_channels", "mlp_width", "lr", "batch_size",
            "log_every", "checkpoint_every", "image_every", "stats_batch_size")
AVERAGING_STEPS = 1000  # moving averages: running mean for the first 1000 iterations, then rate 0.001 (official)
# One line of --help per flag of DEFAULTS (its default is appended).
FLAG_HELP = dict(
    dataset="mnist (binarised, Bernoulli pixels) or fmnist (Gaussian pixels)",
    encoder="encoder order: ladder q(z1|x) q(z0|x,z1) or reverse q(z0|x) q(z1|x,z0)",
    arch="networks: conv (the official ones) or mlp (CPU scale)",
    nz0="bits of the top latent layer z0 (uniform prior)",
    nz1="bits of the latent layer z1 next to x",
    conditional_width="width of the conditional networks between the latent layers",
    conv_channels="base channel count of the conv networks (--arch conv)",
    mlp_width="width of the MLP trunk and image network (--arch mlp)",
    lr="Adam learning rate (each step's optimiser)",
    batch_size="images per iteration, drawn with replacement",
    train_on_all="train on all 70k images (train + test) as the official code; false keeps the test set out",
    data_root="folder of the datasets (torchvision layout; downloaded there when online)",
    log_every="iterations between metrics rows (moving-average losses, weights, per-bit MI)",
    checkpoint_every="iterations between checkpoints (a multiple of --log_every)",
    image_every="iterations between progress grids (a multiple of --log_every)",
    display_chain_steps="limiting-chain steps of the progress grid's last row",
    stats_batch_size="prior samples of the per-bit mutual information",
)


def parse_args(method, description, argv=None):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, length_flag="niters", default_length=200000)
    add_flags_from_defaults(parser, DEFAULTS, FLAG_HELP, CHOICES)
    parser.add_argument("--encoder_width", type=int, default=None,
                        help="encoder trunk width (default: 600 on MNIST, 1000 on FMNIST for --arch conv as the "
                             "official code; --mlp_width for --arch mlp)")
    args = parser.parse_args(argv)
    args.method = method
    check_ranges(parser, args, positive=(*POSITIVE, *(["encoder_width"] if args.encoder_width is not None else [])),
                 non_negative=("display_chain_steps",))
    if args.checkpoint_every % args.log_every or args.image_every % args.log_every:
        parser.error(f"--checkpoint_every {args.checkpoint_every} and --image_every {args.image_every} must be "
                     f"multiples of --log_every {args.log_every} (the loss is checked for nan when logging)")
    return args


def minimise(optimizer, loss):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class SymmetricUpdate:
    """One iteration: the decoder step on encoder samples of data, then the encoder step on ancestral samples of the
    already updated decoder. Two optimisers: neither step moves the other side. `autocast` (training.apply_precision)
    wraps each loss, never its backward pass."""

    def __init__(self, model, lr, autocast=contextlib.nullcontext):
        self.model, self.autocast = model, autocast
        self.optimizers = {"decoder": torch.optim.Adam(model.decoder_parameters(), lr=lr, foreach=True),
                           "encoder": torch.optim.Adam(model.encoder.parameters(), lr=lr, foreach=True)}

    def __call__(self, x):
        with self.autocast():
            loss, decoder_terms = decoder_step_loss(self.model, x)
        minimise(self.optimizers["decoder"], loss)
        with self.autocast():
            loss, encoder_terms = encoder_step_loss(self.model, len(x))
        minimise(self.optimizers["encoder"], loss)
        return {**decoder_terms, **encoder_terms}


def update_moving_averages(averages, terms, step):
    rate = 1 / (step + 1) if step < AVERAGING_STEPS else 1 / AVERAGING_STEPS
    for name, value in terms.items():
        averages[name] = value if name not in averages else averages[name] * (1 - rate) + value * rate


def log_statistics(run, step, model, averages, x, args, device):
    """The official code's log line (moving-average losses, mean squared weight, mean per-bit MI) as a metrics row;
    the sorted per-bit MI curves go to mutual_information.json."""
    with separate_rng_stream(device, args.seed + step):
        information = mutual_information(model, x, args.stats_batch_size)
    run.log({"step": step, **averages, "mean_sq_weight": mean_squared_weight(model),
             "pmi1": information["p_z0_z1"].mean(), "qmi0": information["q_x_z0"].mean(),
             "qmi1": information["q_xz0_z1"].mean(), "elapsed_s": round(run.elapsed_s(), 2)})
    write_json_atomic(run.path / "mutual_information.json",
                      {"step": step, **{name: values.sort().values.tolist() for name, values in information.items()}})


def train(method, make_update, description, argv=None):
    """The loop shared by main_sym.py and main_elbo.py; make_update(model, lr, autocast) returns a callable
    x -> loss terms holding its optimisers in .optimizers."""
    args = parse_args(method, description, argv)
    device = resolve_device(args.device)
    autocast = apply_precision(args.precision, device, cudnn_benchmark=True)  # one batch shape throughout
    # A held-out test set is kept (n_valid=0: 60k train, 10k test); --train_on_all trains on all 70k as the
    # official code did. Loaded before the run folder: a bad dataset writes nothing.
    splits = load_image_dataset(args.dataset, data_root=args.data_root, device=device, n_valid=0)
    run = RunFolder(args.run_dir, vars(args), resume=args.resume, model_keys=MODEL_KEYS)
    seed_everything(args.seed)
    train_x = torch.cat([splits.train_x, splits.test_x]) if args.train_on_all else splits.train_x
    model = build_model(**{key: getattr(args, key) for key in MODEL_FLAGS}).to(device)
    update = make_update(model, args.lr, autocast)
    state = run.restore({"model": model}, update.optimizers)
    averages = {name: value.to(device) for name, value in state.get("moving_averages", {}).items()}

    def plot(path, done):
        with separate_rng_stream(device, args.seed + done):
            rows = progress_grid(model, clean_images(train_x[:10], args.dataset), args.display_chain_steps)
        save_labelled_grid(path, rows, f"{METHOD_NAMES[method]}, {args.dataset} {args.encoder}, {done} of "
                                       f"{args.niters} iterations (batch {args.batch_size}, lr {args.lr}, {args.arch} "
                                       f"nets, {args.nz0}/{args.nz1} bits)")

    def follow_ups(done):  # after the checkpoint: a plot never costs a run
        if done % args.image_every == 0 or done == args.niters:
            run.follow_up(lambda path: plot(path, done), run.samples_dir / f"step{done:07d}.png")
    run.redo_follow_ups(follow_ups)
    bar = progress(range(run.start_step, args.niters), total=args.niters, initial=run.start_step,
                   desc=f"{method} {args.dataset} {args.encoder}")
    for step in bar:
        # Batches drawn with replacement from the resident set: one index draw, and resumable through the RNG state.
        index = torch.randint(len(train_x), (args.batch_size,), device=device)
        x = training_noise(clean_images(train_x[index], args.dataset), args.dataset)
        terms = update(x)
        update_moving_averages(averages, terms, step)
        run.add_terms(terms)

        done = step + 1
        if done % args.log_every and done != args.niters:
            continue
        run.read_terms(done)  # raises on a nan or inf since the last log point
        log_statistics(run, done, model, averages, x, args, device)
        if done % args.checkpoint_every == 0 or done == args.niters:
            run.save_checkpoint(done, {"model": model}, update.optimizers, moving_averages=averages)
        follow_ups(done)
        bar.set_postfix({name: f"{value.item():.4f}" for name, value in averages.items()}, refresh=False)


if __name__ == "__main__":
    run_main(lambda: train("symmetric", SymmetricUpdate, __doc__))
