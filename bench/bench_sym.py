"""Time one training iteration of main_sym.py and main_elbo.py at the paper's configuration (conv nets, batch 1024,
30/100 bits), beside the same iteration with the official code's habits (NCHW conv layout, anomaly detection on,
the MI statistics and a 10-image display chain advanced every iteration), so the speed-up is measured in one run on
one machine. Each of our updates also with its kernels, host syncs and peak memory (bench/counting.py), images
per second and the hours of the README's 200k iterations.

    python bench/bench_sym.py [--device auto|cpu|cuda|cuda:N] [--precision fp32|tf32|bf16] [--threads 1]
                              [--repeats 3] [--warmup 1] [--summary results/symvae_speed.json]

The official code's symmetric iteration was measured at ~5.9 s on this project's 2-core CPU (spec).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (before torchvision, which evaluation.symvae imports)

import torch  # noqa: E402

from bench.timing import (bench_device, bench_parser, median_seconds, profile_line, profile_rows,  # noqa: E402
                          profile_step, write_bench_summary)

from evaluation.symvae import mutual_information  # noqa: E402
from main_elbo import ElboUpdate  # noqa: E402
from main_sym import SymmetricUpdate  # noqa: E402
from models.binary_hvae import build_model  # noqa: E402

OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION = 5.9  # spec: the official code on this project's 2-core CPU
METHODS = {"symmetric": "Symmetric", "elbo": "ELBO"}
PAPER_ITERATIONS = 200000


def time_iterations(args, device, autocast):
    """Median seconds per iteration of each update, and of the same update with the official code's habits; and
    the profile of each of our updates."""
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((args.batch_size, 1, 28, 28), 0.15, device=device))
    display_chain = torch.bernoulli(torch.full((10, 1, 28, 28), 0.5, device=device))
    seconds, profiles = {}, {}
    for name, make_update in (("symmetric", SymmetricUpdate), ("elbo", ElboUpdate)):
        model = build_model("mnist", "ladder", args.arch, 30, 100).to(device)
        update = make_update(model, 1e-4, autocast)
        seconds[name] = median_seconds(lambda: update(x), device, args.repeats, args.warmup)
        profiles[name] = profile_step(lambda: update(x), device, update.optimizers.values())
        if args.skip_official_habits:
            continue
        # The official code's layout too: contiguous (NCHW) conv weights instead of build_model's channels-last.
        model.to(memory_format=torch.contiguous_format)

        def with_official_habits():
            nonlocal display_chain
            with torch.autograd.set_detect_anomaly(True):
                update(x)
            mutual_information(model, x, args.batch_size)
            display_chain = model.chain_step(display_chain)
        seconds[f"{name}, official habits"] = median_seconds(with_official_habits, device, args.repeats, args.warmup)
    return seconds, profiles


def write_speed_summary(args, device, seconds, profiles):
    """ms per iteration, the speed-up over the official habits measured in the same run, and (on CPU at the paper's
    configuration) over the spec's 5.9 s of the official code."""
    scale = (f"batch {args.batch_size}, {args.arch} nets, 30/100 bits, {args.threads} thread(s), median of "
             f"{args.repeats} iterations after {args.warmup} warm-up")
    paper_config = device.type == "cpu" and args.arch == "conv" and args.batch_size == 1024
    rows = []
    for name, method in METHODS.items():
        official = (f"official code {OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION * 1e3:.0f} (2-core CPU)"
                    if paper_config and name == "symmetric" else None)
        rows.append(dict(method=method, dataset="mnist (ladder)", metric="ms per iteration",
                         ours=seconds[name] * 1e3, paper=official, scale=scale))
        rows.append(dict(method=method, dataset="mnist (ladder)", metric="images per s",
                         ours=round(args.batch_size / seconds[name]), paper=None, scale=scale))
        rows.append(dict(method=method, dataset="mnist (ladder)",
                         metric=f"estimated hours of {PAPER_ITERATIONS} iterations",
                         ours=round(PAPER_ITERATIONS * seconds[name] / 3600, 2), paper=None, scale=scale))
        rows += profile_rows(method, "mnist (ladder)", f"batch {args.batch_size}, {args.arch} nets, one iteration",
                             profiles[name])
        if f"{name}, official habits" in seconds:
            rows.append(dict(method=f"{method}, official habits", dataset="mnist (ladder)", metric="ms per iteration",
                             ours=seconds[f"{name}, official habits"] * 1e3, paper=None, scale=scale))
            rows.append(dict(method=method, dataset="mnist (ladder)",
                             metric="speed-up over the official habits (same run)",
                             ours=seconds[f"{name}, official habits"] / seconds[name], paper=None, scale=scale))
    if paper_config:
        rows.append(dict(method="Symmetric", dataset="mnist (ladder)", metric="speed-up over the official code (spec)",
                         ours=OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION / seconds["symmetric"],
                         paper=">= 1.3x (target)", scale=scale))
    write_bench_summary(args.summary, device, "Speed of one binary-HVAE training iteration (symmetric, ELBO)", rows,
                        note="'Official habits' = the same update with NCHW conv weights (ours: channels-last) under "
                             "torch.autograd.set_detect_anomaly(True), plus the per-bit MI statistics and a 10-image "
                             "display-chain step every iteration, as the official loop does; the math is identical.")


def main(argv=None):
    parser = bench_parser(__doc__, summary_example="results/symvae_speed.json")
    parser.add_argument("--batch_size", type=int, default=1024, help="images per timed iteration (default: %(default)s)")
    parser.add_argument("--arch", choices=("conv", "mlp"), default="conv",
                        help="networks, as main_sym.py --arch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations; the median is reported (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default: %(default)s)")
    parser.add_argument("--skip_official_habits", action="store_true",
                        help="time only ours, not the same iteration with the official code's habits")
    args = parser.parse_args(argv)
    if args.repeats <= 0 or args.warmup < 0 or args.threads <= 0:
        parser.error("--repeats and --threads must be positive and --warmup non-negative")
    device, autocast = bench_device(args, cudnn_benchmark=True)
    seconds, profiles = time_iterations(args, device, autocast)

    print(f"device {device}, threads {args.threads}, batch {args.batch_size}, {args.arch} nets, 30/100 bits")
    for name, value in seconds.items():
        print(f"{name:28s} {value * 1e3:9.1f} ms/iteration  {args.batch_size / value:8.0f} images/s  "
              f"{PAPER_ITERATIONS} iterations ~ {value * PAPER_ITERATIONS / 3600:6.1f} h")
        if name in profiles:
            print(f"{'':28s} {profile_line(profiles[name])}")
    for name in METHODS:
        if f"{name}, official habits" in seconds:
            print(f"{name}: {seconds[f'{name}, official habits'] / seconds[name]:.2f}x faster than with the "
                  "official habits")
    if device.type == "cpu" and args.arch == "conv":
        print(f"symmetric vs the official code's {OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION} s/iteration (spec): "
              f"{OFFICIAL_SECONDS_PER_SYMMETRIC_ITERATION / seconds['symmetric']:.2f}x faster")
    if args.summary:
        write_speed_summary(args, device, seconds, profiles)


if __name__ == "__main__":
    main()
