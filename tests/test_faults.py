"""Every run-folder promise kept under faults and bad input, for every script (pyro's test_examples pattern).

BAD_INPUT holds, per script, each bad flag, bad file and fault with the exit code and the words the message must
contain; each case runs in-process (run_main(lambda: main(argv))) and must end with that code, no traceback, and no
change to what was already written. A test fails when a script is missing from the table. LOOPS holds a tiny run of
each of the six training loops, for the NaN -> resume, host-sync, lock, torn-row and kill-after-checkpoint tests.
"""
import contextlib
import csv
import fcntl
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import main_cvae
import main_elbo
import main_image
import main_lagvae
import main_sym
import main_toy
from bench.counting import DispatchCounter
from training import RunFolder, run_main
from training.runs import LOCK_FILE
from tests.scripts import REPO, read_metrics


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
    optimizer_flags: list = field(default_factory=list)  # a changed optimizer flag for the resume test


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
                                         "--gen_batch_size", "4", "--gen_niter", "1", "--gibbs_steps", "1",
                                         "--z_dim", "2", "--n_flows", "1", "--n_householder", "1", "--device", "cpu"],
                       updates_per_step=2),
    "main_sym": Loop(sym_main, [*SYM_TINY, "--niters", "8"]),
    "main_elbo": Loop(elbo_main, [*SYM_TINY, "--niters", "8"]),
    "main_cvae": Loop(main_cvae.main, ["--model", "cvae", "--epochs", "4", "--patience", "9", "--n_train", "64",
                                       "--n_valid", "32", "--n_test", "16", "--hidden_1", "8", "--hidden_2", "8",
                                       "--z_dim", "2", "--batch_size", "32", "--n_samples", "2",
                                       "--n_figure_digits", "2", "--device", "cpu"], updates_per_step=2),
    "main_lagvae": Loop(main_lagvae.main, ["--method", "lagvae", "--lambda_lr", "0.01", "--width", "8", "--z_dim",
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
