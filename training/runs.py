"""One run folder per training run: config.json, metrics.csv, checkpoint.pt and samples/, owned by RunFolder.

A run is resumable at its last checkpoint and nowhere else: the checkpoint holds every model, optimizer, the step,
the RNG states and the config, and on resume the metrics rows logged after that checkpoint are dropped, so a
killed-and-resumed run ends with the same files as an uninterrupted one. Fault model (README, "Run folders"): every
file is replaced atomically or appended as one checked write; a checkpoint is written only when the losses since
the last one and the state itself are finite, and the one before it is kept until a finite update after the new
one shows the new one good; one process at a time holds a folder.
"""
import csv
import fcntl
import importlib.metadata
import io
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.utils._pytree as pytree

from .terms import TermSums

REPO_DIR = Path(__file__).resolve().parent.parent
CHECKPOINT_KEYS = ("step", "models", "config")
LOCK_FILE = ".lock"
# Flags a resumed run may change without notice; every other change is printed and recorded in config.json.
UNREMARKABLE_FLAGS = ("resume",)


class ConfigError(RuntimeError):
    """A bad flag, an unusable input file, or a run folder that disagrees with the flags: the script exits with
    this message (naming the problem and the fix) and no traceback."""


class NonFiniteLossError(RuntimeError):
    """A loss term or the trained state became nan or inf; the checkpoint the message names predates it."""


def write_atomically(path, write_bytes, keep_previous_as=None):
    """Call write_bytes(file) on a temporary file beside `path`, then swap it in.

    os.replace is atomic within one file system, so a crash at any point leaves either the old or the new file,
    never a truncated one. keep_previous_as: move the old file there just before the swap.
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            write_bytes(file)
            file.flush()
            os.fsync(file.fileno())
        if keep_previous_as is not None and path.exists():
            os.replace(path, keep_previous_as)
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


def load_checkpoint(path, advice="Delete it or choose another --run_dir."):
    """The checkpoint dict at `path`, on CPU; load_state_dict moves tensors to the model's and optimizer's device.
    advice: how to fix an unusable file, said after what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist or is not a file. {advice}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types for a truncated or foreign file
        first_line = str(error).strip().splitlines()[0][:100] if str(error).strip() else ""
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


def nonfinite_entries(tree):
    """Dotted names of the floating-point tensors of a nested dict/list that hold nan or inf (syncs per tensor:
    only called once a single check found one)."""
    leaves, _ = pytree.tree_flatten_with_path(tree)
    return [".".join(str(getattr(key, "key", getattr(key, "idx", key))) for key in path)
            for path, leaf in leaves if torch.is_tensor(leaf) and leaf.is_floating_point()
            and not torch.isfinite(leaf).all()]


def all_finite(tree):
    """Whether every floating-point tensor of a nested dict/list is finite: one device sync."""
    flags = [torch.isfinite(leaf).all() for leaf in pytree.tree_leaves(tree)
             if torch.is_tensor(leaf) and leaf.is_floating_point() and leaf.numel()]
    return not flags or bool(torch.stack([flag.to(flags[0].device) for flag in flags]).all())


# ---- metrics.csv ----------------------------------------------------------------------------------------------

