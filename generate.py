"""Samples of a trained binary HVAE (main_sym.py / main_elbo.py): random-code samples and limiting-distribution
samples (the chain x -> z ~ q(z|x) -> x' ~ p(x|z), started from a random-code sample, all chains in one batch).

    python generate.py --run_dir runs/main_sym                         # grids in run_dir/samples/
    python generate.py --run_dir runs/main_sym --save_samples 70000 --mode limiting   # tensor file for FID
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from evaluation.samples import save_sample_tensor
from evaluation.symvae import limiting_chain, load_trained_model, separate_rng_stream
from training import check_ranges, resolve_device, run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="run folder holding checkpoint.pt")
    parser.add_argument("--chain_steps", type=int, default=1000, help="limiting-chain transitions (default: 1000)")
    parser.add_argument("--n_grid", type=int, default=40, help="images per grid, 10 a row (default: 40)")
    parser.add_argument("--save_samples", type=int, default=0, help="write this many samples as a tensor file")
    parser.add_argument("--mode", choices=("random", "limiting"), default="limiting",
                        help="which samples --save_samples writes (default: limiting)")
    parser.add_argument("--out", default=None, help="tensor file (default: run_dir/samples_<mode>_<N>.pt)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    check_ranges(parser, args, positive=("n_grid",), non_negative=("chain_steps", "save_samples", "seed"))
    if args.out and not args.save_samples:
        parser.error("--out names the file of --save_samples N; pass --save_samples too")
    return args


@torch.no_grad()
def samples(model, n, mode, chain_steps):
    random_code = model.random_code_images(n)
    if mode == "random":
        return random_code
    (_, images), = limiting_chain(model, random_code, [chain_steps])
    return images


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    model, _, step = load_trained_model(args.run_dir, device)
    samples_dir = Path(args.run_dir) / "samples"
    samples_dir.mkdir(exist_ok=True)
    with separate_rng_stream(device, args.seed):
        for mode in ("random", "limiting"):
            path = samples_dir / f"generated_{mode}_step{step:07d}.png"
            save_image(samples(model, args.n_grid, mode, args.chain_steps), path, nrow=10)
            print(f"wrote {path}")
        if args.save_samples:
            out = args.out or Path(args.run_dir) / f"samples_{args.mode}_{args.save_samples}.pt"
            save_sample_tensor(out, samples(model, args.save_samples, args.mode, args.chain_steps))
            print(f"wrote {args.save_samples} {args.mode} samples to {out}")


if __name__ == "__main__":
    run_main(main)
