import argparse
import csv
import fcntl
import json
import os
import random
import re
import subprocess

import numpy as np
import pytest
import torch

from training import (ConfigError, NonFiniteLossError, RunFolder, add_common_args, add_flags_from_defaults,
                      capture_rng_state, git_commit, load_checkpoint, resolve_device, restore_rng_state, run_main,
                      seed_everything)
from training.runs import LOCK_FILE, release_run_folders

MODEL_KEYS = ("hidden", "data")


def make_flags(run_dir, **changes):
    flags = {"run_dir": str(run_dir), "seed": 0, "device": "cpu", "resume": False, "niters": 10,
             "eval_every": 2, "hidden": 4, "data": "moons", "lr": 0.1}
    return {**flags, **changes}


def open_run(run_dir, **changes):
    flags = make_flags(run_dir, **changes)
    return RunFolder(run_dir, flags, resume=flags["resume"], model_keys=MODEL_KEYS)


def random_draws():
    return torch.randn(3).tolist(), np.random.randn(3).tolist(), [random.random() for _ in range(3)]


def train(run_dir, niters=10, resume=False, killed_at_step=None, lr=0.1):
    """A miniature main_*.py: logs every 2 steps, checkpoints every 4, draws from all three RNGs."""
    run = open_run(run_dir, niters=niters, resume=resume, lr=lr)
    seed_everything(0)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    run.restore({"model": model}, {"model": optimizer})
    for step in range(run.start_step, niters):
        if step == killed_at_step:
            return model
        x = torch.randn(8, 2) + torch.from_numpy(np.random.randn(8, 2)).float() * random.random()
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.add_terms({"loss": loss})
        if (step + 1) % 2 == 0:
            run.log({"step": step + 1, **run.read_terms(step + 1)})
        if (step + 1) % 4 == 0:
            run.save_checkpoint(step + 1, {"model": model}, {"model": optimizer})
    release_run_folders()
    return model


def test_common_args_and_flags_from_defaults():
    parser = argparse.ArgumentParser()
    add_common_args(parser, length_flag="epochs", default_length=5, default_run_dir="runs/x")
    add_flags_from_defaults(parser, {"lr": 1e-3, "n_flows": 4, "data": "moons", "learn_prior": False})
    args = parser.parse_args(["--learn_prior", "true", "--lr", "0.5"])
    assert vars(args) == {"run_dir": "runs/x", "seed": 0, "device": "auto", "precision": "fp32", "resume": False,
                          "epochs": 5, "lr": 0.5, "n_flows": 4, "data": "moons", "learn_prior": True}
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "tpu"])