def append_line(path, text):
    """Append `text` to `path` in one write, flushed to disk; a failed or short write (a full disk) is cut back
    off, so the file never ends in half a row written by this process."""
    data = text.encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(descriptor).st_size
        try:
            written = os.write(descriptor, data)
            if written != len(data):
                raise OSError(28, f"only {written} of {len(data)} bytes written (disk full?)")
            os.fsync(descriptor)
        except BaseException:
            os.ftruncate(descriptor, size)
            raise
    finally:
        os.close(descriptor)


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

    def _complete_rows(self):
        """(header, rows) of the file. A last line without its newline is a row torn by a kill or a full disk during
        its append: it is dropped, since its step comes after the checkpoint (rows are logged before it)."""
        lines = self.path.read_text().splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            print(f"{self.path}: dropped the torn last row {lines.pop().strip()!r}; it is logged again")
        rows = list(csv.reader(lines))
        if not rows:
            return None, []
        header, rows = rows[0], rows[1:]
        if "step" not in header:
            raise ConfigError(f"{self.path} starts with {header}, not a metrics header of this repository; "
                              "delete it or choose another --run_dir.")
        step_column = header.index("step")
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header) or not row[step_column].isdigit():
                raise ConfigError(f"{self.path} line {number} is not a row of its header {header}: {row}. "
                                  "Repair or delete that line, or choose another --run_dir.")
        return header, rows

    def _drop_rows_after(self, step):
        header, rows = self._complete_rows()
        if header is None:
            self.path.unlink()
            return
        self.columns = header
        step_column = header.index("step")
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(header)
        writer.writerows(row for row in rows if int(row[step_column]) <= step)
        write_atomically(self.path, lambda file: file.write(text.getvalue().encode()))

    def log(self, row):
        """Append one row; tensor values become Python numbers, columns absent from `row` stay empty."""
        first_row = self.columns is None
        if first_row:
            if "step" not in row:
                raise ValueError("the first metrics row must have a 'step' column (resume truncates by it)")
            self.columns = list(row)
        new_keys = [key for key in row if key not in self.columns]
        if new_keys:
            raise ValueError(f"{self.path} has the columns {self.columns} fixed by its first row; "
                             f"new keys {new_keys} cannot be added")
        plain_row = {key: value.item() if torch.is_tensor(value) else value for key, value in row.items()}
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns, restval="")
        if first_row:
            writer.writeheader()
        writer.writerow(plain_row)
        if first_row:
            write_atomically(self.path, lambda file: file.write(text.getvalue().encode()))
        else:
            append_line(self.path, text.getvalue())


# ---- the run folder -------------------------------------------------------------------------------------------

# Run folders this process holds, by resolved path: the OS drops the locks when the process dies (kill -9
# included); one process runs its loops one after another, so it may reopen a folder it holds.
_HELD_LOCKS = {}


def lock_run_folder(path):
    """Create the folder if needed and hold its lock file, or raise ConfigError naming the process holding it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        key = path.resolve()
        if key in _HELD_LOCKS:
            return
        file = open(path / LOCK_FILE, "a+")
    except OSError as error:
        raise ConfigError(f"--run_dir {path} cannot be used as a run folder ({error.strerror or error}): "
                          "choose a writable folder path with --run_dir.") from error
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "another process"
        file.close()
        raise ConfigError(f"{path} is in use by {holder}: two runs in one folder would interleave their metrics "
                          "and checkpoints. Wait for that run to end (or stop it), or choose another --run_dir.")
    file.seek(0)
    file.truncate()
    file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    file.flush()
    _HELD_LOCKS[key] = file


def release_run_folders():
    """Drop every run-folder lock this process holds (run_main does so when a script's main() returns)."""
    for file in _HELD_LOCKS.values():
        file.close()
    _HELD_LOCKS.clear()


def remove_stale_temporaries(folder):
    """Temporary files of writes a kill interrupted (write_atomically's *.tmp, follow_up's *.tmp.<suffix>)."""
    for pattern in ("*.tmp", "*.tmp.*"):
        for path in [*folder.glob(pattern), *folder.glob(f"samples/{pattern}")]:
            path.unlink(missing_ok=True)


def same_value(a, b):
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and bool((a == b).all())
    return a == b


def apply_fresh_hyperparameters(name, optimizer, saved_state):
    """Load an optimizer's saved state, but keep the hyperparameters (lr, betas, weight decay...) it was built
    with from this run's flags: a flag changed on resume is applied, never recorded and ignored. Returns the
    changes as text."""
    fresh = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(saved_state)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"the checkpoint's optimizer {name!r} does not fit this run's ({error}); resume with the "
                          "flags it was trained with or choose another --run_dir.") from error
    changes = []
    for index, (group, hyperparameters) in enumerate(zip(optimizer.param_groups, fresh)):
        for key, value in hyperparameters.items():
            if not same_value(group.get(key), value):
                changes.append(f"optimizer {name!r} group {index}: {key} {group.get(key)} -> {value}")
                group[key] = value
    return changes


