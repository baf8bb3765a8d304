"""Time one training iteration of main_sym.py and main_elbo.py at the paper's configuration (conv nets, batch 1024,
30/100 bits), beside the same iteration with the official code's habits (anomaly detection on, the MI statistics
and a 10-image display chain advanced every iteration), so the speed-up is measured in one run on one machine.

    python bench/bench_sym.py [--device cpu|cuda] [--threads 1] [--repeats 3] [--warmup 1]

The official code's symmetric iteration was measured at ~5.9 s on this project's 2-core CPU (spec).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (before torchvision, which evaluation.symvae imports)

import argparse  # noqa: E402

import torch  # noqa: E402

from bench.timing import median_seconds  # noqa: E402

from evaluation.symvae import mutual_information  # noqa: E402
from main_elbo import ElboUpdate  # noqa: E402
from main_sym import SymmetricUpdate  # noqa: E402
from models.binary_hvae import build_model  # noqa: E402

OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION = 5.9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--arch", choices=("conv", "mlp"), default="conv")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip_official_habits", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((args.batch_size, 1, 28, 28), 0.15, device=device))
    display_chain = torch.bernoulli(torch.full((10, 1, 28, 28), 0.5, device=device))

    results = {}
    for name, make_update in (("symmetric", SymmetricUpdate), ("elbo", ElboUpdate)):
        model = build_model("mnist", "ladder", args.arch, 30, 100).to(device)
        update = make_update(model, 1e-4)
        results[name] = median_seconds(lambda: update(x), device, args.repeats, args.warmup)
        if args.skip_official_habits:
            continue

        def with_official_habits():
            nonlocal display_chain
            with torch.autograd.set_detect_anomaly(True):
                update(x)
            mutual_information(model, x, args.batch_size)
            display_chain = model.chain_step(display_chain)
        results[f"{name}, official habits"] = median_seconds(with_official_habits, device, args.repeats,
                                                              args.warmup)

    print(f"device {device}, threads {args.threads}, batch {args.batch_size}, {args.arch} nets, 30/100 bits")
    for name, seconds in results.items():
        print(f"{name:28s} {seconds * 1e3:9.1f} ms/iteration   200k iterations ~ {seconds * 2e5 / 3600:6.1f} h")
    for name in ("symmetric", "elbo"):
        if f"{name}, official habits" in results:
            print(f"{name}: {results[f'{name}, official habits'] / results[name]:.2f}x faster than with the "
                  "official habits")
    if device.type == "cpu" and args.arch == "conv":
        print(f"symmetric vs the official code's {OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION} s/iteration (spec): "
              f"{OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION / results['symmetric']:.2f}x faster")


if __name__ == "__main__":
    main()
