import argparse
import json
import random
import re
import subprocess

import numpy as np
import pytest
import torch

from training import (ConfigError, NonFiniteLossError, RunFolder, add_common_args, add_flags_from_defaults,
                      capture_rng_state, check_finite, git_commit, load_checkpoint, resolve_device,
                      restore_rng_state, run_main, seed_everything)

MODEL_KEYS = ("hidden", "data")


def make_flags(run_dir, **changes):
    flags = {"run_dir": str(run_dir), "seed": 0, "device": "cpu", "resume": False, "niters": 10,
             "eval_every": 2, "hidden": 4, "data": "moons"}
    return {**flags, **changes}


def open_run(run_dir, **changes):
    flags = make_flags(run_dir, **changes)
    return RunFolder(run_dir, flags, resume=flags["resume"], model_keys=MODEL_KEYS)


def random_draws():
    return torch.randn(3).tolist(), np.random.randn(3).tolist(), [random.random() for _ in range(3)]


def train(run_dir, niters=10, resume=False, killed_at_step=None):
    """A miniature main_*.py: logs every 2 steps, checkpoints every 4, draws from all three RNGs."""
    run = open_run(run_dir, niters=niters, resume=resume)
    seed_everything(0)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    if run.resume_state:
        model.load_state_dict(run.resume_state["models"]["model"])
        optimizer.load_state_dict(run.resume_state["optimizers"]["model"])
        restore_rng_state(run.resume_state["rng"], "cpu")
    for step in range(run.start_step, niters):
        if step == killed_at_step:
            return model
        x = torch.randn(8, 2) + torch.from_numpy(np.random.randn(8, 2)).float() * random.random()
        loss = model(x).pow(2).mean()
        check_finite(step, {"loss": loss}, run)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 2 == 0:
            run.metrics.log({"step": step + 1, "loss": loss})
        if (step + 1) % 4 == 0:
            run.save_checkpoint({"step": step + 1, "models": {"model": model.state_dict()},
                                 "optimizers": {"model": optimizer.state_dict()}, "rng": capture_rng_state("cpu")})
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
    run.save_checkpoint({"step": 4, "models": {"w": torch.ones(3)}})

    def crashing_save(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        run.save_checkpoint({"step": 8, "models": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and torch.equal(state["models"]["w"], torch.ones(3))
    assert not list(tmp_path.glob("*.tmp")), "the temporary file must be removed"


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


def test_check_finite_passes_finite_terms(tmp_path):
    check_finite(3, {"loss": torch.tensor(1.5), "kl": 0.25}, open_run(tmp_path))


@pytest.mark.parametrize("bad_value, shown", [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf")])
def test_check_finite_names_step_term_and_last_checkpoint(tmp_path, bad_value, shown):
    run = open_run(tmp_path)
    run.save_checkpoint({"step": 1200, "models": {}})
    with pytest.raises(NonFiniteLossError) as error:
        check_finite(1234, {"recon": torch.tensor(0.5), "compat": torch.tensor(bad_value)}, run)
    message = str(error.value)
    assert f"non-finite loss at step 1234: term 'compat' = {shown}." in message and "recon" not in message
    assert f"({run.checkpoint_path}, step 1200) is intact" in message and "--resume" in message


def test_check_finite_before_any_checkpoint_says_so(tmp_path):
    with pytest.raises(NonFiniteLossError, match="term 'kl' = nan.*no checkpoint was written yet"):
        check_finite(5, {"kl": float("nan")}, open_run(tmp_path))


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
