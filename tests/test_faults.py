"""Every run-folder promise kept under faults and bad input, for every script (pyro's test_examples pattern).

BAD_INPUT holds, per script, each bad flag, bad file and fault with the exit code and the words the message must
contain; each case runs in-process (run_main(lambda: main(argv))) and must end with that code, no traceback, and no
change to what was already written. A test fails when a script is missing from the table. LOOPS holds a tiny run of
each of the six training loops, for the NaN -> resume, host-sync, lock, torn-row and kill-after-checkpoint tests.
"""
import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import shutil
from dataclasses import dataclass

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils._pytree import tree_leaves

import data.images as data_images
import main_cvae
import main_elbo
import main_image
import main_lagvae
import main_sym
import main_toy
from bench.counting import DispatchCounter
from evaluation.samples import save_sample_tensor
from training import RunFolder, run_main
from training.runs import LOCK_FILE, release_run_folders
from tests.scripts import REPO, read_metrics, run_script


@dataclass
class Outcome:
    code: int
    out: str
    err: str  # stderr, with the exit message of run_main


def run_in_process(main, argv):
    """main(argv) as its script's __main__ would run it: exit code, stdout and stderr (the SystemExit message of
    run_main included). Any other exception propagates, so a traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_main(lambda: main(argv))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            if isinstance(exit_.code, str):
                err.write(exit_.code + "\n")
    return Outcome(code, out.getvalue(), err.getvalue())


# ---- the six training loops, tiny ------------------------------------------------------------------------------

@dataclass
class Loop:
    main: object
    argv: list
    updates_per_step: int = 1  # optimizer updates per metrics step (batches per epoch for the epoch loops)


def sym_main(argv):
    main_sym.train("symmetric", main_sym.SymmetricUpdate, "", argv)


def elbo_main(argv):
    main_sym.train("elbo", main_elbo.ElboUpdate, "", argv)


SYM_TINY = ["--arch", "mlp", "--mlp_width", "16", "--conditional_width", "16", "--nz0", "4", "--nz1", "6",
            "--batch_size", "8", "--log_every", "2", "--checkpoint_every", "2", "--image_every", "2",
            "--display_chain_steps", "1", "--stats_batch_size", "8", "--dataset", "fmnist", "--device", "cpu"]
LOOPS = {
    "main_toy": Loop(main_toy.main, ["--method", "elbo", "--niters", "8", "--eval_every", "2", "--plot_every", "2",
                                     "--batch_size", "16", "--n_flows", "1", "--n_mc_px", "1", "--eval_batch_size",
                                     "16", "--gen_batch_size", "16", "--gen_niter", "1", "--device", "cpu"]),
    "main_image": Loop(main_image.main, ["--method", "elbo", "--warm_up", "1", "--epochs", "3", "--n_train", "20",
                                         "--n_test", "10", "--batch_size", "10", "--valid_size", "10", "--n_trials",
                                         "1", "--downstream_epochs", "1", "--downstream_draws", "1",
                                         "--gen_batch_size", "4", "--grid_size", "4", "--gen_niter", "1",
                                         "--gibbs_steps", "1", "--z_dim", "2", "--n_flows", "1", "--n_householder", "1",
                                         "--device", "cpu"],
                       updates_per_step=2),
    "main_sym": Loop(sym_main, [*SYM_TINY, "--niters", "8"]),
    "main_elbo": Loop(elbo_main, [*SYM_TINY, "--niters", "8"]),
    "main_cvae": Loop(main_cvae.main, ["--model", "cvae", "--epochs", "4", "--patience", "9", "--n_train", "64",
                                       "--n_valid", "32", "--n_test", "16", "--hidden_1", "8", "--hidden_2", "8",
                                       "--z_dim", "2", "--batch_size", "32", "--n_samples", "2",
                                       "--n_figure_digits", "2", "--device", "cpu"], updates_per_step=2),
    "main_lagvae": Loop(main_lagvae.main, ["--method", "lagvae", "--lambda_lr", "0.001", "--width", "8", "--z_dim",
                                           "2", "--n_train", "100", "--batch_size", "25", "--epochs", "2",
                                           "--eval_every", "2", "--n_eval", "20", "--eval_batch_size", "20",
                                           "--iwae_k", "2", "--device", "cpu"]),
}


def loop_argv(name, run_dir, *extra):
    return [*LOOPS[name].argv, "--run_dir", str(run_dir), *extra]


class StepSyncCounter(DispatchCounter):
    """DispatchCounter that also counts the host reads which bypass the dispatcher on a CPU (tolist, numpy: on a
    GPU each is a device-to-host copy, a sync), and the optimizers of every loop, which are built inside main()."""

    def __init__(self):
        super().__init__(optimizers=[])

    def __enter__(self):
        self._originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, self._counting(original))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
        return super().__exit__(*exc)

    def _counting(self, original):
        def read_on_host(tensor, *args, **kwargs):
            self.counts.syncs += 1
            return original(tensor, *args, **kwargs)
        return read_on_host


@pytest.mark.parametrize("name", LOOPS)
def test_no_host_sync_between_log_points(name, tmp_path, monkeypatch):
    """Between two log points a step reads nothing on the host: the syncs counted from one add_terms to the next
    (a whole step: batch, losses, backward, optimizer, sums) are 0; finiteness and the sums are read at the log
    point."""
    counter = StepSyncCounter()
    build_optimizer = torch.optim.Optimizer.__init__

    def registering_init(optimizer, *args, **kwargs):
        build_optimizer(optimizer, *args, **kwargs)
        counter.optimizers.append(optimizer)  # their step counters stay on the host: no sync on any device
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", registering_init)
    marks = []  # the sync count after each add_terms; None at each log point
    add_terms, read_terms = RunFolder.add_terms, RunFolder.read_terms
    monkeypatch.setattr(RunFolder, "add_terms", lambda run, terms: (add_terms(run, terms),
                                                                     marks.append(counter.counts.syncs)))
    monkeypatch.setattr(RunFolder, "read_terms", lambda run, *args, **kwargs: (marks.append(None),
                                                                               read_terms(run, *args, **kwargs))[1])
    with counter:
        outcome = run_in_process(LOOPS[name].main, loop_argv(name, tmp_path / "run"))
    assert outcome.code == 0, outcome.err
    syncs_per_step = [after - before for before, after in zip(marks, marks[1:]) if None not in (before, after)]
    assert len(syncs_per_step) >= 3, "the run must hold several steps between log points for this to mean anything"
    assert syncs_per_step == [0] * len(syncs_per_step)
    assert counter.counts.syncs > 0  # the log points do read (the counter sees syncs at all)


# ---- NaN -> resume with a lower learning rate ------------------------------------------------------------------

@contextlib.contextmanager
def diverging_update(at_update, above_lr, factor=1e30):
    """A simulated divergence: the `at_update`-th update of an optimizer stepping at a learning rate above
    `above_lr` scales its parameters by `factor`. By 1e30 they stay finite, so the checkpoint after that update is
    written, but every loss they give is inf or nan: the case of a too-high --lr that only a checkpoint from before
    the divergence, resumed with a lower --lr, can recover from."""
    def blow_up(optimizer, args, kwargs):
        updates = max(int(state["step"]) for state in optimizer.state.values())
        if updates == at_update and max(group["lr"] for group in optimizer.param_groups) > above_lr:
            with torch.no_grad():
                for group in optimizer.param_groups:
                    for parameter in group["params"]:
                        parameter.mul_(factor)
    handle = register_optimizer_step_post_hook(blow_up)
    try:
        yield
    finally:
        handle.remove()


def finite_state(path):
    state = torch.load(path, weights_only=True)
    tensors = [leaf for leaf in tree_leaves({k: state[k] for k in ("models", "optimizers")})
               if torch.is_tensor(leaf) and leaf.is_floating_point()]
    return all(torch.isfinite(tensor).all() for tensor in tensors)


NAN_FLAGS = {"main_cvae": ["--model", "nn"]}  # a CVAE would train its baseline at the diverging lr first


@pytest.mark.parametrize("name", LOOPS)
def test_nan_stops_at_the_next_log_point_and_resumes_with_a_lower_lr(name, tmp_path):
    """Updates 1-2 | 3-4 (blown up at 4; the checkpoint after them finite but bad) | 5: non-finite. The run stops
    at that log point, sets the bad checkpoint aside, restores the one before, and a resume with a lower --lr
    applies it and trains to the end with finite losses and state."""
    loop, run_dir = LOOPS[name], tmp_path / "run"
    argv = loop_argv(name, run_dir, *NAN_FLAGS.get(name, []))
    bad_step, good_step = 4 // loop.updates_per_step, 2 // loop.updates_per_step
    if name == "main_image":  # its --lr is the method's, after one warm-up epoch at --warm_lr: one step later
        bad_step, good_step = bad_step + 1, good_step + 1
    with diverging_update(at_update=4, above_lr=0.002):
        stopped = run_in_process(loop.main, [*argv, "--lr", "0.005"])
    assert stopped.code == 1 and "Traceback" not in stopped.err and "term '" in stopped.err
    if name == "main_sym":  # the blown-up decoder feeds the encoder step of the same iteration: nan at step 4
        assert "non-finite loss at step 4" in stopped.err
        assert f"the last good checkpoint ({run_dir / 'checkpoint.pt'}, step 2) is intact" in stopped.err
        assert not (run_dir / "checkpoint_nonfinite.pt").exists()
    else:
        assert f"non-finite loss at step {bad_step + 1}" in stopped.err
        assert f"checkpoint of step {bad_step} diverged at its first update" in stopped.err
        assert f"step {good_step}) is restored and intact — resume with --resume" in stopped.err
        assert (run_dir / "checkpoint_nonfinite.pt").exists()
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == good_step
    assert finite_state(run_dir / "checkpoint.pt")

    resumed = run_in_process(loop.main, [*argv, "--lr", "0.001", "--resume"])
    assert resumed.code == 0, resumed.err
    assert "--lr 0.005 -> 0.001" in resumed.out and "lr 0.005 -> 0.001" in resumed.out.split("optimizer flags")[1]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["changed_on_resume"][-1]["step"] == good_step
    assert config["changed_on_resume"][-1]["flags"]["lr"] == [0.005, 0.001]
    final = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert final["step"] == int(read_metrics(run_dir)[-1]["step"])
    assert all(group["lr"] <= 0.001 for optimizer in final["optimizers"].values()
               for group in optimizer["param_groups"])
    assert finite_state(run_dir / "checkpoint.pt")
    rows = read_metrics(run_dir)
    assert all(math.isfinite(float(value)) for row in rows for key, value in row.items()
               if value and key not in ("phase",)), rows[-1]


def test_a_real_divergence_resumes_with_a_lower_lr(tmp_path):
    """The issue's example: --lr 1 with a log point every step diverges a few steps in; the checkpoint of the step
    before the nan holds parameters whose next loss is the nan, so it is set aside and the one before restored,
    and --resume --lr 1e-3 trains to the end."""
    argv = loop_argv("main_toy", tmp_path, "--niters", "12", "--eval_every", "1", "--plot_every", "12")
    stopped = run_in_process(main_toy.main, [*argv, "--lr", "1"])
    assert stopped.code == 1 and "diverged at its first update" in stopped.err and "is restored" in stopped.err
    restored = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"]
    resumed = run_in_process(main_toy.main, [*argv, "--lr", "1e-3", "--resume"])
    assert resumed.code == 0, resumed.err
    rows = read_metrics(tmp_path)
    assert [int(row["step"]) for row in rows] == list(range(1, 13)) and restored < 12
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)


def test_a_symmetric_hvae_divergence_is_reported_by_step_and_term(tmp_path):
    """nan parameters give nan Bernoulli probabilities, on which torch.bernoulli stops with a bare range error (a
    device-side assert on CUDA); drawn as 0 instead, the nan reaches the loss terms and the log point names it."""
    with diverging_update(at_update=4, above_lr=0, factor=float("nan")):
        stopped = run_in_process(sym_main, loop_argv("main_sym", tmp_path))
    assert stopped.code == 1 and "non-finite loss at step 4: term '" in stopped.err
    assert f"({tmp_path / 'checkpoint.pt'}, step 2) is intact" in stopped.err


# ---- lock, torn row, kill after a checkpoint, optimizer flags on resume ------------------------------------------

def test_a_second_process_on_a_run_folder_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    RunFolder(run_dir, {"seed": 0}, model_keys=())  # this process holds the folder, as a running script does
    try:
        second = run_script("main_toy.py", *loop_argv("main_toy", run_dir), check=False)
    finally:
        release_run_folders()
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"is in use by process {os.getpid()}" in second.stderr and "choose another --run_dir" in second.stderr
    assert not (run_dir / "metrics.csv").exists() and not (run_dir / "checkpoint.pt").exists()


@contextlib.contextmanager
def killed_after_checkpoint(step):
    """SIGKILL right after the checkpoint of `step` is written, before the files that follow it."""
    follow_up = RunFolder.follow_up

    def dying_follow_up(run, write, *paths):
        if run.checkpoint_step == step and not run._redoing_follow_ups:
            raise SystemExit(137)
        follow_up(run, write, *paths)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunFolder, "follow_up", dying_follow_up)
        yield


def test_a_torn_last_row_is_repaired_on_resume(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_in_process(main_toy.main, loop_argv("main_toy", straight)).code == 0
    with killed_after_checkpoint(4):
        assert run_in_process(main_toy.main, loop_argv("main_toy", killed)).code == 137
    with open(killed / "metrics.csv", "a") as metrics:  # then killed during the append of step 6: a torn row
        metrics.write("6,elbo,1.2")
    resumed = run_in_process(main_toy.main, loop_argv("main_toy", killed, "--resume"))
    assert resumed.code == 0 and "dropped the torn last row '6,elbo,1.2'" in resumed.out
    assert read_metrics(killed) == read_metrics(straight)


def test_files_after_a_checkpoint_appear_on_resume(tmp_path):
    """Killed after the warm-up's checkpoint and again after the final one: on each resume warmup_checkpoint.pt,
    the warm-up grids and the final grids appear, the same as an uninterrupted run's."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    argv = ["--epochs", "1", "--save_samples", "2"]
    assert run_in_process(main_image.main, loop_argv("main_image", straight, *argv)).code == 0
    for step in (1, 2):
        with killed_after_checkpoint(step):
            resume = ["--resume"] if step > 1 else []
            assert run_in_process(main_image.main, loop_argv("main_image", killed, *argv, *resume)).code == 137
        assert not (killed / "samples" / ("warmup_recon.png" if step == 1 else "final_recon.png")).exists()
    assert run_in_process(main_image.main, loop_argv("main_image", killed, *argv, "--resume")).code == 0
    figures = sorted(path.name for path in (straight / "samples").glob("*.png"))
    assert len(figures) == 8 and sorted(path.name for path in (killed / "samples").glob("*.png")) == figures
    assert all((straight / "samples" / name).read_bytes() == (killed / "samples" / name).read_bytes()
               for name in figures)
    warm_ups = [torch.load(run / "warmup_checkpoint.pt", weights_only=True) for run in (straight, killed)]
    assert warm_ups[0]["step"] == warm_ups[1]["step"] == 1
    assert all(torch.equal(warm_ups[0]["models"]["encoder"][key], value)
               for key, value in warm_ups[1]["models"]["encoder"].items())
    assert read_metrics(killed) == read_metrics(straight)


def test_optimizer_flags_changed_on_resume_are_applied(tmp_path):
    argv = loop_argv("main_lagvae", tmp_path)
    assert run_in_process(main_lagvae.main, [*argv, "--epochs", "1"]).code == 0
    resumed = run_in_process(main_lagvae.main, [*argv, "--lambda_lr", "0.002", "--beta1", "0.6", "--lr", "3e-4",
                                                "--resume"])
    assert resumed.code == 0, resumed.err
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    model, multipliers = (state["optimizers"][name]["param_groups"][0] for name in ("model", "multipliers"))
    assert (model["lr"], model["betas"], multipliers["lr"]) == (3e-4, (0.6, 0.999), 0.002)
    change = json.loads((tmp_path / "config.json").read_text())["changed_on_resume"][-1]
    assert change["step"] == 4 and set(change["flags"]) == {"epochs", "lambda_lr", "beta1", "lr"}
    assert "optimizer 'multipliers' group 0: lr 0.001 -> 0.002" in change["optimizers"]


# ---- bad flags, bad files and run-folder faults, for every script ----------------------------------------------

@dataclass
class Case:
    """argv may name {run} (a fresh folder), {toy} / {sym} (copies of a finished tiny run), {file} (a plain
    file), {empty} (an empty folder), {corrupt_mnist} (a data root with damaged idx files), {samples_svhn} (a
    sample tensor of SVHN-shaped images) and {cache} (a cache folder with damaged FID statistics and classifier)."""
    argv: list
    code: int  # 2: refused by the flag parser; 1: a clear error (run_main's message)
    words: tuple  # the message names the problem and the fix with these
    prepare: object = None  # prepare(paths) -> a lock or file to keep open while the script runs, or None


def corrupt_checkpoint(paths):
    (paths["toy"] / "checkpoint.pt").write_bytes(b"not a checkpoint")


def bad_middle_row(paths):
    metrics = paths["toy"] / "metrics.csv"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0] + "2,elbo\n" + "".join(lines[2:]))


def held_by_another_process(paths):
    """The lock as another process holds it: an open file description of our own (flock locks are per open file,
    so this process's RunFolder is refused just as another process's would be)."""
    holder = open(paths["toy"] / LOCK_FILE, "w")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.write("process 4242 on elsewhere\n")
    holder.flush()
    return holder


TOY = LOOPS["main_toy"].argv
IMAGE = ["--n_train", "20", "--batch_size", "10", "--device", "cpu"]
SYM = ["--arch", "mlp", "--device", "cpu"]
FID = ["--n_samples", "4", "--dims", "64", "--cache_dir", "{cache}", "--device", "cpu"]
BAD_INPUT = {
    "main_toy.py": {
        "n_flows 0": Case([*TOY, "--n_flows", "0", "--run_dir", "{run}"], 2, ("--n_flows 0", "must be > 0")),
        "z_dim 0": Case([*TOY, "--z_dim", "0", "--run_dir", "{run}"], 2, ("--z_dim 0", "must be > 0")),
        "seed -1": Case([*TOY, "--seed", "-1", "--run_dir", "{run}"], 2, ("--seed", "must be >= 0")),
        "p_var 0": Case([*TOY, "--p_var", "0", "--run_dir", "{run}"], 2, ("--p_var 0.0", "must be > 0")),
        "weight_decay -1": Case([*TOY, "--weight_decay", "-1", "--run_dir", "{run}"], 2, ("--weight_decay -1.0",)),
        "eval_batch_size 0": Case([*TOY, "--eval_batch_size", "0", "--run_dir", "{run}"], 2, ("--eval_batch_size 0",)),
        "lr -1": Case([*TOY, "--lr", "-1", "--run_dir", "{run}"], 2, ("--lr -1.0", "must be > 0")),
        "niters -5": Case([*TOY, "--niters", "-5", "--run_dir", "{run}"], 2, ("--niters", "must be >= 0")),
        "niters 0": Case([*TOY, "--niters", "0", "--run_dir", "{run}"], 2, ("--niters 0", "must be > 0")),
        "gen_batch_size 0": Case([*TOY, "--gen_batch_size", "0", "--run_dir", "{run}"], 2, ("--gen_batch_size 0",)),
        "no gpu": Case([*TOY, "--device", "cuda", "--run_dir", "{run}"], 1, ("no GPU is usable", "--device cpu")),
        "run_dir is a file": Case([*TOY, "--run_dir", "{file}"], 1, ("cannot be used as a run folder",
                                                                      "choose a writable folder")),
        "run_dir under a file": Case([*TOY, "--run_dir", "{file}/run"], 1, ("Not a directory", "--run_dir")),
        "checkpoint without resume": Case([*TOY, "--run_dir", "{toy}"], 1, ("already holds a checkpoint",
                                                                            "pass --resume")),
        "corrupt checkpoint": Case([*TOY, "--run_dir", "{toy}", "--resume"], 1,
                                   ("is not a readable checkpoint", "Delete it or choose another --run_dir"),
                                   corrupt_checkpoint),
        "changed model flag": Case([*TOY, "--n_flows", "2", "--run_dir", "{toy}", "--resume"], 1,
                                   ("--n_flows: checkpoint 1, now 2", "pass the checkpoint's values")),
        "changed seed": Case([*TOY, "--seed", "1", "--run_dir", "{toy}", "--resume"], 1,
                             ("--seed: checkpoint 0, now 1", "cannot be resumed")),
        "bad metrics row": Case([*TOY, "--run_dir", "{toy}", "--resume"], 1,
                                ("metrics.csv line 2 is not a row", "Repair or delete that line"), bad_middle_row),
        "folder in use": Case([*TOY, "--run_dir", "{toy}", "--resume"], 1,
                              ("is in use by process 4242 on elsewhere", "choose another --run_dir"),
                              held_by_another_process),
    },
    "main_image.py": {
        "gen_batch_size 0": Case([*IMAGE, "--gen_batch_size", "0", "--run_dir", "{run}"], 2, ("--gen_batch_size 0",)),
        "grid_size 0": Case([*IMAGE, "--grid_size", "0", "--run_dir", "{run}"], 2, ("--grid_size 0",)),
        "z_dim 0": Case([*IMAGE, "--z_dim", "0", "--run_dir", "{run}"], 2, ("--z_dim 0", "must be > 0")),
        "epochs -1": Case([*IMAGE, "--epochs", "-1", "--run_dir", "{run}"], 2, ("--epochs", "must be >= 0")),
        "no epoch": Case([*IMAGE, "--epochs", "0", "--run_dir", "{run}"], 2, ("at least one epoch",)),
        "fewer images than a batch": Case(["--n_train", "5", "--batch_size", "10", "--device", "cpu",
                                           "--run_dir", "{run}"], 1, ("less than one batch", "raise --n_train")),
        "missing dataset": Case([*IMAGE, "--dataset", "svhn", "--data_root", "{empty}", "--run_dir", "{run}"], 1,
                                ("dataset 'svhn' not found", "Provide it")),
        "corrupt dataset": Case([*IMAGE, "--data_root", "{corrupt_mnist}", "--run_dir", "{run}"], 1,
                                ("unsigned-byte idx file", "Replace it with an intact copy")),
        "missing warm_start": Case([*IMAGE, "--warm_up", "1", "--warm_start", "{empty}/warmup_checkpoint.pt",
                                    "--run_dir", "{run}"], 1, ("does not exist", "Pass --warm_start a run's")),
        "foreign warm_start": Case([*IMAGE, "--warm_up", "1", "--warm_start", "{toy}/checkpoint.pt",
                                    "--run_dir", "{run}"], 1, ("other model flags", "--dataset: checkpoint")),
    },
    "main_sym.py": {
        "lr 0": Case([*SYM, "--lr", "0", "--run_dir", "{run}"], 2, ("--lr 0.0", "must be > 0")),
        "nz0 0": Case([*SYM, "--nz0", "0", "--run_dir", "{run}"], 2, ("--nz0 0",)),
        "log points": Case([*SYM, "--log_every", "3", "--checkpoint_every", "10", "--run_dir", "{run}"], 2,
                           ("multiples of --log_every",)),
        "corrupt dataset": Case([*SYM, "--data_root", "{corrupt_mnist}", "--run_dir", "{run}"], 1,
                                ("unsigned-byte idx file", "Replace it")),
    },
    "main_elbo.py": {
        "seed -1": Case([*SYM, "--seed", "-1", "--run_dir", "{run}"], 2, ("--seed", "must be >= 0")),
        "encoder_width 0": Case([*SYM, "--encoder_width", "0", "--run_dir", "{run}"], 2, ("--encoder_width 0",)),
    },
    "main_cvae.py": {
        "lr -1": Case(["--lr", "-1", "--run_dir", "{run}"], 2, ("--lr -1.0", "must be > 0")),
        "n_valid -1": Case(["--n_valid", "-1", "--run_dir", "{run}"], 2, ("--n_valid -1", "must be >= 0")),
        "missing baseline_run": Case(["--baseline_run", "{empty}", "--run_dir", "{run}"], 1,
                                     ("does not exist", "Pass --baseline_run a finished --model nn run")),
        "corrupt dataset": Case(["--data_root", "{corrupt_mnist}", "--run_dir", "{run}"], 1,
                                ("unsigned-byte idx file", "Replace it")),
    },
    "main_lagvae.py": {
        "beta1 1": Case(["--beta1", "1", "--run_dir", "{run}"], 2, ("--beta1 1.0", "must be in [0, 1)")),
        "lambda_lr 0": Case(["--lambda_lr", "0", "--run_dir", "{run}"], 2, ("--lambda_lr must be positive",)),
        "corrupt dataset": Case(["--data_root", "{corrupt_mnist}", "--run_dir", "{run}"], 1,
                                ("unsigned-byte idx file", "Replace it")),
        "foreign init_from": Case(["--n_train", "250", "--init_from", "{toy}", "--run_dir", "{run}"], 1,
                                  ("do not fit", "--init_from")),
    },
    "generate.py": {
        "n_grid 0": Case(["--run_dir", "{sym}", "--n_grid", "0"], 2, ("--n_grid 0", "must be > 0")),
        "no checkpoint": Case(["--run_dir", "{empty}", "--device", "cpu"], 1,
                              ("does not exist", "Pass the --run_dir of a main_sym.py / main_elbo.py run")),
        "not a symmetric run": Case(["--run_dir", "{toy}", "--device", "cpu"], 1,
                                    ("is not a run of main_sym.py / main_elbo.py",)),
    },
    "compute_gen_fid.py": {
        "no dataset": Case(["noise:uniform", *FID], 2, ("--dataset",)),
        "batch_size 0": Case(["noise:uniform", "--dataset", "mnist", *FID, "--batch_size", "0"], 2,
                             ("--batch_size positive",)),
        "not samples": Case(["{file}", "--dataset", "mnist", *FID], 1, ("is not a sample tensor file",)),
        "wrong image shape": Case(["{samples_svhn}", "--dataset", "mnist", *FID], 1,
                                  ("shape (3, 32, 32)", "the reference's are (1, 28, 28)",
                                   "--dataset their model was trained on")),
        "corrupt statistics": Case(["noise:uniform", "--dataset", "mnist", *FID], 1,
                                   ("not a readable statistics cache", "delete it")),
        "corrupt classifier": Case(["noise:uniform", "--dataset", "mnist", *FID, "--metric", "domain"], 1,
                                   ("not a readable classifier cache", "delete it")),
    },
    "launch.py": {
        "status without a table": Case(["status", "{empty}"], 1, ("no table was launched there", "give a run root")),
        "slurm without a time": Case(["run", "--root", "{run}", "--executor", "slurm"], 2,
                                     ("--executor slurm needs --time MINUTES",)),
    },
    "plot_curves.py": {
        "no run folder": Case(["{empty}"], 1, ("holds no metrics.csv", "pass a run folder")),
        "unknown metric": Case(["{toy}", "--metrics", "nope", "--out", "{empty}/curves.png"], 1,
                               ("no run logged ['nope']",)),
    },
}
BAD_INPUT_CASES = [(script, name) for script, cases in BAD_INPUT.items() for name in cases]


