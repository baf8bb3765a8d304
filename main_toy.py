"""CyGen and its baselines on 2-D toy data (Liu et al., NeurIPS 2021, section 5.1).

    python main_toy.py --data pinwheel --method cygen --pretr_method elbo --pretr_niter 1000   # CyGen(PT)
    python main_toy.py --data pinwheel --method cygen --pretr_method elbo --pretr_niter 1000 --w_cm 0  # ablation
    python main_toy.py --data 8gaussians --method elbo | dae | bigan | gibbsnet
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse

import torch

from data.toy import TOY_DATASETS, sample_toy
from evaluation.toy import toy_figure, toy_metrics
from models import compiled_steps
from models.toy import Discriminator, toy_decoder, toy_encoder
from objectives.adversarial import discriminator_loss, fake_pair, generator_loss
from objectives.cygen import COMPATIBILITY_VARIANTS, cygen_loss
from objectives.vae import dae_loss, elbo_loss
from training import (RunFolder, add_common_args, add_flags_from_defaults, apply_precision,
                      check_ranges, progress, resolve_device, run_main, seed_everything, separate_rng_stream)
from training.precision import CYGEN_BF16_REFUSAL

DEFAULTS = dict(
    data="pinwheel", method="cygen",
    pretr_method="none", pretr_niter=0, pretr_lrratio_dec=0.1,  # CyGen(PT): ELBO first, then decoder lr x 0.1
    z_dim=2, n_flows=32, n_householder=2, p_var=0.01,
    cmtype="jacnorm_lite_x", w_cm=1e-5, n_mc_px=16, compile_flow=False,  # torch.compile the flow's per-step functions
    batch_size=1000, lr=1e-3, weight_decay=1e-5,
    lr_d=1e-4, n_discr_upd=128, n_gibbs=2,  # BiGAN / GibbsNet
    eval_every=100, eval_batch_size=1000, plot_every=1000,
    gen_batch_size=2000, gen_niter=100, gen_stepsize=3e-4, gen_init="data",
)
CHOICES = dict(data=TOY_DATASETS, method=("cygen", "elbo", "dae", "bigan", "gibbsnet"),
               pretr_method=("none", "elbo"), cmtype=COMPATIBILITY_VARIANTS, gen_init=("data", "prior"))
MODEL_KEYS = ("data", "method", "pretr_method", "pretr_niter", "z_dim", "n_flows", "n_householder", "p_var",
              "cmtype", "n_gibbs")
POSITIVE = ("niters", "z_dim", "n_flows", "n_householder", "p_var", "n_mc_px", "batch_size", "lr", "lr_d",
            "n_discr_upd", "eval_every", "eval_batch_size", "plot_every", "gen_batch_size", "pretr_lrratio_dec")
NON_NEGATIVE = ("pretr_niter", "w_cm", "weight_decay", "n_gibbs", "gen_niter", "gen_stepsize")
# One line of --help per flag of DEFAULTS (its default is appended).
FLAG_HELP = dict(
    data="2-D toy data set",
    method="cygen (CyGen), elbo (VAE), dae (deterministic auto-encoder), bigan or gibbsnet",
    pretr_method="pre-training before --method: none, or elbo (CyGen(PT))",
    pretr_niter="iterations of pre-training (0 with --pretr_method none)",
    pretr_lrratio_dec="after pre-training the decoder learns at --lr x this",
    z_dim="latent dimensions",
    n_flows="Householder-Sylvester flow steps of the encoder q(z|x)",
    n_householder="Householder reflections per flow step",
    p_var="variance of the Gaussian decoder p(x|z)",
    cmtype="CyGen's compatibility norm: jacnorm_x (with J^-T), jacnorm_lite_x (paper eq. 23, no second solve)",
    w_cm="weight of the compatibility term (0: the no-compatibility ablation)",
    n_mc_px="Monte Carlo samples z ~ q(z|x) per point of the data-fit term and of the density plot",
    compile_flow="torch.compile the flow's per-step functions (needs a C/C++ compiler)",
    batch_size="points per training batch, drawn fresh each iteration",
    lr="Adam learning rate of encoder and decoder",
    weight_decay="Adam weight decay of encoder and decoder",
    lr_d="Adam learning rate of the discriminator (bigan, gibbsnet)",
    n_discr_upd="discriminator updates per iteration (bigan, gibbsnet)",
    n_gibbs="GibbsNet's unclamped Gibbs steps from the prior",
    eval_every="iterations between metrics rows",
    eval_batch_size="fresh data points of each evaluation",
    plot_every="iterations between figures (a multiple of --eval_every)",
    gen_batch_size="points of each figure's samples",
    gen_niter="Gibbs and SGLD steps of the figure's samples",
    gen_stepsize="SGLD step size",
    gen_init="start of the figure's chains: data points, or z ~ N(0, I) (prior)",
)
ADVERSARIAL = ("bigan", "gibbsnet")
PRIOR_BASED = ("elbo", "bigan", "gibbsnet")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, length_flag="niters", default_length=30000, bf16_refused_because=CYGEN_BF16_REFUSAL)
    add_flags_from_defaults(parser, DEFAULTS, FLAG_HELP, CHOICES)
    args = parser.parse_args(argv)
    if (args.pretr_method == "none") != (args.pretr_niter == 0):
        parser.error("pretraining needs both --pretr_method elbo and --pretr_niter N > 0 (or neither)")
    if args.pretr_niter >= args.niters > 0:
        parser.error(f"--pretr_niter {args.pretr_niter} leaves no iterations of --method {args.method} "
                     f"within --niters {args.niters}")
    if args.method == args.pretr_method:
        parser.error(f"pretraining with --pretr_method {args.pretr_method} before the same method is a no-op")
    check_ranges(parser, args, positive=POSITIVE, non_negative=NON_NEGATIVE)
    if args.plot_every % args.eval_every:
        parser.error(f"--plot_every {args.plot_every} must be a multiple of --eval_every {args.eval_every}")
    if args.compile_flow and not compiled_steps.compiler_available():
        parser.error("--compile_flow true needs a C/C++ compiler for torch.compile: install g++ "
                     "(apt-get install g++) or leave the flag off")
    return args


def phase_at(step, args):
    return args.pretr_method if step < args.pretr_niter else args.method


def model_optimizer(encoder, decoder, args, after_pretraining):
    # After ELBO pretraining the official code restarts Adam with the decoder's learning rate scaled down.
    decoder_lr = args.lr * args.pretr_lrratio_dec if after_pretraining else args.lr
    return torch.optim.Adam([{"params": encoder.parameters(), "lr": args.lr},
                             {"params": decoder.parameters(), "lr": decoder_lr}], weight_decay=args.weight_decay,
                            foreach=True)


def adversarial_loss(encoder, decoder, discriminator, discriminator_optimizer, x, args, n_gibbs):
    """n_discr_upd discriminator updates on one real/fake batch, then the encoder/decoder (generator) loss."""
    real = (x, encoder(x).z[0])
    fake = fake_pair(encoder, decoder, x.shape[0], args.z_dim, n_gibbs, x.device)
    for _ in range(args.n_discr_upd):
        d_loss = discriminator_loss(discriminator, real, fake)
        discriminator_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        discriminator_optimizer.step()
    discriminator.requires_grad_(False)
    g_loss = generator_loss(discriminator, real, fake)
    discriminator.requires_grad_(True)
    return g_loss, {"d_loss": d_loss.detach()}


def training_loss(phase, encoder, decoder, discriminator, discriminator_optimizer, x, args):
    """(loss to minimise, named terms) of one batch under the current phase's method."""
    if phase == "cygen":
        loss, fit, compatibility = cygen_loss(encoder, decoder, x, args.n_mc_px, args.cmtype, args.w_cm)
        return loss, {"fit": fit, "compat": compatibility}
    if phase == "elbo":
        loss, reconstruction, kl = elbo_loss(encoder, decoder, x, args.n_mc_px)
        return loss, {"recon": reconstruction, "kl": kl}
    if phase == "dae":
        loss = dae_loss(encoder, decoder, x)
        return loss, {"recon": loss}
    n_gibbs = args.n_gibbs if phase == "gibbsnet" else 0
    return adversarial_loss(encoder, decoder, discriminator, discriminator_optimizer, x, args, n_gibbs)


