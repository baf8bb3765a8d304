"""The command line shared by every main_*.py: common flags, flags from a defaults dict, device, progress bar."""
import argparse
import re
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from .precision import add_precision_arg
from .runs import ConfigError, NonFiniteLossError, device_named, release_run_folders

DEVICE_NAMES = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def device_name(text):
    """The argparse type of --device: auto, cpu, cuda or cuda:N."""
    if not DEVICE_NAMES.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda or cuda:N (N a GPU index)")
    return text


def add_device_arg(parser, default="auto"):
    parser.add_argument("--device", type=device_name, default=default,
                        help="auto, cpu, cuda or cuda:N; auto picks cuda when a GPU is usable (default: %(default)s)")


def add_common_args(parser, length_flag, default_length, default_run_dir=None, bf16_refused_because=None):
    """Add --run_dir --seed --device --precision --resume and the length flag (e.g. 'niters' or 'epochs');
    bf16_refused_because: why this script refuses --precision bf16 (None: it offers it)."""
    script_name = Path(sys.argv[0]).stem
    parser.add_argument("--run_dir", default=default_run_dir or f"runs/{script_name}",
                        help="folder for config.json, metrics.csv, checkpoint.pt and samples/ (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of torch, numpy and random (default: %(default)s)")
    add_device_arg(parser)
    add_precision_arg(parser, bf16_refused_because)
    parser.add_argument("--resume", action="store_true",
                        help="continue from run_dir/checkpoint.pt; starts fresh when there is none")
    parser.add_argument(f"--{length_flag}", type=non_negative_int, default=default_length,
                        help="length of training (default: %(default)s)")


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_bool(text):
    # argparse's type=bool would turn the string "False" into True.
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def flag_type(default):
    if isinstance(default, bool):
        return parse_bool
    return str if default is None else type(default)


def add_flags_from_defaults(parser, defaults, helps=None, choices=None):
    """One --flag per entry of a script's defaults dict, typed by its default, so --help lists every knob.

    helps: a one-line help per flag, required for every flag when given (its default is appended); choices: the
    fixed sets of values some flags take (argparse's choices=, so --help shows them)."""
    helps, choices = helps or {}, choices or {}
    missing = [name for name in defaults if helps and name not in helps]
    unknown = sorted((set(helps) | set(choices)) - set(defaults))
    if missing or unknown:
        raise ValueError(f"flag help or choices without a flag: {unknown}; flags without help: {missing}")
    for name, default in defaults.items():
        text = f"{helps[name]} (default: %(default)s)" if name in helps else "(default: %(default)s)"
        parser.add_argument(f"--{name}", type=flag_type(default), default=default, help=text,
                            choices=tuple(choices[name]) if name in choices else None)


def check_ranges(parser, args, positive=(), non_negative=(), fraction=()):
    """parser.error (exit 2, before anything is written) naming every flag whose value is out of its range:
    positive (> 0), non_negative (>= 0), fraction (in [0, 1), e.g. Adam's betas)."""
    ranges = [(positive, lambda value: value > 0, "> 0"), (non_negative, lambda value: value >= 0, ">= 0"),
              (fraction, lambda value: 0 <= value < 1, "in [0, 1)")]
    wrong = [f"--{name} {getattr(args, name)} (must be {allowed})" for names, holds, allowed in ranges
             for name in names if not holds(getattr(args, name))]
    if wrong:
        parser.error("out of range: " + ", ".join(wrong))


def resolve_device(name):
    """The torch.device of a --device value: 'auto' -> cuda when available, else cpu; cuda or cuda:N without that
    GPU exits with the reason. cuda:N becomes the current device, so that calls naming no device
    (torch.cuda.synchronize(), the default CUDA generator) use it too; plain cuda is the current one already."""
    if not DEVICE_NAMES.fullmatch(str(name)):
        raise SystemExit(f"error: --device {name!r} is not a device; use auto, cpu, cuda or cuda:N (N a GPU index).")
    device = device_named(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise SystemExit(f"error: --device {name} was requested but no GPU is usable (torch {torch.__version__} is "
                         f"{build}); use --device cpu or --device auto.")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise SystemExit(f"error: --device {name} was requested but this machine has {count} GPU(s), "
                         f"cuda:0 to cuda:{count - 1}; pick one of those, or --device cuda.")
    if device.index is not None:  # set_device refuses a device without an index
        torch.cuda.set_device(device)
    return device


def progress(iterable, total=None, initial=0, desc=None):
    """A tqdm bar on stderr, refreshed at most once a second to keep logs small.

    For a resumed loop pass range(start_step, n_steps), total=n_steps, initial=start_step. Show losses with
    bar.set_postfix({name: value.item()}, refresh=False) at logging steps only: item() syncs the device.
    """
    return tqdm(iterable, total=total, initial=initial, desc=desc, mininterval=1.0, dynamic_ncols=True)


def run_main(main):
    """Run main(); a bad configuration or input file, or a diverged loss, exits with status 1 and its message, no
    traceback. The run folders main() held are released when it returns (in-process callers run several)."""
    try:
        main()
    except (ConfigError, NonFiniteLossError) as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        release_run_folders()
