"""The one timing rule of every benchmark: the median wall time of a call, CUDA synchronised around each call.

The median resists the other load of a shared machine; compare figures as ratios measured in the same run.
"""
import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time

import torch

from bench.counting import count_dispatches
from evaluation.summary import hardware_description, write_summary
from training import add_device_arg, add_precision_arg, apply_precision, resolve_device

PROFILE_METRICS = ("kernels per step", "host syncs per step", "peak memory (MB)")


def bench_parser(description, threads=1, summary_example=None, bf16_refused_because=None):
    """The flags every benchmark shares: --device and --precision as the scripts take them, --threads, and
    --summary where the timings become a results row."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_arg(parser)
    add_precision_arg(parser, bf16_refused_because)
    parser.add_argument("--threads", type=int, default=threads, help="CPU threads (default: %(default)s)")
    if summary_example:
        parser.add_argument("--summary", help=f"also write the timings as a results summary (e.g. {summary_example})")
    return parser


def bench_device(args, cudnn_benchmark=False):
    """Applies --threads and --precision (training.apply_precision, as the scripts do); returns the device to time on
    (--device resolved as the scripts resolve it) and the autocast of the loss."""
    if args.threads <= 0:
        raise SystemExit(f"error: --threads {args.threads} must be positive")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    return device, apply_precision(args.precision, device, cudnn_benchmark)


def peak_memory_mb(device):
    """On CUDA the allocator's peak since the last reset; on the CPU the process's peak resident size so far (it
    cannot be reset, so it bounds every case measured until then)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # POSIX only, like the CPU figure itself
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def profile_step(step, device, optimizers=()):
    """What predicts a step on a GPU beside its time: the kernels and host syncs of one call of step()
    (bench/counting.py; `optimizers` own host-side step counters) and the peak memory of that call."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    counts = count_dispatches(step, 1, optimizers)
    synchronize(device)
    return dict(zip(PROFILE_METRICS, (counts.kernels, counts.syncs, round(peak_memory_mb(device), 1))))


def profile_line(profile):
    kernels, syncs, memory = (profile[metric] for metric in PROFILE_METRICS)
    return f"{kernels:6d} kernels  {syncs:3d} host syncs  peak {memory:8.1f} MB"


def profile_rows(method, dataset, scale, profile):
    """The summary rows of a profile_step result."""
    return [dict(method=method, dataset=dataset, metric=metric, ours=value, paper=None, scale=scale)
            for metric, value in profile.items()]


def write_bench_summary(path, device, experiment, rows, note=""):
    """The timings as a results summary: the command as typed, the hardware, and the machine's load while timing
    (CPU timings are "quick", GPU ones "full")."""
    load = f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while timing."
    write_summary(path, experiment=experiment, rows=rows, command=shlex.join(["python", *sys.argv]),
                  kind="quick" if torch.device(device).type == "cpu" else "full",
                  hardware=hardware_description(device), notes=f"{load} {note}".strip())
    print(f"wrote {path}")


def add_compile_cache_arg(parser):
    parser.add_argument("--warm_compile_cache", action="store_true",
                        help="time the compile against inductor's usual on-disk cache (a rerun's compile), not an "
                             "empty one")


def compile_cache(args):
    """The cache the compiles of this run use (args from add_compile_cache_arg), and its name for the rows."""
    if args.warm_compile_cache:
        return "warm cache"
    use_cold_compile_cache()
    return "empty cache"


def use_cold_compile_cache():
    """Point torch.compile's on-disk caches (inductor's FX-graph, AOTAutograd and kernel caches, Triton's) at a new
    empty directory, so that the compiles timed in this process are first compiles, not cache hits of an earlier
    run. Returns the directory."""
    path = tempfile.mkdtemp(prefix="inductor_cold_cache_")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    os.environ["TRITON_CACHE_DIR"] = os.path.join(path, "triton")
    return path


def first_call_seconds(function, device):
    """Seconds of the first function() call: with torch.compile inside, the compile (forward and backward) plus one
    step."""
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


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


def training_step(loss_fn, optimizer, autocast=contextlib.nullcontext):
    """A closure doing one step: zero_grad, loss_fn() under autocast, backward, optimizer.step()."""
    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn()
        loss.backward()
        optimizer.step()
    return step