class RunFolder:
    """The folder of one run and the state of its training: restore, checkpoints, loss terms between log points,
    metrics rows and the files that follow a checkpoint. Opening validates the folder and the checkpoint before
    anything in it is written."""

    def __init__(self, run_dir, flags, resume=False, model_keys=()):
        """flags: every flag (vars(args)); model_keys: the flags that define the architecture, method and data,
        which must not change on resume (the seed neither: it fixes the evaluation sets)."""
        self.path = Path(run_dir)
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.previous_checkpoint_path = self.path / "checkpoint_previous.pt"
        self.nonfinite_checkpoint_path = self.path / "checkpoint_nonfinite.pt"
        self.samples_dir = self.path / "samples"
        self.flags = json_plain(flags)
        self.device = device_named(self.flags.get("device", "cpu"))  # whose RNG a checkpoint holds
        lock_run_folder(self.path)
        self.resume_state = self._checkpoint_to_resume(resume, (*model_keys, "seed"))
        self.checkpoint_step = self.resume_state["step"] if self.resume_state else None
        self.start_step = self.checkpoint_step or 0
        self.changed_flags = self._flags_changed_since_checkpoint()
        self.config = self._describe_run()
        try:
            remove_stale_temporaries(self.path)
            self.metrics = MetricsLog(self.path / "metrics.csv", keep_up_to_step=self.checkpoint_step)
            self.samples_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path / "config.json", self.config)
        except OSError as error:
            raise ConfigError(f"cannot write into --run_dir {self.path} ({error.strerror or error}): "
                              "choose a writable folder with --run_dir.") from error
        self.terms = TermSums()
        self._terms_since = self.start_step
        self._clock_start = time.time() - (self.resume_state.get("elapsed_s", 0.0) if self.resume_state else 0.0)
        self._wrote_checkpoint = False  # only a checkpoint of this process is set aside when it proves bad
        self._redoing_follow_ups = False

    def _checkpoint_to_resume(self, resume, guarded_keys):
        if not self.checkpoint_path.exists() and self.previous_checkpoint_path.exists():
            # A kill between the two renames of a checkpoint write: the previous one is the newest good state.
            os.replace(self.previous_checkpoint_path, self.checkpoint_path)
        if not self.checkpoint_path.exists():
            if resume:
                print(f"--resume: no checkpoint at {self.checkpoint_path}; starting a fresh run")
            return None
        if not resume:
            raise ConfigError(f"{self.path} already holds a checkpoint ({self.checkpoint_path}); "
                              "pass --resume to continue it or choose another --run_dir.")
        state = load_checkpoint(self.checkpoint_path)
        check_same_model_flags(state["config"]["flags"], self.flags, guarded_keys, self.checkpoint_path)
        print(f"resuming {self.checkpoint_path} at step {state['step']}")
        return state

    def _flags_changed_since_checkpoint(self):
        if not self.resume_state:
            return {}
        saved = self.resume_state["config"]["flags"]
        changed = {key: [saved.get(key), value] for key, value in self.flags.items()
                   if key not in UNREMARKABLE_FLAGS and saved.get(key) != value}
        if changed:
            print("resuming with changed flags: "
                  + ", ".join(f"--{key} {old} -> {new}" for key, (old, new) in changed.items()))
        return changed

    def _describe_run(self):
        earlier = self.resume_state["config"] if self.resume_state else {}
        changes = earlier.get("changed_on_resume", [])
        if self.changed_flags:
            changes = changes + [{"step": self.start_step, "flags": self.changed_flags}]
        return {"flags": self.flags,
                "command": shlex.join(["python", *sys.argv]),
                "git_commit": git_commit(),
                "versions": library_versions(),
                "hostname": socket.gethostname(),
                "hardware": hardware_description(self.device),
                "resumed_at_step": earlier.get("resumed_at_step", []) + ([self.start_step] if earlier else []),
                "changed_on_resume": changes}

    # ---- restore --------------------------------------------------------------------------------------------

    def restore(self, models, optimizers, state=None):
        """Load the checkpoint resumed (or `state`, e.g. another run's warm-up) into the models and optimizers,
        with the optimizers' hyperparameters from this run's flags, and restore the RNG states. Returns the
        checkpoint's dict ({} for a fresh run) for the loop's own entries."""
        state = self.resume_state if state is None else state
        if not state:
            return {}
        try:
            for name, model in models.items():
                model.load_state_dict(state["models"][name])
        except (KeyError, RuntimeError) as error:
            raise ConfigError(f"the checkpoint's models do not fit this run's ({str(error).splitlines()[0]}); "
                              "resume with the flags it was trained with or choose another --run_dir.") from error
        changes = [change for name, optimizer in optimizers.items()
                   for change in apply_fresh_hyperparameters(name, optimizer, state["optimizers"][name])]
        if changes:
            print("--resume applies this run's optimizer flags over the checkpoint's: " + "; ".join(changes))
            if not self.changed_flags:
                self.config["changed_on_resume"].append({"step": self.start_step, "flags": {}})
            self.config["changed_on_resume"][-1]["optimizers"] = changes
            write_json_atomic(self.path / "config.json", self.config)
        restore_rng_state(state["rng"], self.device)
        self._clock_start = time.time() - state.get("elapsed_s", 0.0)
        return state

    def elapsed_s(self):
        """Wall time of the run so far, every resumed segment included."""
        return time.time() - self._clock_start

    # ---- loss terms -----------------------------------------------------------------------------------------

    def add_terms(self, terms):
        """Add one update's loss terms (0-dim tensors) to the sums since the last log point, on the device."""
        self.terms.add(terms)

    def read_terms(self, step, mean=True):
        """The terms' means (or sums) since the last log point, read with one device sync at this log point;
        NonFiniteLossError when one was nan or inf, naming the update, the terms and the checkpoint to resume."""
        means, totals, first_bad_update = self.terms.read()
        since, updates = self._terms_since, self.terms.updates
        self.terms = TermSums()
        self._terms_since = step
        if first_bad_update is None:
            return means if mean else totals
        culprits = ", ".join(f"term '{name}' = {value}" for name, value in totals.items()
                             if not np.isfinite(value))
        where = (f"step {since + first_bad_update}" if updates == step - since
                 else f"step {step} (its update {first_bad_update} of {updates})")
        raise NonFiniteLossError(f"non-finite loss at {where}: {culprits}. Training stopped; "
                                 + self._recover_from_nonfinite(bad_first_update=since == self.checkpoint_step
                                                                and first_bad_update == 1))

    def _recover_from_nonfinite(self, bad_first_update):
        """What to resume after a non-finite loss. A checkpoint whose very first update diverged holds parameters
        that a lower learning rate cannot save: it is set aside for the one before, unless it was resumed with
        changed flags, which may be the cause. (The terms of one update may span several optimizer steps, as the
        symmetric HVAE's decoder-then-encoder iteration: a divergence inside the first then also sets the
        checkpoint aside, the cautious side.)"""
        fix = "after fixing the cause (e.g. lower --lr)"
        if self.checkpoint_step is None:
            return f"no checkpoint was written yet — start again {fix}."
        if bad_first_update and self.changed_flags and not self._wrote_checkpoint:
            changed = ", ".join(f"--{key} {old} -> {new}" for key, (old, new) in self.changed_flags.items())
            return (f"the last good checkpoint ({self.checkpoint_path}, step {self.checkpoint_step}) is intact, but "
                    f"its first update diverged with the flags changed on this resume ({changed}): resume with "
                    "--resume and their old values.")
        if bad_first_update:
            bad_step = self.checkpoint_step
            os.replace(self.checkpoint_path, self.nonfinite_checkpoint_path)
            if not self.previous_checkpoint_path.exists():
                self.checkpoint_step = None
                return (f"the checkpoint of step {bad_step} diverged at its first update, so it was set aside as "
                        f"{self.nonfinite_checkpoint_path} and --resume starts the run again {fix}.")
            self.checkpoint_step = torch.load(self.previous_checkpoint_path, map_location="cpu", weights_only=True,
                                              mmap=True)["step"]
            os.replace(self.previous_checkpoint_path, self.checkpoint_path)
            return (f"the checkpoint of step {bad_step} diverged at its first update, so it was set aside as "
                    f"{self.nonfinite_checkpoint_path}; the one before ({self.checkpoint_path}, step "
                    f"{self.checkpoint_step}) is restored and intact — resume with --resume {fix}.")
        return (f"the last good checkpoint ({self.checkpoint_path}, step {self.checkpoint_step}) is intact — "
                f"resume with --resume {fix}.")

    # ---- checkpoints ----------------------------------------------------------------------------------------

    def save_checkpoint(self, step, models, optimizers, **entries):
        """Write checkpoint.pt: the models' and optimizers' states, the loop's own entries, the RNG states, the
        wall time and the config. Refused (NonFiniteLossError) when any of it is nan or inf; the checkpoint it
        replaces is kept as checkpoint_previous.pt. Call it after read_terms at the same step."""
        state = {"step": step, "models": {name: model.state_dict() for name, model in models.items()},
                 "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
                 **entries, "rng": capture_rng_state(self.device), "elapsed_s": self.elapsed_s(), "config": self.config}
        if not all_finite(state):
            names = nonfinite_entries({key: state[key] for key in ("models", "optimizers", *entries)})
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise NonFiniteLossError(f"the state at step {step} is non-finite ({shown}) although its losses were "
                                     "finite: the update diverged. Training stopped; "
                                     + self._recover_from_nonfinite(bad_first_update=False))
        try:
            write_atomically(self.checkpoint_path, lambda file: torch.save(state, file),
                             keep_previous_as=self.previous_checkpoint_path)
        except OSError as error:
            raise ConfigError(f"cannot write {self.checkpoint_path} ({error.strerror or error}): free disk space "
                              f"or fix the folder, then resume with --resume; the checkpoint of step "
                              f"{self.checkpoint_step} is intact.") from error
        self.checkpoint_step = step
        self._wrote_checkpoint = True

    def log(self, row):
        """Append a metrics row (one checked write: a full disk stops the run with its message, not half a row)."""
        try:
            self.metrics.log(row)
        except OSError as error:
            raise ConfigError(f"cannot append to {self.metrics.path} ({error.strerror or error}): free disk space "
                              "or fix the folder, then resume with --resume.") from error

    # ---- files that follow a checkpoint ---------------------------------------------------------------------

    def follow_up(self, write, *paths):
        """Files that belong to the checkpoint just written (figures, a copy of it), written after it so that
        they never cost a run: write(*temporary_paths) writes them, and each is renamed into place. When resuming
        (redo_follow_ups) they are written only if one is missing: a kill came between the checkpoint and them."""
        paths = [Path(path) for path in paths]
        if self._redoing_follow_ups and all(path.exists() for path in paths):
            return
        temporaries = [path.with_name(f"{path.stem}.tmp{path.suffix}") for path in paths]
        write(*temporaries)
        for temporary, path in zip(temporaries, paths):
            os.replace(temporary, path)

    def redo_follow_ups(self, follow_ups):
        """On resume, call follow_ups(step) for the step resumed, so that its missing follow_up files appear."""
        if not self.resume_state:
            return
        self._redoing_follow_ups = True
        try:
            follow_ups(self.start_step)
        finally:
            self._redoing_follow_ups = False

    def copy_checkpoint(self, path):
        """Copy checkpoint.pt to `path` (a follow_up: e.g. the warm-up checkpoint other runs start from)."""
        Path(path).write_bytes(self.checkpoint_path.read_bytes())
