"""CyGen and its baselines on images (Liu et al., NeurIPS 2021, section 5.2): MNIST, Fashion-MNIST, SVHN.

    python main_image.py --dataset mnist --method cygen --warm_up 100 --epochs 10      # CyGen(PT), paper Table 7
    python main_image.py --dataset mnist --method elbo --warm_up 100 --epochs 100      # VAE
    python main_image.py --dataset mnist --method dae --set_p_var 1 --epochs 100       # DAE
    python main_image.py --dataset svhn --method cygen --warm_up 100 --epochs 20 --kl_beta 0.01 --vae_clamp 0.1

A run is --warm_up epochs of ELBO (decoder variance --warm_p_var, KL weight ramped up to --kl_beta over the first
half, Adamax at --warm_lr), then --epochs of --method with Adamax at --lr for the encoder and --lr x --lr_ratio_dec
for the decoder, decoder variance --set_p_var. One metrics row per epoch; downstream accuracy after the warm-up, at
the end and every --eval_every epochs; sample grids after the warm-up and at the end.
--compile_flow true trains CyGen with its whole loss as one torch.compile graph (models/compiled_steps.py: the same
loss and gradients, ~7x fewer kernel launches per step; the first step compiles for minutes; needs a C++ compiler).
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
import csv
import dataclasses
from pathlib import Path

import torch

from data.images import BatchIterator, load_image_dataset, to_float
from evaluation.downstream import downstream_accuracy
from evaluation.figures import rows_of, save_labelled_grid
from evaluation.samples import save_sample_tensor
from models import compiled_steps
from models.image import image_decoder, image_encoder
from objectives.cygen import COMPATIBILITY_VARIANTS, compatibility_terms, cygen_loss
from objectives.vae import dae_loss, elbo_loss
from sampling.chains import gibbs_chain, x_langevin
from training import (ConfigError, RunFolder, add_common_args, add_flags_from_defaults, apply_precision,
                      check_ranges, load_checkpoint, progress, resolve_device, run_main,
                      seed_everything, separate_rng_stream)
from training.precision import CYGEN_BF16_REFUSAL
from training.runs import check_same_model_flags

DEFAULTS = dict(
    dataset="mnist", data_root="datasets", n_train=0, n_test=0,  # > 0: subsets (CPU-scale runs, tests)
    downstream_n_train=0,  # > 0: the classifier on the first that many official training images; 0: the --n_train ones
    method="cygen", z_dim=64, n_flows=4, n_householder=8,
    warm_up=0, warm_lr=1e-3, warm_p_var=0.5, kl_beta=1.0,
    lr=1e-4, lr_ratio_dec=0.1, set_p_var=0.01, vae_clamp=100.0, batch_size=100,
    cmtype="jacnorm_x", w_cm=1e-3, n_mc_px=1, compat_rows=0,  # compat_rows > 0: compatibility on that many rows
    compile_flow=False,  # the CyGen loss as one torch.compile graph (models/compiled_steps.py): same math, fewer kernels
    eval_every=0, valid_size=1000, n_trials=10, downstream_epochs=100, downstream_draws=10,
    gen_batch_size=1000, grid_size=64,  # SGLD chains run at once for --save_samples; images per sample grid
    gen_niter=200, gen_stepsize=1e-3, gen_anneal=10.0, gen_freeze=0.0, gen_init="decoder",
    gibbs_steps=18, save_samples=0,
    warm_start="",  # a run's warmup_checkpoint.pt: start after its warm-up (CyGen(PT) reusing the VAE's warm-up)
)
CHOICES = dict(dataset=("mnist", "fmnist", "svhn"), method=("cygen", "elbo", "dae"), cmtype=COMPATIBILITY_VARIANTS,
               gen_init=("decoder", "uniform"))
MODEL_KEYS = ("dataset", "n_train", "method", "z_dim", "n_flows", "n_householder", "warm_up", "cmtype")
# Two runs that agree on these flags train the same warm-up, so one can start from the other's warm-up checkpoint.
WARM_UP_KEYS = ("dataset", "data_root", "n_train", "seed", "z_dim", "n_flows", "n_householder", "warm_up", "warm_lr",
                "warm_p_var", "kl_beta", "batch_size", "n_mc_px")
WARM_UP_CHECKPOINT = "warmup_checkpoint.pt"
POSITIVE = ("z_dim", "n_flows", "n_householder", "warm_lr", "warm_p_var", "lr", "lr_ratio_dec", "set_p_var",
            "vae_clamp", "batch_size", "n_mc_px", "valid_size", "n_trials", "downstream_epochs", "downstream_draws",
            "gen_batch_size", "grid_size")
NON_NEGATIVE = ("n_train", "n_test", "downstream_n_train", "warm_up", "kl_beta", "w_cm", "compat_rows", "eval_every",
                "gen_niter", "gen_stepsize", "gen_anneal", "gen_freeze", "gibbs_steps", "save_samples")
GRIDS = ("recon", "prior", "gibbs", "langevin")
METRIC_COLUMNS = ("step", "phase", "train_loss", "recon", "kl", "compat", "valid_recon", "valid_compat",
                  "accuracy", "accuracy_std", "elapsed_s")
# One line of --help per flag of DEFAULTS (its default is appended).
FLAG_HELP = dict(
    dataset="image dataset",
    data_root="folder of the datasets (torchvision layout; downloaded there when online)",
    n_train="training images used, the first N (0: all; > 0 for CPU-scale runs and tests)",
    n_test="test images used, the first N (0: all)",
    downstream_n_train="downstream classifier on the first N official training images (0: the --n_train ones)",
    method="what trains after the warm-up: cygen (CyGen), elbo (VAE) or dae (deterministic auto-encoder)",
    z_dim="latent dimensions",
    n_flows="Householder-Sylvester flow steps of the encoder q(z|x)",
    n_householder="Householder reflections per flow step",
    warm_up="epochs of ELBO training before --method (CyGen(PT)'s pre-training)",
    warm_lr="Adamax learning rate of the warm-up",
    warm_p_var="decoder variance during the warm-up",
    kl_beta="KL weight, ramped up over the first half of the warm-up",
    lr="Adamax learning rate of the encoder after the warm-up",
    lr_ratio_dec="decoder learning rate = --lr x this",
    set_p_var="decoder variance after the warm-up",
    vae_clamp="clamp of the encoder's base noise e ~ N(0, I) to [-c, c] after the warm-up (SVHN: 0.1)",
    batch_size="training batch size",
    cmtype="CyGen's compatibility norm: jacnorm_x (with J^-T), jacnorm_lite_x (paper eq. 23, no second solve)",
    w_cm="weight of the compatibility term (0: the no-compatibility ablation)",
    n_mc_px="Monte Carlo samples z ~ q(z|x) per image of the data-fit term (CyGen's harmonic mean, the ELBO)",
    compat_rows="compatibility on the first N rows of each batch only (0: all rows; CPU scale)",
    compile_flow="the CyGen loss as one torch.compile graph: same math, ~7x fewer kernels per step; the first step "
                 "compiles for minutes (needs a C/C++ compiler)",
    eval_every="epochs between downstream evaluations (0: after the warm-up and at the end only)",
    valid_size="test images of the per-epoch validation reconstruction and compatibility (they select nothing)",
    n_trials="downstream classifiers trained per evaluation (mean and std over them)",
    downstream_epochs="epochs of each downstream classifier",
    downstream_draws="z ~ q(z|x) draws per training image for the downstream classifier",
    gen_batch_size="SGLD chains run at once for --save_samples",
    grid_size="images per sample grid",
    gen_niter="x-space SGLD steps of generation",
    gen_stepsize="SGLD step size",
    gen_anneal="SGLD drift annealing rate (0: no annealing)",
    gen_freeze="SGLD noise decay rate (0: constant noise)",
    gen_init="SGLD start: decoder samples of z ~ N(0, I), or uniform noise",
    gibbs_steps="steps of the Gibbs chain x -> z -> x of the sample grid",
    save_samples="write this many generated samples as a tensor file (samples/; for compute_gen_fid.py)",
    warm_start="a run's warmup_checkpoint.pt: start after its warm-up (CyGen(PT) reusing the VAE's warm-up)",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, length_flag="epochs", default_length=10, bf16_refused_because=CYGEN_BF16_REFUSAL)
    add_flags_from_defaults(parser, DEFAULTS, FLAG_HELP, CHOICES)
    args = parser.parse_args(argv)
    check_ranges(parser, args, positive=POSITIVE, non_negative=NON_NEGATIVE)
    if args.warm_up + args.epochs == 0:
        parser.error("--warm_up and --epochs must add up to at least one epoch")
    if args.method == "cygen" and args.w_cm > 0 and args.epochs == 0:
        parser.error("--method cygen with --epochs 0 trains no CyGen epoch; give --epochs N")
    if args.warm_start and args.warm_up == 0:
        parser.error("--warm_start needs --warm_up N: it skips the N warm-up epochs of this run")
    if args.compat_rows > args.batch_size:
        parser.error(f"--compat_rows {args.compat_rows} exceeds --batch_size {args.batch_size}")
    if args.compile_flow and not compiled_steps.compiler_available():
        parser.error("--compile_flow true needs a C/C++ compiler for torch.compile: install g++ "
                     "(apt-get install g++) or leave the flag off")
    return args


def phase_at(epoch, args):
    return "warmup" if epoch < args.warm_up else args.method


def kl_weight(epoch, args):
    """The official ramp: epoch k (1-based) of the warm-up weighs the KL by 2k/warm_up * kl_beta until half-way."""
    k = epoch + 1
    return k / args.warm_up * 2 * args.kl_beta if k < args.warm_up / 2 else args.kl_beta


def set_phase_variances(phase, encoder, decoder, args):
    """The decoder variance and base-noise clamp of a phase."""
    if phase == "warmup":
        decoder.variance, encoder.e_clamp = args.warm_p_var, None
    else:
        decoder.variance, encoder.e_clamp = args.set_p_var, args.vae_clamp


def enter_phase(phase, encoder, decoder, args):
    """Decoder variance, base-noise clamp and optimizer of a phase (the official code restarts Adamax)."""
    set_phase_variances(phase, encoder, decoder, args)
    if phase == "warmup":
        groups = [{"params": [*encoder.parameters(), *decoder.parameters()], "lr": args.warm_lr}]
    else:
        groups = [{"params": encoder.parameters(), "lr": args.lr},
                  {"params": decoder.parameters(), "lr": args.lr * args.lr_ratio_dec}]
    # foreach: one kernel per operation over all tensors (torch's CUDA default, written out so that the CPU runs the
    # same path and bench/counting.py counts what a GPU launches); bitwise the for-loop's result on the CPU.
    return torch.optim.Adamax(groups, eps=1e-7, foreach=True)


def cygen_batch_loss(encoder, decoder, x, args):
    """cygen_loss, with the compatibility term on the first --compat_rows rows only when asked (CPU scale)."""
    compiled = args.compile_flow
    if not 0 < args.compat_rows < x.shape[0]:
        return cygen_loss(encoder, decoder, x, args.n_mc_px, args.cmtype, args.w_cm, compiled=compiled)
    _, fit_c, compatibility = cygen_loss(encoder, decoder, x[:args.compat_rows], args.n_mc_px, args.cmtype,
                                         args.w_cm, compiled=compiled)
    _, fit_rest, _ = cygen_loss(encoder, decoder, x[args.compat_rows:], args.n_mc_px, args.cmtype, 0.0,
                                compiled=compiled)
    share = args.compat_rows / x.shape[0]
    fit = share * fit_c + (1 - share) * fit_rest
    return fit + args.w_cm * compatibility, fit, compatibility


def training_loss(phase, encoder, decoder, x, epoch, args):
    if phase == "warmup":
        loss, recon, kl = elbo_loss(encoder, decoder, x, args.n_mc_px, kl_beta=kl_weight(epoch, args))
        return loss, {"recon": recon, "kl": kl}
    if phase == "elbo":
        loss, recon, kl = elbo_loss(encoder, decoder, x, args.n_mc_px, kl_beta=args.kl_beta)
        return loss, {"recon": recon, "kl": kl}
    if phase == "dae":
        loss = dae_loss(encoder, decoder, x)
        return loss, {"recon": loss}
    loss, fit, compatibility = cygen_batch_loss(encoder, decoder, x, args)
    return loss, {"recon": fit, "compat": compatibility}


def validation_metrics(encoder, decoder, valid_x, args):
    """Reconstruction NLL (at the current decoder variance) and the Hutchinson compatibility, on held-out images."""
    x = to_float(valid_x)
    recon = []
    with torch.no_grad():
        for chunk in x.split(500):
            recon.append(-decoder.log_prob(chunk, encoder(chunk).z).mean(0))
    compatibility = compatibility_terms(encoder, decoder, x[:args.batch_size], args.cmtype).mean().item()
    return {"valid_recon": torch.cat(recon).mean().item(), "valid_compat": compatibility}


def prior_decoded(decoder, n, z_dim, device):
    return decoder.mean_net(torch.randn(n, z_dim, device=device))


def langevin_samples(encoder, decoder, n, args, device):
    """x-space SGLD; x0 ~ p(.|z0) with z0 ~ N(0, I) as in the paper, or uniform noise. Output: the decoder mean at
    z ~ q(z|x_T)."""
    if args.gen_init == "decoder":
        x0 = decoder.sample(torch.randn(n, args.z_dim, device=device)).clamp(0, 1)
    else:
        x0 = torch.rand(n, *encoder_input_shape(args), device=device)
    _, z = x_langevin(encoder, decoder, x0, args.gen_niter, args.gen_stepsize, anneal=args.gen_anneal,
                      freeze=args.gen_freeze, x_range=(0.0, 1.0))
    with torch.no_grad():
        return decoder.mean_net(z)


def encoder_input_shape(args):
    return (3, 32, 32) if args.dataset == "svhn" else (1, 28, 28)


def generated(encoder, decoder, n, args, device):
    """The method's own sampler: prior samples for the VAE, SGLD on the joint for the prior-free methods."""
    if args.method == "elbo":
        with torch.no_grad():
            return prior_decoded(decoder, n, args.z_dim, device)
    return torch.cat([langevin_samples(encoder, decoder, chunk, args, device)
                      for chunk in split_count(n, args.gen_batch_size)])


def split_count(n, size):
    return [min(size, n - start) for start in range(0, n, size)]


def grid_title(tag, what, args):
    """Method, dataset and scale of a run's sample grid."""
    method = {"elbo": "VAE", "dae": "DAE", "cygen": "CyGen(PT)" if args.warm_up else "CyGen"}[args.method]
    return (f"{method}, {args.dataset}, {'after the warm-up' if tag == 'warmup' else 'final'} ({args.warm_up} "
            f"warm-up + {args.epochs} epochs, {args.n_train or 'all'} training images, batch {args.batch_size}): "
            f"{what}")


def save_grids(paths, tag, encoder, decoder, splits, args, device):
    """Labelled grids of reconstructions, prior samples (meaningful for the VAE), SGLD samples and Gibbs-chain
    states, sqrt(grid_size) images a row, to the paths of GRIDS in order; tag: warmup or final."""
    n = args.grid_size
    per_row = int(n ** 0.5)
    x = to_float(splits.test_x[:n])
    encoder.eval()
    with torch.no_grad():
        data = x[:n // 2]
        reconstructed = decoder.mean_net(encoder.sample(data))
        grids = {"recon": ([row for start in range(0, len(data), per_row)
                            for row in (("data", data[start:start + per_row]),
                                        ("reconstruction", reconstructed[start:start + per_row]))],
                           "test images and their reconstructions (decoder mean at z ~ q(z|x))"),
                 "prior": (rows_of("prior sample", prior_decoded(decoder, n, args.z_dim, device), per_row),
                           "decoder means at z ~ N(0, I)")}
        _, z = gibbs_chain(encoder, decoder, args.gibbs_steps, x0=x)
        grids["gibbs"] = (rows_of(f"Gibbs, {args.gibbs_steps} steps", decoder.mean_net(z), per_row),
                          f"Gibbs chain x -> z -> x from test images, {args.gibbs_steps} steps")
    grids["langevin"] = (rows_of(f"x-SGLD, {args.gen_niter} steps", langevin_samples(encoder, decoder, n, args,
                                                                                      device), per_row),
                         f"x-space SGLD on the joint, {args.gen_niter} steps from {args.gen_init} samples")
    encoder.train()
    for name, path in zip(GRIDS, paths):
        rows, what = grids[name]
        save_labelled_grid(path, rows, grid_title(tag, what, args))


def warm_start_state(run, args):
    """The warm-up checkpoint of another run with the same warm-up flags; its metrics rows are copied over."""
    path = Path(args.warm_start)
    state = load_checkpoint(path, advice=f"Pass --warm_start a run's {WARM_UP_CHECKPOINT} (written at the end of its "
                                         "warm-up).")
    check_same_model_flags(state["config"]["flags"], vars(args), WARM_UP_KEYS, path)
    if state["step"] != args.warm_up:
        raise ConfigError(f"{path} is a checkpoint at epoch {state['step']}, not at the end of a {args.warm_up}-epoch "
                          f"warm-up; pass a run's {WARM_UP_CHECKPOINT}")
    with open(path.parent / "metrics.csv") as file:
        for row in csv.DictReader(file):
            if int(row["step"]) <= args.warm_up:
                run.log(row)
    print(f"starting after the warm-up of {path}")
    return state


def load_splits(args, device):
    """The whole official training set, as the paper and its code train (60,000 MNIST / Fashion-MNIST images,
    73,257 SVHN; --n_train takes its first images), and the test set. Nothing is held out of training: the
    per-epoch validation metrics use the first --valid_size test images, which choose nothing (no early stopping,
    no model selection)."""
    splits = load_image_dataset(args.dataset, args.data_root, device=device, n_valid=0)
    if splits.shape != encoder_input_shape(args):
        raise ConfigError(f"{splits.source}: {args.dataset} images of shape {splits.shape}, expected "
                          f"{encoder_input_shape(args)}; check --dataset and --data_root")
    return dataclasses.replace(splits, valid_x=splits.test_x[:args.valid_size], valid_y=splits.test_y[:args.valid_size])


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    apply_precision(args.precision, device, cudnn_benchmark=True)  # fp32 or tf32: no autocast; fixed batch shapes
    splits = load_splits(args, device)
    train_x, train_y = splits.train_x[:args.n_train or None], splits.train_y[:args.n_train or None]
    test_x, test_y = splits.test_x[:args.n_test or None], splits.test_y[:args.n_test or None]
    classifier_x, classifier_y = ((splits.train_x[:args.downstream_n_train], splits.train_y[:args.downstream_n_train])
                                  if args.downstream_n_train else (train_x, train_y))
    if len(train_x) < args.batch_size:
        raise ConfigError(f"{len(train_x)} training images hold less than one batch of --batch_size "
                          f"{args.batch_size}: an epoch would train nothing; raise --n_train or lower --batch_size")
    run = RunFolder(args.run_dir, vars(args), resume=args.resume, model_keys=MODEL_KEYS)
    seed_everything(args.seed)
    encoder = image_encoder(splits.shape, args.z_dim, args.n_flows, args.n_householder).to(device)
    decoder = image_decoder(splits.shape, args.z_dim, args.set_p_var).to(device)
    total_epochs = args.warm_up + args.epochs
    state = run.resume_state or (warm_start_state(run, args) if args.warm_start else None)
    start = state["step"] if state else 0
    optimizer = enter_phase(phase_at(start, args), encoder, decoder, args)
    models = {"encoder": encoder, "decoder": decoder}
    # After the last warm-up epoch the saved optimizer is the warm-up's: the method's starts fresh.
    run.restore(models, {"model": optimizer} if phase_at(start - 1, args) == phase_at(start, args) else {}, state)
    batches = BatchIterator(train_x, None, args.batch_size)

    def follow_ups(done):  # after the checkpoint: a figure never costs a run
        if done == args.warm_up:
            run.follow_up(run.copy_checkpoint, run.path / WARM_UP_CHECKPOINT)
        if done in (args.warm_up, total_epochs):
            tag = "warmup" if done == args.warm_up else "final"
            # The grids of the epoch just trained, with its phase's variances (on resume the next phase's are set).
            variances = decoder.variance, encoder.e_clamp
            set_phase_variances(phase_at(done - 1, args), encoder, decoder, args)
            with separate_rng_stream(device, args.seed + done):
                run.follow_up(lambda *paths: save_grids(paths, tag, encoder, decoder, splits, args, device),
                              *[run.samples_dir / f"{tag}_{name}.png" for name in GRIDS])
            decoder.variance, encoder.e_clamp = variances
    run.redo_follow_ups(follow_ups)

    for epoch in range(start, total_epochs):
        phase = phase_at(epoch, args)
        if epoch == args.warm_up > 0 and epoch > start:
            optimizer = enter_phase(phase, encoder, decoder, args)
        bar = progress(None, total=len(batches), desc=f"{phase} epoch {epoch + 1}/{total_epochs}")
        for x_uint8, _ in batches:
            x = to_float(x_uint8)
            loss, terms = training_loss(phase, encoder, decoder, x, epoch, args)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            run.add_terms({"train_loss": loss, **terms})
            bar.update()

        done = epoch + 1
        means = run.read_terms(done)
        bar.set_postfix({name: f"{value:.4g}" for name, value in means.items()})
        bar.close()
        row = dict.fromkeys(METRIC_COLUMNS)
        row.update(step=done, phase=phase, **means)
        milestone = done in (args.warm_up, total_epochs) or (args.eval_every and done % args.eval_every == 0)
        with separate_rng_stream(device, args.seed + done):
            row.update(validation_metrics(encoder, decoder, splits.valid_x, args))
            if milestone:
                result = downstream_accuracy(encoder, classifier_x, classifier_y, test_x, test_y,
                                             args.n_trials, args.downstream_epochs, args.downstream_draws)
                row.update(accuracy=result.mean, accuracy_std=result.std)
                print(f"epoch {done}: downstream accuracy {result.mean:.2f} +- {result.std:.2f} % "
                      f"({args.n_trials} trials)")
        row["elapsed_s"] = round(run.elapsed_s(), 2)
        run.log(row)
        run.save_checkpoint(done, models, {"model": optimizer})
        follow_ups(done)

    samples_path = run.path / "samples" / f"samples_{args.method}_{args.save_samples}.pt"
    # Resuming a finished run is a no-op: its samples (seeded, so the same) are not drawn again.
    if args.save_samples and not (start == total_epochs and samples_path.exists()):
        with separate_rng_stream(device, args.seed):
            samples = generated(encoder, decoder, args.save_samples, args, device)
        print(f"wrote {args.save_samples} samples to {save_sample_tensor(samples_path, samples)}")


if __name__ == "__main__":
    run_main(main)
