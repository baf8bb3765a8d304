"""InfoVAE and Lagrangian VAE on dynamically binarised MNIST (Zhao, Song, Ermon, UAI 2018).

    python main_lagvae.py --method infovae --mi 1 --e1 1 --e2 1          # fixed weights (README example)
    python main_lagvae.py --method lagvae --mi 1 --e1 86 --e2 5          # learned multipliers (README example)
    python main_lagvae.py --method infovae --mi 0 --e1 1 --e2 0          # a plain VAE
    bash sweep_lagvae.sh [--quick]                                       # the e1 sweep and its Pareto figure

--e1 / --e2 are the weights of InfoVAE (defaults 1, 0) and the constraint levels of LagVAE (defaults 88, 8):
-ELBO <= e1 and 1e4 * MMD(q(z), p(z)) <= e2. The KL is analytic. metrics.csv logs, every --eval_every steps, the
training terms averaged since the last row, the multipliers, and on fixed train / test subsets of --n_eval images the
consistency (-ELBO) and a bracket on I_q(x;z): the InfoNCE lower bound (at most log n_eval), the leave-one-out upper
bound and the KL (another upper bound); the last row adds the IWAE-k NLL of the test subset. The sweep's summary
re-evaluates the final checkpoints on all training and test images (evaluation/lagvae.py).
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
import itertools
from pathlib import Path

import torch

from data.images import BatchIterator
from evaluation.lagvae import (fixed_binarisations, heldout_metrics, iwae_nll, paper_mnist_split,
                               reconstruction_figure)
from models.lagvae import BernoulliMLPDecoder, GaussianMLPEncoder, binarize
from objectives.lagvae import (MULTIPLIER_RANGE, constraint_violations, consistency_terms, information_objective,
                               initial_multipliers, lagrangian, mmd_noise_floor, multiplier_ascent_step,
                               multiplier_optimizer, multipliers_at_clip)
from training import (ConfigError, RunFolder, add_common_args, add_flags_from_defaults, apply_precision,
                      check_ranges, load_checkpoint, progress, resolve_device, run_main, seed_everything)

DEFAULTS = dict(
    method="lagvae", mi=0.0,
    z_dim=64, width=1024,
    batch_size=250, lr=1e-4, beta1=0.5,  # Adam(1e-4, betas=(0.5, 0.999)) as the official code
    lambda_lr=1e-4,  # the official RMSProp lr; it barely moves the multipliers in a short run
    n_train=0,  # 0: all 55000 training images; N: the first N (CPU-scale runs)
    init_from="",  # a run folder whose networks start this run (the CPU-scale sweep starts from its VAE)
    data_root="datasets",
    eval_every=5000, n_eval=10000, eval_batch_size=1000, iwae_k=1000,
)
METHOD_DEFAULTS = {"infovae": {"e1": 1.0, "e2": 0.0}, "lagvae": {"e1": 88.0, "e2": 8.0}}
MODEL_KEYS = ("method", "mi", "e1", "e2", "z_dim", "width", "n_train", "init_from")
POSITIVE = ("z_dim", "width", "batch_size", "lr", "eval_every", "n_eval", "eval_batch_size", "iwae_k", "epochs")
MNIST_TEST_SIZE = 10000
# One line of --help per flag of DEFAULTS (its default is appended).
FLAG_HELP = dict(
    method="infovae (fixed weights --e1, --e2) or lagvae (learned multipliers, constraints --e1, --e2)",
    mi="weight of the mutual information I_q(x;z): > 0 maximises it, < 0 minimises it, 0 leaves it out",
    z_dim="latent dimensions",
    width="width of the encoder's and decoder's hidden layers",
    batch_size="training batch size",
    lr="Adam learning rate of the networks",
    beta1="Adam beta1 of the networks",
    lambda_lr="RMSProp learning rate of the Lagrange multipliers (lagvae)",
    n_train="training images used, the first N (0: all 55000)",
    init_from="a run folder whose networks start this run (the CPU-scale sweep starts from its VAE)",
    data_root="folder of the datasets (torchvision layout; downloaded there when online)",
    eval_every="training steps between metrics rows",
    n_eval="train and test images of each evaluation",
    eval_batch_size="images per evaluation batch",
    iwae_k="importance samples of the final IWAE NLL",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, length_flag="epochs", default_length=5000)
    add_flags_from_defaults(parser, DEFAULTS, FLAG_HELP, {"method": tuple(METHOD_DEFAULTS)})
    parser.add_argument("--e1", type=float, help="InfoVAE weight / LagVAE bound on -ELBO (default: 1 / 88)")
    parser.add_argument("--e2", type=float, help="InfoVAE weight / LagVAE bound on 1e4*MMD (default: 0 / 8)")
    args = parser.parse_args(argv)
    if args.method not in METHOD_DEFAULTS:
        parser.error(f"--method {args.method!r} is not one of {', '.join(METHOD_DEFAULTS)}")
    for name, default in METHOD_DEFAULTS[args.method].items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    check_ranges(parser, args, positive=POSITIVE, non_negative=("n_train",), fraction=("beta1",))
    if 0 < args.n_train < args.batch_size:
        parser.error(f"--n_train {args.n_train} holds less than one batch of --batch_size {args.batch_size}")
    if args.n_eval > MNIST_TEST_SIZE:
        parser.error(f"--n_eval {args.n_eval} exceeds the {MNIST_TEST_SIZE} MNIST test images")
    if args.method == "infovae" and min(args.e1, args.e2) < 0:
        parser.error(f"InfoVAE weights --e1 {args.e1:g} and --e2 {args.e2:g} must be >= 0: a negative weight "
                     "makes the loss unbounded below")
    if args.method == "lagvae" and args.lambda_lr <= 0:
        parser.error("--lambda_lr must be positive for --method lagvae")
    return args


def load_data(args, device):
    train_x, test_x = paper_mnist_split(args.data_root, args.n_train, device)
    heldout = fixed_binarisations({"train": train_x[:args.n_eval], "test": test_x[:args.n_eval]}, args.seed)
    return train_x, heldout


def load_initial_networks(encoder, decoder, run_dir):
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt", advice="Pass --init_from a run folder of main_lagvae.py.")
    try:
        encoder.load_state_dict(state["models"]["encoder"])
        decoder.load_state_dict(state["models"]["decoder"])
    except (KeyError, RuntimeError) as error:
        raise ConfigError(f"--init_from {run_dir}: its networks do not fit --width / --z_dim of this run "
                          f"({str(error).strip().splitlines()[0]})") from error
    print(f"starting from the networks of {run_dir} (step {state['step']}); optimizers and multipliers fresh")


def batches_from(train_x, step, args, device):
    """Mini-batches from global step `step` on; epoch e is shuffled by a generator seeded with (seed, e), so a
    resumed run sees the same batches as an uninterrupted one."""
    steps_per_epoch = len(train_x) // args.batch_size
    epoch, skip = divmod(step, steps_per_epoch)
    while True:
        generator = torch.Generator(device=device).manual_seed(args.seed * 100003 + epoch)
        for x, _ in itertools.islice(BatchIterator(train_x, None, args.batch_size, generator), skip, None):
            yield x
        epoch, skip = epoch + 1, 0


def warn_if_infeasible(args):
    floor = mmd_noise_floor(args.batch_size, args.z_dim)
    if args.method == "lagvae" and args.e2 <= floor:
        print(f"warning: --e2 {args.e2:g} is at or below the MMD noise floor {floor:.2f} (E[1e4*MMD] between two "
              f"samples of N(0, I) at batch {args.batch_size}, z_dim {args.z_dim}): the constraint cannot be met "
              f"and l2 will climb to its clip {MULTIPLIER_RANGE[1]:g}. Use --e2 well above {floor:.2f}.", flush=True)


def report_pinned_multipliers(multipliers, means, args, already_reported):
    """Say once per constraint when its multiplier reached the upper clip: the constraint is (so far) infeasible."""
    constraints = (("e1", "-ELBO", means["nll"] + means["kl"], args.e1), ("e2", "1e4*MMD", means["mmd"], args.e2))
    for pinned, (name, term, value, bound) in zip(multipliers_at_clip(multipliers), constraints):
        if pinned and name not in already_reported:
            already_reported.add(name)
            print(f"warning: {term} = {value:.2f} > {name} = {bound:g} with its multiplier pinned at the clip "
                  f"{MULTIPLIER_RANGE[1]:g}: the constraint looks infeasible; raise --{name}.", flush=True)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    autocast = apply_precision(args.precision, device)
    train_x, heldout = load_data(args, device)  # before the run folder: a bad dataset writes nothing
    run = RunFolder(args.run_dir, vars(args), resume=args.resume, model_keys=MODEL_KEYS)
    seed_everything(args.seed)
    encoder = GaussianMLPEncoder(args.z_dim, args.width).to(device)
    decoder = BernoulliMLPDecoder(args.z_dim, args.width).to(device)
    # One Adam for the model, stepped once per batch (the official code stepped one instance twice).
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=args.lr,
                                 betas=(args.beta1, 0.999), foreach=True)
    multipliers = initial_multipliers(device)
    lambda_optimizer = multiplier_optimizer(multipliers, args.lambda_lr)
    models, optimizers = {"encoder": encoder, "decoder": decoder}, {"model": optimizer, "multipliers": lambda_optimizer}
    state = run.restore(models, optimizers)
    if state:
        with torch.no_grad():
            multipliers.copy_(state["multipliers"])
    elif args.init_from:
        load_initial_networks(encoder, decoder, args.init_from)
    warn_if_infeasible(args)

    n_steps = args.epochs * (len(train_x) // args.batch_size)

    def follow_ups(done):  # after the checkpoint: a figure never costs a run
        if done == n_steps:
            title = (f"{'LagVAE' if args.method == 'lagvae' else 'InfoVAE'} mi={args.mi:+g} e1={args.e1:g} "
                     f"e2={args.e2:g}, binarised MNIST, {done} steps (widths {args.width}, batch {args.batch_size})")
            run.follow_up(lambda path: reconstruction_figure(path, encoder, decoder, heldout["test"], seed=args.seed,
                                                             title=title),
                          run.samples_dir / f"step{done:08d}.png")
    run.redo_follow_ups(follow_ups)
    pinned_reported = set()
    bar = progress(zip(range(run.start_step, n_steps), batches_from(train_x, run.start_step, args, device)),
                   total=n_steps, initial=run.start_step, desc=f"{args.method} mi={args.mi:g}")
    for step, x_uint8 in bar:
        x = binarize(x_uint8)  # dynamic binarisation: a fresh Bernoulli draw of every batch
        with autocast():
            terms = consistency_terms(encoder, decoder, x)
            if args.method == "lagvae":
                l1, l2 = multipliers.detach().unbind()
                loss = lagrangian(terms, args.mi, l1, l2, args.e1, args.e2)
            else:
                loss = information_objective(terms, args.mi, args.e1, args.e2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if args.method == "lagvae":  # simultaneous ascent on the same batch, as the official code
            multiplier_ascent_step(multipliers, lambda_optimizer, constraint_violations(terms, args.e1, args.e2))
        run.add_terms({"loss": loss, **terms})

        done = step + 1
        if done % args.eval_every == 0 or done == n_steps:
            means = run.read_terms(done)
            l1, l2 = multipliers.tolist() if args.method == "lagvae" else (args.e1, args.e2)
            metrics = heldout_metrics(encoder, decoder, heldout, args.eval_batch_size, seed=args.seed + done)
            final_iwae = (iwae_nll(encoder, decoder, heldout["test"], args.iwae_k, args.eval_batch_size, args.seed)
                          if done == n_steps else "")
            run.log({"step": done, "epoch": round(done * args.batch_size / len(train_x), 2), **means,
                     "elbo": means["nll"] + means["kl"], "l1": l1, "l2": l2, **metrics,
                     "test_iwae_nll": final_iwae, "elapsed_s": round(run.elapsed_s(), 2)})
            if args.method == "lagvae":
                report_pinned_multipliers(multipliers, means, args, pinned_reported)
            run.save_checkpoint(done, models, optimizers, multipliers=multipliers.detach().clone())
            follow_ups(done)
            bar.set_postfix({"-elbo": f"{means['nll'] + means['kl']:.2f}", "kl": f"{means['kl']:.2f}",
                             "mmd": f"{means['mmd']:.2f}", "l1": f"{l1:.3g}", "l2": f"{l2:.3g}",
                             "test_-elbo": f"{metrics['test_elbo']:.2f}"}, refresh=False)
    if run.start_step >= n_steps:
        print(f"{run.path} already holds {run.start_step} of {n_steps} steps; nothing to do")


if __name__ == "__main__":
    run_main(main)
