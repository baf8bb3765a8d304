"""launch.py: tables of runs through submitit's local, debug and (without a cluster) Slurm executors."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import launch
import main_toy
from training import runs
from tests.scripts import REPO, read_metrics, run_script
from tests.test_examples import RESUME_ARGS

# A stand-in for a training script: it records when it starts (with the GPUs it sees) and ends, writes half.txt
# half-way, checks the file --needs names, fails with --fail, and with --until_started R waits after half.txt (at
# most 60 s) until run R has started: the order of events then does not hang on the machine's load.
FAKE_SCRIPT = """
import argparse, os, pathlib, sys, time
parser = argparse.ArgumentParser()
for flag in ("--run_dir", "--needs", "--events"):
    parser.add_argument(flag)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--sleep", type=float, default=0.3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--fail", action="store_true")
parser.add_argument("--until_started")
args = parser.parse_args()
run = pathlib.Path(args.run_dir)
def event(what):
    with open(args.events, "a") as file:
        file.write(f"{time.time()} {what} {run.name} {os.environ.get('CUDA_VISIBLE_DEVICES')}\\n")
event("start")
if args.needs and not pathlib.Path(args.needs).exists():
    sys.exit(f"{args.needs} is missing")
time.sleep(args.sleep)
(run / "half.txt").write_text("")
time.sleep(args.sleep)
deadline = time.time() + 60
while args.until_started and f" start {args.until_started} " not in open(args.events).read() and time.time() < deadline:
    time.sleep(0.05)
