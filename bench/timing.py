"""The one timing rule of every benchmark: the median wall time of a call, CUDA synchronised around each call.

The median resists the other load of a shared machine; compare figures as ratios measured in the same run.
"""
import argparse
import os
import shlex
import sys
import time

import torch

from evaluation.summary import hardware_description, write_summary


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


def write_bench_summary(path, device, experiment, rows, note=""):
    """The timings as a results summary: the command as typed, the hardware, and the machine's load while timing
    (CPU timings are "quick", GPU ones "full")."""
    load = f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while timing."
    write_summary(path, experiment=experiment, rows=rows, command=shlex.join(["python", *sys.argv]),
                  kind="quick" if torch.device(device).type == "cpu" else "full",
                  hardware=hardware_description(device), notes=f"{load} {note}".strip())
    print(f"wrote {path}")


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_seconds(function, device, repeats, warmup=3):
    """Median seconds of function() over `repeats` calls, after `warmup` untimed calls."""
    return interleaved_median_seconds({"function": function}, device, repeats, warmup)["function"]


def interleaved_median_seconds(functions, device, repeats, warmup=1):
    """{name: median seconds} of each of `functions` ({name: callable}) over `repeats` rounds that call every one
    once in turn: a slow spell of a shared machine then slows them all alike, and their ratios hold."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            synchronize(device)
            start = time.perf_counter()
            function()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def training_step(loss_fn, optimizer):
    """A closure doing one step: zero_grad, loss_fn().backward(), optimizer.step()."""
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()
    return step
