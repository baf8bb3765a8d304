"""Every main_*.py runs end to end in a subprocess with tiny arguments (pyro's test_examples.py pattern).

This module holds the toy script's cases and the checks shared by all scripts; each method's own test module runs
its script the same way through tests/scripts.py.
"""
import importlib
import signal
import subprocess
import sys
import time

import pytest
import torch

from models import compiled_steps
from tests.scripts import REPO, needs_compiler, read_metrics, run_script
TINY_TOY = ["--niters", "4", "--eval_every", "2", "--plot_every", "4", "--batch_size", "32", "--n_flows", "2",
            "--n_mc_px", "2", "--eval_batch_size", "64", "--gen_batch_size", "64", "--gen_niter", "2",
            "--n_discr_upd", "2", "--device", "cpu"]
SMOKE = {
    "main_toy.py": [
        ["--method", "cygen"],
        ["--method", "cygen", "--cmtype", "jacnorm_x", "--data", "8gaussians"],
        ["--method", "cygen", "--pretr_method", "elbo", "--pretr_niter", "2"],
        ["--method", "cygen", "--pretr_method", "elbo", "--pretr_niter", "2", "--w_cm", "0", "--gen_init", "prior"],
        ["--method", "elbo"],
        ["--method", "dae", "--lr", "1e-4"],
        ["--method", "bigan"],
        ["--method", "gibbsnet", "--n_gibbs", "2"],
    ],
}
SMOKE_CASES = [(script, args) for script, arg_sets in SMOKE.items() for args in arg_sets]


def test_every_script_has_a_smoke_test():
    """Each main_*.py and bench/bench_*.py is run by some test module (this one for the toys,
    tests/test_<method>.py or tests/test_benches.py for the others)."""
    scripts = sorted([path.name for path in REPO.glob("main_*.py")]
                     + [f"bench/{path.name}" for path in REPO.glob("bench/bench_*.py")])
    assert any(s.startswith("main_") for s in scripts) and any(s.startswith("bench/") for s in scripts)
    test_sources = "".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
    missing = [script for script in scripts if f'"{script}"' not in test_sources]
    assert not missing, f"add smoke tests for {missing} under tests/"


@pytest.mark.parametrize("script,args", SMOKE_CASES, ids=[" ".join([s, *a]) for s, a in SMOKE_CASES])
def test_smoke(script, args, tmp_path):
    run_dir = tmp_path / "run"
    run_script(script, *TINY_TOY, *args, "--run_dir", str(run_dir))
    rows = read_metrics(run_dir)
    assert [row["step"] for row in rows] == ["2", "4"]
    assert all(row["nll_hm"] and row["compatibility"] for row in rows)
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "config.json").exists()
    assert (run_dir / "samples" / "step000004.png").stat().st_size > 0


@needs_compiler
def test_smoke_compiled_flow(tmp_path):
    test_smoke("main_toy.py", ["--method", "cygen", "--pretr_method", "elbo", "--pretr_niter", "2",
                               "--compile_flow", "true"], tmp_path)


@pytest.mark.parametrize("script", ["main_toy", "main_image"])
def test_compile_flow_without_a_compiler_is_refused(script, monkeypatch, capsys):
    module = importlib.import_module(script)
    monkeypatch.setattr(compiled_steps, "compiler_available", lambda: False)
    with pytest.raises(SystemExit):
        module.parse_args(["--compile_flow", "true"])
    assert "--compile_flow true needs a C/C++ compiler" in capsys.readouterr().err


def test_image_compile_flow_reaches_the_cygen_loss(monkeypatch):
    """main_image.py --compile_flow true asks cygen_loss for the compiled graph, for both parts of --compat_rows."""
    import main_image
    calls = []
    monkeypatch.setattr(main_image, "cygen_loss",
                        lambda *args, compiled: calls.append(compiled) or (torch.zeros(()),) * 3)
    x = torch.zeros(4, 1, 28, 28)
    for flag, rows in (("false", "0"), ("true", "0"), ("true", "2")):
        main_image.cygen_batch_loss(None, None, x, main_image.parse_args(["--compile_flow", flag, "--batch_size", "4",
                                                                          "--compat_rows", rows]))
    assert calls == [False, True, True, True]


def test_help_lists_every_flag():
    out = run_script("main_toy.py", "--help").stdout
    for flag in ("--run_dir", "--seed", "--device", "--resume", "--niters", "--method", "--w_cm", "--cmtype"):
        assert flag in out


@pytest.mark.parametrize("args,message", [
    (["--pretr_niter", "5"], "pretraining needs both"),
    (["--method", "nope"], "argument --method: invalid choice: 'nope'"),
    (["--pretr_method", "elbo", "--pretr_niter", "10", "--niters", "10"], "leaves no iterations"),
])
def test_contradicting_flags_are_refused(args, message, tmp_path):
    result = run_script("main_toy.py", *args, "--run_dir", str(tmp_path / "run"), check=False)
    assert result.returncode == 2 and message in result.stderr


RESUME_ARGS = ["--method", "cygen", "--pretr_method", "elbo", "--pretr_niter", "20", "--niters", "60",
               "--eval_every", "5", "--plot_every", "60", "--batch_size", "200", "--n_flows", "8", "--n_mc_px", "4",
               "--eval_batch_size", "100", "--gen_batch_size", "100", "--gen_niter", "2", "--device", "cpu"]


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_script("main_toy.py", *RESUME_ARGS, "--run_dir", str(straight))

    process = subprocess.Popen([sys.executable, "main_toy.py", *RESUME_ARGS, "--run_dir", str(killed)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoint.pt").exists():
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    rows_at_kill = len(read_metrics(killed))
    assert 1 <= rows_at_kill < 12, "the run must be killed mid-way for this test to mean anything"

    run_script("main_toy.py", *RESUME_ARGS, "--run_dir", str(killed), "--resume")
    assert read_metrics(killed) == read_metrics(straight)
    for name in ("encoder", "decoder"):
        a = torch.load(straight / "checkpoint.pt")["models"][name]
        b = torch.load(killed / "checkpoint.pt")["models"][name]
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_diverging_run_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_script("main_toy.py", *TINY_TOY, "--niters", "2", "--run_dir", str(run_dir))
    before = torch.load(run_dir / "checkpoint.pt")
    result = run_script("main_toy.py", *TINY_TOY, "--niters", "4", "--w_cm", "1e38", "--run_dir", str(run_dir),
                        "--resume", check=False)
    assert result.returncode == 1
    assert "non-finite loss at step" in result.stderr and "step 2) is intact" in result.stderr
    after = torch.load(run_dir / "checkpoint.pt")
    assert after["step"] == 2
    assert all(torch.equal(before["models"]["encoder"][k], v) for k, v in after["models"]["encoder"].items())


def test_resume_with_another_architecture_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_script("main_toy.py", *TINY_TOY, "--niters", "2", "--run_dir", str(run_dir))
    result = run_script("main_toy.py", *TINY_TOY, "--n_flows", "3", "--run_dir", str(run_dir), "--resume",
                        check=False)
    assert result.returncode == 1 and "n_flows" in result.stderr