event("end")
sys.exit(3 if args.fail else 0)
"""


@pytest.fixture
def fake(tmp_path):
    """(script path, events file, events reader)"""
    script, events = tmp_path / "fake_train.py", tmp_path / "events.txt"
    script.write_text(FAKE_SCRIPT)

    def read_events():
        lines = [line.split() for line in events.read_text().splitlines()]
        return [(float(time_), what, run, gpus) for time_, what, run, gpus in lines]
    return str(script), str(events), read_events


def launch_table(lines, root, *flags):
    return launch.run_table(["--root", str(root), *map(str, flags)], lines)


@pytest.mark.parametrize("executor", ["local", "debug"])
def test_runs_start_after_the_runs_they_wait_for(fake, tmp_path, executor, capsys):
    script, events, read_events = fake
    root = tmp_path / "runs"
    wait_for_b = "--until_started b" if executor == "local" else ""  # debug runs b only after a
    table = [f"a {script} --sleep 1 {wait_for_b}", f"b {script} --needs {{a}}/half.txt", f"c {script} --needs {{a}}"]
    assert launch_table(table, root, "--executor", executor, "--jobs", 3, "--events", events) == 0
    when = {(what, run): time_ for time_, what, run, _ in read_events()}
    assert when["start", "b"] >= (root / "a" / "half.txt").stat().st_mtime  # b waits for a's file only
    assert when["start", "c"] >= when["end", "a"]  # c waits for a to finish
    if executor == "local":  # the file, not the end: b trains while a does
        assert when["start", "b"] < when["end", "a"]
    capsys.readouterr()
    launch.main(["status", str(root)])
    assert capsys.readouterr().out.splitlines()[-1] == "3 done"
    # a second launch starts nothing: every run is recorded as done with the same command
    assert launch_table(table, root, "--executor", executor, "--events", events) == 0
    assert len(read_events()) == 6


def test_each_run_sees_its_own_gpu(fake, tmp_path):
    script, events, read_events = fake
    table = [f"{name} {script} --sleep 1" for name in "abc"]
    assert launch_table(table, tmp_path / "runs", "--gpus", "0,1,2", "--events", events) == 0
    starts = [(run, gpus) for _, what, run, gpus in read_events() if what == "start"]
    assert sorted(gpus for _, gpus in starts) == ["0", "1", "2"]
    states = {run: json.loads((tmp_path / "runs" / run / "launch_state.json").read_text()) for run in "abc"}
    assert {run: state["cuda_visible_devices"] for run, state in states.items()} == dict(starts)


def test_a_failed_run_names_its_log_and_stops_the_runs_after_it(fake, tmp_path, capsys):
    script, events, _ = fake
    root = tmp_path / "runs"
    table = [f"a {script} --fail --sleep 0", f"b {script} --needs {{a}}", f"c {script} --sleep 0"]
    assert launch_table(table, root, "--jobs", 2, "--events", events, "--summarize", "toy") == 1
    launched = capsys.readouterr()
    assert f"a: failed (exit 3), see {root / 'a' / 'log.txt'}" in launched.err
    assert "b: not started, a run it waits for failed" in launched.err and "no summary" in launched.err
    launch.main(["status", str(root)])
    status = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[:3]}
    assert "failed" in status["a"] and f"see {root / 'a' / 'log.txt'}" in status["a"]
    assert "not started" in status["b"] and "done" in status["c"]


def test_a_preempted_run_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    main_toy.main([*RESUME_ARGS, "--run_dir", str(straight)])  # in-process: one thread, as the launched run
    root = tmp_path / "runs"
    outcome = {}
    table = [f"toy main_toy.py {' '.join(RESUME_ARGS)}"]
    launcher = threading.Thread(target=lambda: outcome.update(rc=launch_table(table, root)))
    launcher.start()
    run = root / "toy"
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.02)
    # what Slurm sends before a timeout or a preemption (submitit's signal), to the job process that runs the script
    os.kill(json.loads((run / "launch_state.json").read_text())["pid"], signal.SIGUSR2)
    launcher.join(timeout=180)
    assert outcome == {"rc": 0}
    state = json.loads((run / "launch_state.json").read_text())
    assert state["state"] == "done" and state["requeues"] == 1
    assert json.loads((run / "config.json").read_text())["resumed_at_step"], "the run must be stopped mid-way"
    assert read_metrics(run) == read_metrics(straight)


def test_slurm_writes_one_array_per_wave_with_the_resume_commands(tmp_path, capsys):
    root = tmp_path / "runs"
    table = ["pinwheel-vae main_toy.py --method elbo", "pinwheel-dae main_toy.py --method dae",
             "pinwheel-cygen_pt main_toy.py --method cygen --warm {pinwheel-vae}/warm.pt"]
    assert launch_table(table, root, "--executor", "slurm", "--dry_run", "--time", 90, "--partition", "gpu",
                        "--gpus_per_job", 2, "--account", "lab", "--qos", "high", "--device", "cuda") == 0
    submissions = sorted((root / "launch" / "slurm_dry_run").glob("*_submission.sh"))
    assert len(submissions) == 2
    first, second = (path.read_text() for path in submissions)
    for text in (first, second):
        for line in ("#SBATCH --time=90", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2",
                     "#SBATCH --account=lab", "#SBATCH --qos=high", "#SBATCH --signal=USR2@90"):
            assert line in text.splitlines()
    assert "#SBATCH --array=0-1%2" in first and "--dependency" not in first
    assert f"# task 0 (pinwheel-vae): {launch.sys.executable} main_toy.py --run_dir {root / 'pinwheel-vae'} " \
           "--resume --method elbo --device cuda" in first
    assert "#SBATCH --dependency=afterok:1_0" in second and "--array" not in second  # waits for the VAE task
    assert (f"# task 0 (pinwheel-cygen_pt): {launch.sys.executable} main_toy.py --run_dir "
            f"{root / 'pinwheel-cygen_pt'} --resume --method cygen --warm {root / 'pinwheel-vae'}/warm.pt") in second
    # a real submission records each run's job, and a second launch then refuses to submit it twice
    (root / "pinwheel-vae" / "launch_state.json").write_text(json.dumps({"state": "not started", "job_id": "7_0"}))
    capsys.readouterr()
    launch.main(["status", str(root)])
    assert "pinwheel-vae       not started  submitted as job 7_0" in capsys.readouterr().out
    with pytest.raises(launch.LaunchError, match=r"still in flight: pinwheel-vae \(submitted as job 7_0\)"):
        launch_table(table, root, "--executor", "slurm", "--time", 90)


def test_a_run_whose_folder_a_training_process_holds_is_not_started_twice(fake, tmp_path):
    """A run started by hand (or by another launcher) holds its folder's lock (training.runs): the table is refused
    with the holder named, and starts once the lock is free."""
    script, events, read_events = fake
    root = tmp_path / "runs"
    assert launch.LOCK_FILE == runs.LOCK_FILE
    runs.lock_run_folder(root / "b")
    try:
        with pytest.raises(launch.LaunchError, match=rf"still in flight: b \(its run folder is in use by process "
                                                     rf"{os.getpid()} on "):
            launch_table([f"a {script} --sleep 0", f"b {script} --sleep 0"], root, "--events", events)
        assert not (root / "a" / "launch_state.json").exists() and not os.path.exists(events)
    finally:
        runs.release_run_folders()
    assert launch_table([f"a {script} --sleep 0", f"b {script} --sleep 0"], root, "--events", events) == 0
    assert sorted(run for _, what, run, _ in read_events() if what == "end") == ["a", "b"]


def test_seeds_replicate_the_table_and_its_references(tmp_path):
    runs = launch.read_table(["vae s.py --x 1", "pt s.py --warm {vae}/w.pt --baseline {vae}"], tmp_path,
                             ["--device", "cpu"], seeds=[0, 2])
    assert [run.name for run in runs] == ["vae/seed0", "pt/seed0", "vae/seed2", "pt/seed2"]
    pt = runs[3]
    assert pt.folder == tmp_path / "pt" / "seed2"
    assert pt.flags == ["--warm", f"{tmp_path}/vae/seed2/w.pt", "--baseline", f"{tmp_path}/vae/seed2",
                        "--device", "cpu", "--seed", "2"]
    assert pt.after == [("vae/seed2", f"{tmp_path}/vae/seed2/w.pt"), ("vae/seed2", None)]


@pytest.mark.parametrize("table, flags, message", [
    (["a s.py --from {b}"], [], "run a refers to {b}, which is no run of this table (a)"),
    (["a s.py", "a s.py"], [], "the table names a more than once"),
    (["a s.py"], ["--seeds", "0,1", "--seed", "3"], "give the seeds with --seeds only"),
    (["a s.py --device cuda:1"], ["--gpus", "0,1"], "run a has --device cuda:1, but with a GPU per run (--gpus)"),
])
def test_bad_tables_are_refused_with_the_reason(tmp_path, table, flags, message):
    with pytest.raises(launch.LaunchError, match=message.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
        launch_table(table, tmp_path, *flags)


@pytest.mark.parametrize("flags, message", [
    (["--executor", "slurm"], "--executor slurm needs --time MINUTES"),
    (["--seeds", "0,1", "--summarize", "lagvae"], "the lagvae summary reads no seed folders"),
    (["--seeds", "0,x"], "--seeds takes comma-separated integers"),
])
def test_bad_flags_exit_with_the_reason(tmp_path, flags, message, capsys):
    with pytest.raises(SystemExit) as exit:
        launch_table(["a s.py"], tmp_path, *flags)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_bench_launch_times_the_table_at_one_and_two_jobs(tmp_path):
    path = tmp_path / "launch_speed.json"
    result = run_script("bench/bench_launch.py", "--runs", "1", "--niters", "2", "--repeats", "1",
                        "--summary", str(path))
    assert "--jobs 1" in result.stdout and "load average" in result.stdout
    rows = {row["method"] + " " + row["metric"]: row["ours"] for row in json.loads(path.read_text())["rows"]}
    assert rows["launch.py, --jobs 2 x faster than --jobs 1"] > 0 and rows["launch.py, --jobs 1 s per table"] > 0


def test_the_lagvae_sweep_refuses_seeds_before_training():
    """Its e1 grid is centred on one VAE's -ELBO: one seed at a time (--seed S)."""
    result = subprocess.run(["bash", "sweep_lagvae.sh", "--quick", "--seeds", "0,1"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "pass --seed S instead of --seeds" in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout
