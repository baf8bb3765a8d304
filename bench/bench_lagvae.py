"""Time one LagVAE training step (binarise, forward, MMD, backward, Adam, multiplier ascent) at the paper's config.

    python bench/bench_lagvae.py [--device cpu|cuda] [--threads 1] [--batch_size 250] [--width 1024] [--z_dim 64]

The InfoVAE step (fixed weights) is timed beside it, so the multipliers' share survives a noisy, shared machine.
The paper's 5000 epochs of 55k images at batch 250 are 1.1M steps.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (first: torchvision shim)

import argparse  # noqa: E402

import torch  # noqa: E402

from bench.timing import median_seconds  # noqa: E402

from models.lagvae import BernoulliMLPDecoder, GaussianMLPEncoder, binarize  # noqa: E402
from objectives.lagvae import (constraint_violations, consistency_terms, information_objective,  # noqa: E402
                               initial_multipliers, lagrangian, multiplier_ascent_step, multiplier_optimizer)

PAPER_STEPS = 5000 * 55000 // 250


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--z_dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = GaussianMLPEncoder(args.z_dim, args.width).to(device)
    decoder = BernoulliMLPDecoder(args.z_dim, args.width).to(device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-4, betas=(0.5, 0.999))
    multipliers = initial_multipliers(device)
    lambda_optimizer = multiplier_optimizer(multipliers, 1e-4)
    images = torch.randint(0, 256, (args.batch_size, 1, 28, 28), dtype=torch.uint8, device=device)

    def infovae_step():
        terms = consistency_terms(encoder, decoder, binarize(images))
        optimizer.zero_grad(set_to_none=True)
        information_objective(terms, 1.0, 1.0, 1.0).backward()
        optimizer.step()

    def lagvae_step():
        terms = consistency_terms(encoder, decoder, binarize(images))
        l1, l2 = multipliers.detach().unbind()
        optimizer.zero_grad(set_to_none=True)
        lagrangian(terms, 1.0, l1, l2, 86.0, 5.0).backward()
        optimizer.step()
        multiplier_ascent_step(multipliers, lambda_optimizer, constraint_violations(terms, 86.0, 5.0))

    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"threads {args.threads}, batch {args.batch_size}, widths {args.width}, z_dim {args.z_dim}")
    seconds = {name: median_seconds(step, device, args.repeats, warmup=5) for name, step in
               (("infovae step (mi=+1, e1=1, e2=1)", infovae_step), ("lagvae step (mi=+1, multipliers)", lagvae_step))}
    for name, s in seconds.items():
        print(f"{name:40s} {s * 1e3:8.2f} ms/step  {1 / s:8.1f} steps/s  "
              f"paper's {PAPER_STEPS} steps ~ {PAPER_STEPS * s / 3600:.1f} h")


if __name__ == "__main__":
    main()