def test_config_json_records_flags_commit_and_versions(tmp_path):
    run = open_run(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["flags"] == make_flags(tmp_path / "run")
    assert "git_commit" in config and "command" in config and config["resumed_at_step"] == []
    assert config["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert config["versions"]["numpy"] == np.__version__ and config["versions"]["python"]
    assert run.samples_dir.is_dir()


def test_git_commit_marks_a_dirty_checkout(tmp_path):
    assert git_commit(tmp_path) is None
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    assert re.fullmatch(r"[0-9a-f]{40}", git_commit(tmp_path))
    (tmp_path / "a.txt").write_text("b")
    assert git_commit(tmp_path).endswith("-dirty")


def test_checkpoint_loads_with_weights_only_and_holds_config(tmp_path):
    train(tmp_path, niters=4)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert state["config"]["flags"]["hidden"] == 4


def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = open_run(tmp_path)
    model = torch.nn.Linear(3, 1)
    torch.nn.init.ones_(model.weight)
    run.save_checkpoint(4, {"model": model}, {})

    def crashing_save(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", crashing_save)
    torch.nn.init.zeros_(model.weight)
    with pytest.raises(ConfigError, match="cannot write .*No space left on device.*checkpoint of step 4 is intact"):
        run.save_checkpoint(8, {"model": model}, {})
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and torch.equal(state["models"]["model"]["weight"], torch.ones(1, 3))
    assert not list(tmp_path.glob("*.tmp")), "the temporary file must be removed"


def test_the_checkpoint_before_is_kept_and_used_when_a_kill_cut_the_swap(tmp_path):
    train(tmp_path, niters=8)
    assert load_checkpoint(tmp_path / "checkpoint_previous.pt")["step"] == 4
    (tmp_path / "checkpoint.pt").unlink()  # killed between the two renames of the write at step 8
    (tmp_path / "checkpoint.pt.x1y2.tmp").write_bytes(b"half")  # and a write left its temporary file
    run = open_run(tmp_path, resume=True)
    assert run.start_step == 4 and not list(tmp_path.glob("*.tmp"))
    assert [row["step"] for row in csv.DictReader(open(tmp_path / "metrics.csv"))] == ["2", "4"]


def test_refuses_to_overwrite_a_checkpoint_without_resume(tmp_path):
    train(tmp_path, niters=4)
    with pytest.raises(ConfigError, match="--resume.*another --run_dir"):
        open_run(tmp_path)


def test_resume_with_changed_model_flags_names_each_key(tmp_path):
    train(tmp_path, niters=4)
    with pytest.raises(ConfigError) as error:
        open_run(tmp_path, resume=True, hidden=8, data="rings", eval_every=3)
    message = str(error.value)
    assert "--hidden: checkpoint 4, now 8" in message and "--data: checkpoint 'moons', now 'rings'" in message
    assert "eval_every" not in message and "cannot be resumed" in message


def test_resume_accepts_other_flags_and_records_the_resume(tmp_path):
    train(tmp_path, niters=4)
    run = open_run(tmp_path, resume=True, niters=20, eval_every=5)
    config = json.loads((tmp_path / "config.json").read_text())
    assert run.start_step == 4 and config["flags"]["niters"] == 20 and config["resumed_at_step"] == [4]


def test_resume_without_a_checkpoint_starts_fresh(tmp_path, capsys):
    run = open_run(tmp_path, resume=True)
    assert run.resume_state is None and run.start_step == 0
    assert "starting a fresh run" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unusable_checkpoint_error_names_the_file(tmp_path, content):
    checkpoint = tmp_path / "checkpoint.pt"
    if content is None:
        torch.save({"weights": torch.ones(2)}, checkpoint)  # readable, but not one of ours
    else:
        checkpoint.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(str(checkpoint)) + ".*Delete it or choose another --run_dir"):
        open_run(tmp_path, resume=True)


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    uninterrupted = train(tmp_path / "a")
    train(tmp_path / "b", killed_at_step=7)  # metrics hold step 6, the checkpoint only step 4
    resumed = train(tmp_path / "b", resume=True)
    metrics = (tmp_path / "a" / "metrics.csv").read_text()
    assert metrics.splitlines()[0] == "step,loss" and len(metrics.splitlines()) == 6
    assert (tmp_path / "b" / "metrics.csv").read_text() == metrics
    for expected, actual in zip(uninterrupted.parameters(), resumed.parameters()):
        assert torch.equal(expected, actual)


def test_metrics_columns_are_fixed_by_the_first_row(tmp_path):
    run = open_run(tmp_path)
    run.metrics.log({"step": 1, "loss": 0.5, "kl": torch.tensor(2.0)})
    run.metrics.log({"step": 2, "loss": 0.25})
    with pytest.raises(ValueError, match="new keys \\['fid'\\]"):
        run.metrics.log({"step": 3, "fid": 10.0})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["step,loss,kl", "1,0.5,2.0", "2,0.25,"]


def test_rng_capture_and_restore_reproduce_the_same_draws():
    seed_everything(123)
    state = capture_rng_state("cpu")
    first = random_draws()
    random_draws()
    restore_rng_state(state, "cpu")
    assert random_draws() == first


def test_terms_are_summed_on_the_device_and_read_as_means(tmp_path):
    run = open_run(tmp_path)
    for value in (1.0, 2.0, 4.5):
        run.add_terms({"loss": torch.tensor(value), "kl": torch.tensor(value * 2)})
    assert run.read_terms(3) == {"loss": 2.5, "kl": 5.0}
    run.add_terms({"loss": torch.tensor(1.0)})  # a new interval, and a term may come and go (phases)
    run.add_terms({"loss": torch.tensor(3.0), "fit": torch.tensor(7.0)})
    assert run.read_terms(5, mean=False) == {"loss": 4.0, "fit": 7.0}


@pytest.mark.parametrize("bad_value, shown", [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf")])
def test_a_nonfinite_term_names_its_step_term_and_the_checkpoint_to_resume(tmp_path, bad_value, shown):
    run = open_run(tmp_path)
    run.add_terms({"loss": torch.tensor(0.5)})
    run.read_terms(1200)  # the log point of step 1200, then its checkpoint
    run.save_checkpoint(1200, {}, {})
    for step in range(1201, 1205):  # the first bad update is dated by the updates counted finite before it
        run.add_terms({"loss": torch.tensor(0.5), "recon": torch.tensor(0.5),
                       "compat": torch.tensor(bad_value if step >= 1203 else 0.5)})
    with pytest.raises(NonFiniteLossError) as error:
        run.read_terms(1204)
    message = str(error.value)
    assert f"non-finite loss at step 1203: term 'compat' = {shown}." in message and "recon" not in message
    assert f"({run.checkpoint_path}, step 1200) is intact" in message and "--resume" in message


def test_a_nonfinite_loss_before_any_checkpoint_says_so(tmp_path):
    run = open_run(tmp_path)
    run.add_terms({"kl": torch.tensor(float("nan"))})
    with pytest.raises(NonFiniteLossError, match="step 1: term 'kl' = nan.*no checkpoint was written yet"):
        run.read_terms(1)


def test_a_checkpoint_whose_first_update_diverges_is_set_aside(tmp_path):
    run = open_run(tmp_path)
    model = torch.nn.Linear(2, 1)
    run.save_checkpoint(2, {"model": model}, {})
    run.add_terms({"loss": torch.tensor(1.0)})
    run.add_terms({"loss": torch.tensor(1.0)})
    run.read_terms(4)
    run.save_checkpoint(4, {"model": model}, {})
    run.add_terms({"loss": torch.tensor(float("inf"))})
    with pytest.raises(NonFiniteLossError, match="step 5.*checkpoint of step 4 diverged at its first update.*"
                                                 r"step 2\) is restored"):
        run.read_terms(5)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert load_checkpoint(tmp_path / "checkpoint_nonfinite.pt")["step"] == 4
    assert not (tmp_path / "checkpoint_previous.pt").exists()


def test_a_resumed_checkpoint_whose_first_update_diverges_is_set_aside_unless_flags_changed(tmp_path):
    train(tmp_path, niters=8)  # checkpoints at 4 (kept as the previous one) and 8
    for changes, kept in (({"eval_every": 3}, True), ({}, False)):
        run = open_run(tmp_path, resume=True, niters=8, **changes)
        run.add_terms({"loss": torch.tensor(float("nan"))})
        with pytest.raises(NonFiniteLossError) as error:
            run.read_terms(9)
        release_run_folders()
        if kept:  # the changed flag may be the cause: the checkpoint stays
            assert "step 8) is intact, but its first update diverged with the flags changed on this resume " \
                   "(--eval_every 2 -> 3)" in str(error.value)
            assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 8
        else:
            assert "checkpoint of step 8 diverged at its first update" in str(error.value)
            assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4


def test_a_nonfinite_state_is_never_written(tmp_path):
    run = open_run(tmp_path)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    run.save_checkpoint(2, {"model": model}, {"model": optimizer})
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"state at step 4 is non-finite \(models.model.bias\).*"
                                                 r"step 2\) is intact"):
        run.save_checkpoint(4, {"model": model}, {"model": optimizer})
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_resume_applies_changed_optimizer_flags_and_records_them(tmp_path, capsys):
    train(tmp_path, niters=4, lr=0.1)
    run = open_run(tmp_path, resume=True, niters=4, lr=0.01)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=1e-3)
    run.restore({"model": model}, {"model": optimizer})
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (0.01, (0.5, 0.9), 1e-3)
    assert optimizer.state[model.weight]["step"] == 4  # the rest of the saved state is kept
    out = capsys.readouterr().out
    assert "--lr 0.1 -> 0.01" in out and "optimizer 'model' group 0: lr 0.1 -> 0.01" in out
    change = json.loads((tmp_path / "config.json").read_text())["changed_on_resume"][-1]
    assert change["step"] == 4 and change["flags"] == {"lr": [0.1, 0.01]}
    assert "optimizer 'model' group 0: betas (0.9, 0.999) -> (0.5, 0.9)" in change["optimizers"]


def test_a_second_process_is_refused_the_folder(tmp_path):
    open_run(tmp_path)
    other_process = open(tmp_path / LOCK_FILE)  # a lock is per open file: this one stands for another process
    with pytest.raises(BlockingIOError):
        fcntl.flock(other_process, fcntl.LOCK_EX | fcntl.LOCK_NB)
    release_run_folders()
    fcntl.flock(other_process, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(ConfigError, match=f"{tmp_path} is in use by process {os.getpid()}.*another --run_dir"):
        open_run(tmp_path, resume=True)
    other_process.close()


def test_a_torn_last_row_is_dropped_on_resume(tmp_path, capsys):
    train(tmp_path, niters=4)
    with open(tmp_path / "metrics.csv", "a") as metrics:
        metrics.write("6,0.12")  # a kill during the append of step 6: cut inside a number, no newline
    open_run(tmp_path, resume=True)
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1].startswith("4,")
    assert "dropped the torn last row '6,0.12'" in capsys.readouterr().out


def test_a_failed_append_leaves_no_half_row(tmp_path, monkeypatch):
    run = open_run(tmp_path)
    run.log({"step": 1, "loss": 0.5})
    written = os.write
    monkeypatch.setattr(os, "write", lambda descriptor, data: written(descriptor, data[:3]))  # a full disk
    with pytest.raises(ConfigError, match="cannot append to .*metrics.csv .*disk full.*free disk space"):
        run.log({"step": 2, "loss": 0.25})
    monkeypatch.undo()
    assert (tmp_path / "metrics.csv").read_text() == "step,loss\n1,0.5\n"


def test_run_main_turns_known_errors_into_an_exit_message():
    def diverging_main():
        raise NonFiniteLossError("non-finite loss at step 1")
    with pytest.raises(SystemExit) as exit_info:
        run_main(diverging_main)
    assert exit_info.value.code == "error: non-finite loss at step 1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_resolve_device_without_gpu():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SystemExit, match="--device cuda was requested.*--device cpu"):
        resolve_device("cuda")
