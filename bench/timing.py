"""The one timing rule of every benchmark: the median wall time of a call, CUDA synchronised around each call.

The median resists the other load of a shared machine; compare figures as ratios measured in the same run.
"""
import argparse
import time

import torch


def bench_parser(description, threads=1, summary_example=None):
    """The flags every benchmark shares: --device, --threads, and --summary where the timings become a results row."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=threads)
    if summary_example:
        parser.add_argument("--summary", help=f"also write the timings as a results summary (e.g. {summary_example})")
    return parser


def bench_device(args):
    """Applies --threads and returns the --device to time on."""
    torch.set_num_threads(args.threads)
    return torch.device(args.device)


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_seconds(function, device, repeats, warmup=3):
    """Median seconds of function() over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_step(loss_fn, optimizer):
    """A closure doing one step: zero_grad, loss_fn().backward(), optimizer.step()."""
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()
    return step
