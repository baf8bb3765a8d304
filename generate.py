"""Samples of a trained binary HVAE (main_sym.py / main_elbo.py): random-code samples and limiting-distribution
samples (the chain x -> z ~ q(z|x) -> x' ~ p(x|z), started from a random-code sample, all chains in one batch).

    python generate.py --run_dir runs/main_sym                         # grids in run_dir/samples/
    python generate.py --run_dir runs/main_sym --save_samples 70000 --mode limiting   # tensor file for FID

--save_samples draws --sample_batch_size chains at a time and gathers them on the CPU as uint8, so the device holds
one batch of chains (70,000 limiting chains in one batch took ~15 GB).
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
from pathlib import Path

import torch

from evaluation.figures import rows_of, save_labelled_grid
from evaluation.samples import quantize, save_sample_tensor
from evaluation.symvae import METHOD_NAMES, limiting_chain, load_trained_model, separate_rng_stream
from training import add_device_arg, add_precision_arg, apply_precision, check_ranges, resolve_device, run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="run folder holding checkpoint.pt")
    parser.add_argument("--chain_steps", type=int, default=1000, help="limiting-chain transitions (default: 1000)")
    parser.add_argument("--n_grid", type=int, default=40, help="images per grid, 10 a row (default: 40)")
    parser.add_argument("--save_samples", type=int, default=0, help="write this many samples as a tensor file")
    parser.add_argument("--mode", choices=("random", "limiting"), default="limiting",
                        help="which samples --save_samples writes (default: limiting)")
    parser.add_argument("--sample_batch_size", type=int, default=10000,
                        help="chains drawn at a time for --save_samples (default: %(default)s)")
    parser.add_argument("--out", default=None, help="tensor file (default: run_dir/samples_<mode>_<N>.pt)")
    add_device_arg(parser)
    add_precision_arg(parser, bf16_refused_because="sampling draws Bernoulli bits from the model's probabilities, "
                                                   "which bfloat16 would round")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: %(default)s)")
    args = parser.parse_args(argv)
    check_ranges(parser, args, positive=("n_grid", "sample_batch_size"),
                 non_negative=("chain_steps", "save_samples", "seed"))
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


def batched_samples(model, n, mode, chain_steps, batch_size):
    """n samples drawn batch_size at a time from one random stream, each batch quantised to uint8 on the CPU."""
    return torch.cat([quantize(samples(model, min(batch_size, n - start), mode, chain_steps)).cpu()
                      for start in range(0, n, batch_size)])


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    apply_precision(args.precision, device, cudnn_benchmark=True)
    model, flags, step = load_trained_model(args.run_dir, device)
    samples_dir = Path(args.run_dir) / "samples"
    samples_dir.mkdir(exist_ok=True)
    with separate_rng_stream(device, args.seed):
        for mode, label in (("random", "random code"), ("limiting", f"chain, {args.chain_steps} steps")):
            path = samples_dir / f"generated_{mode}_step{step:07d}.png"
            save_labelled_grid(path, rows_of(label, samples(model, args.n_grid, mode, args.chain_steps), 10),
                               f"{METHOD_NAMES[flags['method']]}, {flags['dataset']} {flags['encoder']}, {step} "
                               f"iterations: {label} samples (decoder mode)")
            print(f"wrote {path}")
        if args.save_samples:
            out = args.out or Path(args.run_dir) / f"samples_{args.mode}_{args.save_samples}.pt"
            save_sample_tensor(out, batched_samples(model, args.save_samples, args.mode, args.chain_steps,
                                                    args.sample_batch_size))
            print(f"wrote {args.save_samples} {args.mode} samples to {out}")


if __name__ == "__main__":
    run_main(main)
