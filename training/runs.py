"""One run folder per training run: config.json, metrics.csv, checkpoint.pt and samples/.

A run is resumable at its last checkpoint and nowhere else: the checkpoint holds every model, optimizer, the step,
the RNG states and the config, and on resume the metrics rows logged after that checkpoint are dropped, so a
killed-and-resumed run ends with the same files as an uninterrupted one.
"""
import csv
import importlib.metadata
import io
import json
import math
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

REPO_DIR = Path(__file__).resolve().parent.parent
CHECKPOINT_KEYS = ("step", "models", "config")


class ConfigError(RuntimeError):
    """The flags and the run folder disagree, or a file of the run folder is unusable."""


class NonFiniteLossError(RuntimeError):
    """A loss term became nan or inf; the last checkpoint predates it."""


def write_atomically(path, write_bytes):
    """Call write_bytes(file) on a temporary file beside `path`, then swap it in.

    os.replace is atomic within one file system, so a crash at any point leaves either the old or the new file,
    never a truncated one.
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            write_bytes(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json_atomic(path, obj):
    write_atomically(path, lambda file: file.write(json.dumps(obj, indent=2).encode()))


def json_plain(obj):
    """`obj` as JSON would give it back, so flags compare equal before saving and after loading."""
    return json.loads(json.dumps(obj, default=str))


def git_commit(repo_dir=REPO_DIR):
    """HEAD of the checkout at repo_dir, with '-dirty' when it has uncommitted changes; None outside git."""
    def git(*arguments):
        return subprocess.run(["git", *arguments], cwd=repo_dir, capture_output=True, text=True)
    try:
        head = git("rev-parse", "HEAD")
    except FileNotFoundError:  # git itself is not installed
        return None
    if head.returncode != 0:
        return None
    dirty = git("status", "--porcelain").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def library_versions():
    # importlib.metadata reads the installed version without importing the package.
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {"python": platform.python_version(), **{name: version(name) for name in ("torch", "torchvision", "numpy")}}


def device_named(name):
    """The torch.device of a --device value ('auto': cuda when a GPU is usable, else cpu); no checks."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hardware_description(device="cpu"):
    """'NVIDIA H100 80GB HBM3' for CUDA, else the CPU model with the thread count torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            model = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def capture_rng_state(device):
    """Every RNG a run on `device` draws from. The CUDA generator is that of the run's GPU only, and only in a CUDA
    run: a CPU run never initialises CUDA (on a GPU machine that would take memory on every GPU)."""
    # The numpy key becomes a list of ints so that torch.load(weights_only=True) accepts the checkpoint.
    name, key, position, has_gauss, cached_gaussian = np.random.get_state()
    device = torch.device(device)
    return {"torch": torch.get_rng_state(),
            "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
            "numpy": (name, key.tolist(), position, has_gauss, cached_gaussian),
            "python": random.getstate()}


def restore_rng_state(state, device):
    """The RNGs of capture_rng_state(device). A CUDA generator's state holds no device, so a run saved on cuda:1
    continues with the same draws on cuda:0; a CPU run leaves CUDA alone."""
    torch.set_rng_state(state["torch"])
    device = torch.device(device)
    if device.type == "cuda" and state["cuda"]:
        torch.cuda.set_rng_state(state["cuda"][0], device)
    name, key, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(state["python"])


@contextmanager
def separate_rng_stream(device, seed):
    """Evaluation and plots draw from their own seeded stream, so evaluating more or less often (or resuming)
    does not change training."""
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def load_checkpoint(path):
    """The checkpoint dict at `path`, on CPU; load_state_dict moves tensors to the model's and optimizer's device."""
    advice = "Delete it or choose another --run_dir."
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types for a truncated or foreign file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {first_line}). {advice}") from error
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ConfigError(f"{path} is not a checkpoint of this repository (missing {missing}). {advice}")
    return state


def check_same_model_flags(saved_flags, flags, model_keys, checkpoint_path):
    saved_and_now = [(key, saved_flags.get(key, "<absent>"), flags[key]) for key in model_keys]
    differing = [f"--{key}: checkpoint {saved!r}, now {now!r}" for key, saved, now in saved_and_now if saved != now]
    if differing:
        raise ConfigError(f"{checkpoint_path} was trained with other model flags:\n  " + "\n  ".join(differing)
                          + "\nSuch a checkpoint cannot be resumed with these flags; "
                            "pass the checkpoint's values or choose another --run_dir.")


class MetricsLog:
    """metrics.csv: one row per log call, columns fixed by the first row."""

    def __init__(self, path, keep_up_to_step=None):
        """keep_up_to_step=None starts an empty file; a step keeps only the rows logged up to that checkpoint."""
        self.path = Path(path)
        self.columns = None
        if keep_up_to_step is None:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            self._drop_rows_after(keep_up_to_step)

    def _drop_rows_after(self, step):
        with open(self.path, newline="") as file:
            reader = csv.DictReader(file)
            self.columns = reader.fieldnames
            rows = [row for row in reader if int(row["step"]) <= step]
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns)
        writer.writeheader()
        writer.writerows(rows)
        write_atomically(self.path, lambda file: file.write(text.getvalue().encode()))

    def log(self, row):
        """Append one row; tensor values become Python numbers, columns absent from `row` stay empty."""
        if self.columns is None:
            if "step" not in row:
                raise ValueError("the first metrics row must have a 'step' column (resume truncates by it)")
            self.columns = list(row)
            with open(self.path, "w", newline="") as file:
                csv.DictWriter(file, self.columns).writeheader()
        new_keys = [key for key in row if key not in self.columns]
        if new_keys:
            raise ValueError(f"{self.path} has the columns {self.columns} fixed by its first row; "
                             f"new keys {new_keys} cannot be added")
        plain_row = {key: value.item() if torch.is_tensor(value) else value for key, value in row.items()}
        with open(self.path, "a", newline="") as file:
            csv.DictWriter(file, self.columns, restval="").writerow(plain_row)


class RunFolder:
    """The folder of one run. Resuming validates the checkpoint before anything in the folder is written."""

    def __init__(self, run_dir, flags, resume=False, model_keys=()):
        """flags: every flag (vars(args)); model_keys: the flags that define the architecture, method and data,
        which must not change on resume."""
        self.path = Path(run_dir)
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.samples_dir = self.path / "samples"
        self.flags = json_plain(flags)
        self.resume_state = self._checkpoint_to_resume(resume, model_keys)
        self.checkpoint_step = self.resume_state["step"] if self.resume_state else None
        self.start_step = self.checkpoint_step or 0
        self.config = self._describe_run()
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / "config.json", self.config)
        self.metrics = MetricsLog(self.path / "metrics.csv", keep_up_to_step=self.checkpoint_step)

    def _checkpoint_to_resume(self, resume, model_keys):
        if not self.checkpoint_path.exists():
            if resume:
                print(f"--resume: no checkpoint at {self.checkpoint_path}; starting a fresh run")
            return None
        if not resume:
            raise ConfigError(f"{self.path} already holds a checkpoint ({self.checkpoint_path}); "
                              "pass --resume to continue it or choose another --run_dir.")
        state = load_checkpoint(self.checkpoint_path)
        check_same_model_flags(state["config"]["flags"], self.flags, model_keys, self.checkpoint_path)
        print(f"resuming {self.checkpoint_path} at step {state['step']}")
        return state

    def _describe_run(self):
        earlier_resumes = self.resume_state["config"].get("resumed_at_step", []) if self.resume_state else []
        return {"flags": self.flags,
                "command": shlex.join(["python", *sys.argv]),
                "git_commit": git_commit(),
                "versions": library_versions(),
                "hostname": socket.gethostname(),
                "hardware": hardware_description(device_named(self.flags.get("device", "cpu"))),
                "resumed_at_step": earlier_resumes + ([self.start_step] if self.resume_state else [])}

    def save_checkpoint(self, state):
        """state: {"step", "models": {name: state_dict}, "optimizers": {...}, "rng": capture_rng_state(), ...};
        the config is added here."""
        missing = [key for key in ("step", "models") if key not in state]
        if missing:
            raise ValueError(f"a checkpoint needs the keys {missing} to be resumable")
        write_atomically(self.checkpoint_path, lambda file: torch.save({**state, "config": self.config}, file))
        self.checkpoint_step = state["step"]


def check_finite(step, terms, run):
    """Raise NonFiniteLossError if any scalar loss term is nan or inf; at most one device sync per call."""
    tensors = [value.detach() for value in terms.values() if torch.is_tensor(value)]
    numbers = [value for value in terms.values() if not torch.is_tensor(value)]
    tensors_finite = not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())
    if tensors_finite and all(math.isfinite(number) for number in numbers):
        return
    # Only now, on failure, is it worth a sync per term to name the culprits.
    numbers_by_name = {name: value.item() if torch.is_tensor(value) else value for name, value in terms.items()}
    culprits = ", ".join(f"term '{name}' = {number}" for name, number in numbers_by_name.items()
                         if not math.isfinite(number))
    if run.checkpoint_step is None:
        last_good = "no checkpoint was written yet — start again"
    else:
        last_good = (f"the last good checkpoint ({run.checkpoint_path}, step {run.checkpoint_step}) is intact — "
                     "resume with --resume")
    raise NonFiniteLossError(f"non-finite loss at step {step}: {culprits}. Training stopped; {last_good} "
                             "after fixing the cause (e.g. lower --lr).")
