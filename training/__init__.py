"""Run folders, checkpoints, metrics, numerics and the command line shared by every main_*.py."""
from .cli import (add_common_args, add_device_arg, add_flags_from_defaults, check_ranges, progress,
                  resolve_device, run_main)
from .precision import PRECISIONS, add_precision_arg, apply_precision
from .runs import (ConfigError, MetricsLog, NonFiniteLossError, RunFolder, capture_rng_state, git_commit,
                   hardware_description, library_versions, load_checkpoint, restore_rng_state, seed_everything,
                   separate_rng_stream, write_json_atomic)
from .terms import TermSums

__all__ = ["add_common_args", "add_device_arg", "add_flags_from_defaults", "check_ranges",
           "progress", "resolve_device", "run_main", "PRECISIONS", "add_precision_arg", "apply_precision",
           "ConfigError", "MetricsLog", "NonFiniteLossError", "RunFolder", "TermSums", "capture_rng_state",
           "git_commit", "hardware_description", "library_versions", "load_checkpoint", "restore_rng_state",
           "seed_everything", "separate_rng_stream", "write_json_atomic"]
