"""Time one LagVAE training step (binarise, forward, MMD, backward, Adam, multiplier ascent) at the paper's config.

    python bench/bench_lagvae.py [--device auto|cpu|cuda|cuda:N] [--precision fp32|tf32|bf16] [--threads 1]
                                 [--batch_size 250] [--width 1024] [--z_dim 64] [--repeats 30]
                                 [--summary results/lagvae_speed.json]

The plain VAE step of the same networks (ELBO with a one-sample KL, no MMD: objectives.vae.elbo_loss) and the
InfoVAE step (fixed weights, with the MMD) are timed beside it in the same run, so the ratios survive a noisy,
shared machine; each with its kernels, host syncs and peak memory (bench/counting.py) and images per second. The
paper's 5000 epochs of 55k images at batch 250 are 1.1M steps.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (first: torchvision shim)

import torch  # noqa: E402

from bench.timing import (bench_device, bench_parser, median_seconds, profile_line, profile_rows,  # noqa: E402
                          profile_step, training_step, write_bench_summary)

from models.lagvae import BernoulliMLPDecoder, GaussianMLPEncoder, binarize  # noqa: E402
from objectives.lagvae import (constraint_violations, consistency_terms, information_objective,  # noqa: E402
                               initial_multipliers, lagrangian, multiplier_ascent_step, multiplier_optimizer)
from objectives.vae import elbo_loss  # noqa: E402

PAPER_STEPS = 5000 * 55000 // 250
BASELINE, INFOVAE, LAGVAE = ("VAE (baseline: ELBO, same networks)", "InfoVAE (mi=+1, e1=1, e2=1)",
                             "LagVAE (mi=+1, e1=86, e2=5, multiplier ascent)")


def write_speed_summary(args, device, seconds, profiles):
    """Milliseconds per step, the ratio to the VAE step and the hours the paper's 1.1M steps would take."""
    scale = (f"batch {args.batch_size}, widths {args.width}, z {args.z_dim}, {args.threads} thread(s), "
             f"median of {args.repeats} steps")
    rows = []
    for name, s in seconds.items():
        rows.append(dict(method=name, dataset="binarised MNIST", metric="ms per step", ours=round(s * 1e3, 2),
                         paper=None, scale=scale))
        rows.append(dict(method=name, dataset="binarised MNIST", metric="images per s",
                         ours=round(args.batch_size / s), paper=None, scale=scale))
        rows += profile_rows(name, "binarised MNIST", f"batch {args.batch_size}, one step", profiles[name])
        if name != BASELINE:
            rows.append(dict(method=name, dataset="binarised MNIST", metric="x the VAE step",
                             ours=round(s / seconds[BASELINE], 3), paper=None, scale=scale))
    rows.append(dict(method=LAGVAE, dataset="binarised MNIST", metric=f"hours for the paper's {PAPER_STEPS} steps",
                     ours=round(PAPER_STEPS * seconds[LAGVAE] / 3600, 1), paper=None, scale=scale))
    write_bench_summary(args.summary, device, "Speed of one InfoVAE / LagVAE training step at the paper's config", rows,
                        note="Other processes slow every step, the ratio to the VAE step much less.")


def main(argv=None):
    parser = bench_parser(__doc__, threads=1, summary_example="results/lagvae_speed.json")
    parser.add_argument("--batch_size", type=int, default=250, help="images per timed step (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1024, help="hidden width, as main_lagvae.py --width (default: %(default)s)")
    parser.add_argument("--z_dim", type=int, default=64, help="latent dimensions (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps; the median is reported (default: %(default)s)")
    args = parser.parse_args(argv)
    device, autocast = bench_device(args)
    torch.manual_seed(0)
    encoder = GaussianMLPEncoder(args.z_dim, args.width).to(device)
    decoder = BernoulliMLPDecoder(args.z_dim, args.width).to(device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-4, betas=(0.5, 0.999),
                                 foreach=True)
    multipliers = initial_multipliers(device)
    lambda_optimizer = multiplier_optimizer(multipliers, 1e-4)
    images = torch.randint(0, 256, (args.batch_size, 1, 28, 28), dtype=torch.uint8, device=device)
    last_terms = {}

    def lagvae_loss():
        last_terms.update(consistency_terms(encoder, decoder, binarize(images)))
        l1, l2 = multipliers.detach().unbind()
        return lagrangian(last_terms, 1.0, l1, l2, 86.0, 5.0)

    model_step = training_step(lagvae_loss, optimizer, autocast)

    def lagvae_step():  # simultaneous ascent on the same batch, as main_lagvae.py
        model_step()
        multiplier_ascent_step(multipliers, lambda_optimizer, constraint_violations(last_terms, 86.0, 5.0))

    steps = {
        BASELINE: training_step(lambda: elbo_loss(encoder, decoder, binarize(images))[0], optimizer, autocast),
        INFOVAE: training_step(lambda: information_objective(consistency_terms(encoder, decoder, binarize(images)),
                                                             1.0, 1.0, 1.0), optimizer, autocast),
        LAGVAE: lagvae_step,
    }
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"threads {args.threads}, batch {args.batch_size}, widths {args.width}, z_dim {args.z_dim}")
    seconds = {name: median_seconds(step, device, args.repeats, warmup=5) for name, step in steps.items()}
    profiles = {name: profile_step(step, device, [optimizer, lambda_optimizer]) for name, step in steps.items()}
    for name, s in seconds.items():
        print(f"{name:48s} {s * 1e3:8.2f} ms/step  {args.batch_size / s:7.0f} images/s  "
              f"{s / seconds[BASELINE]:5.2f}x the VAE step  paper's {PAPER_STEPS} steps ~ "
              f"{PAPER_STEPS * s / 3600:.1f} h")
        print(f"{'':48s} {profile_line(profiles[name])}")
    if args.summary:
        write_speed_summary(args, device, seconds, profiles)


if __name__ == "__main__":
    main()