def test_every_script_is_in_the_bad_input_table():
    scripts = sorted(path.name for path in REPO.glob("*.py") if path.name != "compat.py")
    missing = [script for script in scripts if not BAD_INPUT.get(script)]
    assert not missing, f"add the bad flags, files and faults of {missing} to BAD_INPUT"


def script_main(script):
    if script == "main_sym.py":
        return sym_main
    if script == "main_elbo.py":
        return elbo_main
    module = __import__(script[:-3])
    return module.main


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished tiny toy run and symmetric-HVAE run, copied into each case that names them."""
    root = tmp_path_factory.mktemp("finished")
    for name, main, argv in (("toy", main_toy.main, [*TOY, "--niters", "4"]),
                             ("sym", sym_main, [*SYM_TINY, "--niters", "2"])):
        assert run_in_process(main, [*argv, "--run_dir", str(root / name)]).code == 0
    return root


def prepare_inputs(workspace, finished_runs):
    paths = {name: workspace / name for name in ("run", "toy", "sym", "file", "empty", "corrupt_mnist",
                                                 "samples_svhn", "cache")}
    for name in ("toy", "sym"):
        shutil.copytree(finished_runs / name, paths[name])
    paths["file"].write_text("a plain file\n")
    paths["empty"].mkdir()
    raw = paths["corrupt_mnist"] / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(b"\x00\x00\x08\x01 cut short")
    paths["samples_svhn"] = workspace / "samples_svhn.pt"
    save_sample_tensor(paths["samples_svhn"], torch.rand(4, 3, 32, 32))
    paths["cache"].mkdir()
    (paths["cache"] / "fid_mnist_train_4_64d.npz").write_bytes(b"PK\x03\x04 half a file")
    (paths["cache"] / "classifier_mnist.pt").write_bytes(b"not a classifier")
    return paths


def snapshot(folder):
    """Every file's content hash, the lock files aside (taking a lock rewrites its holder line)."""
    return {path.relative_to(folder): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != LOCK_FILE}


@pytest.mark.parametrize("script,name", BAD_INPUT_CASES, ids=[f"{s} {n}" for s, n in BAD_INPUT_CASES])
def test_bad_input_gets_one_clear_error_and_changes_nothing(script, name, tmp_path, finished_runs, monkeypatch):
    monkeypatch.setattr(data_images, "_download_with_torchvision", lambda info, root: "offline (this test)")
    case = BAD_INPUT[script][name]
    paths = prepare_inputs(tmp_path, finished_runs)
    kept_open = case.prepare(paths) if case.prepare else None
    before = snapshot(tmp_path)
    argv = [arg.format(**paths) for arg in case.argv]
    try:
        outcome = run_in_process(script_main(script), argv)
    finally:
        if kept_open:
            kept_open.close()
    message = outcome.err
    assert outcome.code == case.code, message
    assert all(word in message for word in case.words), message
    assert "Traceback" not in message
    after = snapshot(tmp_path)
    assert {path: digest for path, digest in after.items() if path in before} == before, "a written file changed"
    fresh = paths["run"].relative_to(tmp_path)
    assert all(path.parts[0] == fresh.name for path in set(after) - set(before)), "files outside a fresh run folder"