def evaluate(run, step, encoder, decoder, args, device, train_loss):
    """Metrics on a fixed evaluation batch (the same points at every evaluation)."""
    with separate_rng_stream(device, args.seed):
        x_eval, _ = sample_toy(args.data, args.eval_batch_size, device)
        torch.manual_seed(args.seed + step)
        metrics = toy_metrics(encoder, decoder, x_eval, args.n_mc_px)
    run.log({"step": step, "phase": phase_at(step - 1, args), "train_loss": train_loss, **metrics,
             "elapsed_s": round(run.elapsed_s(), 2)})
    return metrics


def method_label(args):
    """The method as the paper's toy figure names it."""
    if args.method != "cygen":
        return {"elbo": "VAE (ELBO)", "dae": "DAE", "bigan": "BiGAN", "gibbsnet": "GibbsNet"}[args.method]
    return "CyGen" if not args.pretr_niter else "CyGen(PT)" if args.w_cm else "CyGen(PT), w_cm=0"


def plot(path, step, encoder, decoder, args, device):
    with separate_rng_stream(device, args.seed + step):
        x_plot, labels = sample_toy(args.data, args.gen_batch_size, device)
        toy_figure(path, encoder, decoder, x_plot, labels,
                   title=f"{method_label(args)}, {args.data}, step {step} of {args.niters} (batch {args.batch_size})",
                   uses_prior=args.method in PRIOR_BASED, z_dim=args.z_dim, n_mc=args.n_mc_px,
                   gen_steps=args.gen_niter, gen_step_size=args.gen_stepsize, gen_init=args.gen_init,
                   n_gibbs_prior=args.n_gibbs if args.method == "gibbsnet" else 0)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    apply_precision(args.precision, device)  # fp32 or tf32: no autocast
    run = RunFolder(args.run_dir, vars(args), resume=args.resume, model_keys=MODEL_KEYS)
    seed_everything(args.seed)
    if args.compile_flow:
        compiled_steps.enable()
    encoder = toy_encoder(args.z_dim, args.n_flows, args.n_householder).to(device)
    decoder = toy_decoder(args.p_var, args.z_dim).to(device)
    discriminator = Discriminator(2, args.z_dim).to(device) if args.method in ADVERSARIAL else None
    discriminator_optimizer = (torch.optim.Adam(discriminator.parameters(), lr=args.lr_d, betas=(0.5, 0.999),
                                                foreach=True)
                               if discriminator else None)
    start = run.start_step
    optimizer = model_optimizer(encoder, decoder, args, after_pretraining=0 < args.pretr_niter < start)
    models, optimizers = {"encoder": encoder, "decoder": decoder}, {"model": optimizer}
    if discriminator:
        models["discriminator"], optimizers["discriminator"] = discriminator, discriminator_optimizer
    run.restore(models, optimizers)

    def follow_ups(done):  # after the checkpoint: a plot never costs a run
        if done % args.plot_every == 0 or done == args.niters:
            run.follow_up(lambda path: plot(path, done, encoder, decoder, args, device),
                          run.samples_dir / f"step{done:06d}.png")
    run.redo_follow_ups(follow_ups)
    bar = progress(range(start, args.niters), total=args.niters, initial=start, desc=f"{args.method} {args.data}")
    for step in bar:
        if step == args.pretr_niter > 0:
            optimizer = optimizers["model"] = model_optimizer(encoder, decoder, args, after_pretraining=True)
        phase = phase_at(step, args)
        x, _ = sample_toy(args.data, args.batch_size, device)
        loss, terms = training_loss(phase, encoder, decoder, discriminator, discriminator_optimizer, x, args)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.add_terms({"loss": loss, **terms})

        done = step + 1
        if done % args.eval_every == 0 or done == args.niters:
            train_loss = run.read_terms(done)["loss"]
            metrics = evaluate(run, done, encoder, decoder, args, device, train_loss)
            run.save_checkpoint(done, models, optimizers)
            follow_ups(done)
            bar.set_postfix({phase: f"{train_loss:.3f}", **{k: f"{v:.3g}" for k, v in metrics.items()}},
                            refresh=False)


if __name__ == "__main__":
    run_main(main)
