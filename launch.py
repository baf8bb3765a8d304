"""A table of training runs through submitit, on local processes (one per run; the GPUs of one machine) or a Slurm
cluster, then the table's summary; and where a table stands.

    printf '%s\\n' "${table[@]}" | python launch.py run --root runs/toy_quick [--summarize toy --kind quick] ...
    python launch.py status runs/toy_quick        (or the table's name: toy_quick)

The run scripts (run_toy.sh, ...) build the table with run_common.sh's add_run and hand it over on standard input:
one run a line, shell-quoted words NAME SCRIPT FLAGS.... The run trains in ROOT/NAME (ROOT/NAME/seedS with --seeds)
as `python SCRIPT --run_dir ROOT/NAME --resume FLAGS... EXTRA...`, EXTRA being the arguments of `run` that are not
launch.py's own. A flag holding {OTHER} (another run's name) gets OTHER's run folder in its place and makes the run
wait: for OTHER to finish, or, written {OTHER}/FILE, until FILE exists in OTHER's folder (CyGen(PT) starts from the
VAE run's warm-up checkpoint while the VAE trains on). A run the launcher recorded as done with the same command is
not started again, nor is a run in flight: submitted or running (RUN/launch_state.json), or its folder locked by a
training process (RUN/.lock, held by every training script while it runs: training.runs.lock_run_folder). Each
run's output is appended to its log.txt; launch.py's own record of a table lies in ROOT/launch/ (table.json,
launch.log, submitit's job files) and each run's state in RUN/launch_state.json.
"""
import argparse
import collections
import contextlib
import ctypes
import datetime
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import submitit

REPO = Path(__file__).resolve().parent
STATE_FILE = "launch_state.json"
# training.runs.LOCK_FILE (not imported from there: every job process imports this module, and training imports torch)
LOCK_FILE = ".lock"
PLACEHOLDER = re.compile(r"\{(?P<run>[^{}]+)\}(?P<file>/\S+)?")
POLL_SECONDS = {"local": 0.5, "debug": 0.0, "slurm": 60.0}
# A run whose state file says it is running while its process is gone was killed (or its machine went down).
RUNNING, DONE, FAILED, NOT_STARTED = "running", "done", "failed", "not started"


class LaunchError(Exception):
    """A table or flag the launcher cannot run; main() prints it without a traceback."""


def write_json_atomic(path, value):
    # training.write_json_atomic does the same, but importing training costs every job process a torch import
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)


def read_state(folder):
    path = Path(folder) / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def now():
    return datetime.datetime.now().isoformat(timespec="seconds")


class Run:
    """One training run of a table: SCRIPT with its flags in its folder, and the runs it waits for."""

    def __init__(self, name, script, flags, folder, after):
        self.name, self.script, self.flags, self.folder = name, script, flags, Path(folder)
        self.after = after  # [(run name, None: wait for its end | a file of it to wait for)]

    def command(self, python=sys.executable):
        return [python, self.script, "--run_dir", str(self.folder), "--resume", *self.flags]

    def recorded_as_done(self):
        state = read_state(self.folder)
        return state is not None and state["state"] == DONE and state["command"][1:] == self.command()[1:]


def read_table(lines, root, extra, seeds=None, launched_before=None):
    """The runs of a table's lines (see the module's docstring), EXTRA appended to each, replicated over seeds.
    launched_before: {name: entry} of the runs launched into ROOT before (table.json), which {NAME} may name once
    they are done (sweep_lagvae.sh's points start from the VAE of its first table)."""
    launched_before = launched_before or {}
    entries = [shlex.split(line) for line in lines if line.strip()]
    for entry in entries:
        if len(entry) < 2:
            raise LaunchError(f"table line {shlex.join(entry)!r} needs at least a name and a script")
    names = [entry[0] for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LaunchError(f"the table names {', '.join(repeated)} more than once; each run needs its own name")
    if seeds and "--seed" in extra:
        raise LaunchError("--seed among the run flags and --seeds: give the seeds with --seeds only")
    runs = []
    for seed in seeds or [None]:
        def folder(name):
            return Path(root) / name if seed is None else Path(root) / name / f"seed{seed}"

        def run_name(name):
            return name if seed is None else f"{name}/seed{seed}"

        for name, script, *flags in entries:
            after = []

            def resolve(match):
                other, file = match.group("run"), match.group("file") or ""
                if other in names:
                    after.append((run_name(other), str(folder(other)) + file if file else None))
                elif run_name(other) not in launched_before:
                    raise LaunchError(f"run {name} refers to {{{other}}}, which is no run of this table "
                                      f"({', '.join(names)}) nor one launched into {root} before")
                elif read_state(folder(other)) is None or read_state(folder(other))["state"] != DONE:
                    raise LaunchError(f"run {name} needs {folder(other)}, which is not done: python launch.py "
                                      f"status {root}")
                return str(folder(other)) + file

            resolved = [PLACEHOLDER.sub(resolve, flag) for flag in flags]
            seed_flags = [] if seed is None else ["--seed", str(seed)]
            runs.append(Run(run_name(name), script, resolved + list(extra) + seed_flags, folder(name), after))
    return runs


def ignore_preemption_and_die_with_parent():
    """preexec_fn of a training process: only the job process handles submitit's preemption signal (it stops the
    training and requeues it); a training killed by that signal first would end the job as failed. And it dies
    with the job process, which a SIGKILL would otherwise leave orphaned and training on."""
    signal.signal(submitit.JobEnvironment._usr_sig(), signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RunJob(submitit.helpers.Checkpointable):
    """The job submitit runs: the training script in a child process, its output appended to RUN/log.txt, its state
    in RUN/launch_state.json. Preempted or timed out, it stops the child (whose last checkpoint stays on disk) and
    is requeued: the command holds --resume, so the run continues where its checkpoint stopped."""

    def __init__(self, run, environment=None):
        """environment: variables to set in the child's environment (None: to remove) over the job's."""
        self.run, self.environment = run, environment or {}
        self.requeues = 0
        self._process = None

    def __getstate__(self):  # a checkpoint pickles the job, never its child process
        return {key: value for key, value in self.__dict__.items() if key != "_process"}

    def write_state(self, state, **details):
        write_json_atomic(self.run.folder / STATE_FILE, {
            "state": state, "command": self.run.command(), "log": str(self.run.folder / "log.txt"),
            "host": socket.gethostname(), "pid": os.getpid(), "job_id": os.environ.get("SLURM_JOB_ID"),
            "cuda_visible_devices": self.environment.get("CUDA_VISIBLE_DEVICES"), "requeues": self.requeues,
            "time": now(), **details})

    def __call__(self):
        self.run.folder.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, OMP_NUM_THREADS="1", **self.environment)
        environment = {name: value for name, value in environment.items() if value is not None}
        self.write_state(RUNNING)
        started = time.time()
        # appended, so the log of an interrupted run survives its --resume
        with open(self.run.folder / "log.txt", "a") as log:
            self._process = subprocess.Popen(self.run.command(), cwd=REPO, env=environment, stdout=log,
                                             stderr=subprocess.STDOUT,
                                             preexec_fn=ignore_preemption_and_die_with_parent)
            returncode = self._process.wait()
        state = DONE if returncode == 0 else FAILED
        self.write_state(state, returncode=returncode, seconds=round(time.time() - started, 1))
        return {"name": self.run.name, "state": state, "returncode": returncode,
                "log": str(self.run.folder / "log.txt")}

    def checkpoint(self):
        if self._process is not None and self._process.returncode is None:
            stop_process(self._process.pid)
        self.requeues += 1
        self.write_state(NOT_STARTED, requeued=True)
        return submitit.helpers.DelayedSubmission(self)


def stop_process(pid, grace_seconds=60):
    """SIGTERM, SIGKILL after the grace period. Reaped with os.waitpid: checkpoint() runs in a signal handler on top
    of __call__'s Popen.wait, which holds the lock that another Popen.wait or poll would wait for."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + grace_seconds
    while time.time() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def visible_gpus():
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list, else none."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [gpu for gpu in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip() and gpu != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True)
    return listing.stdout.split() if listing.returncode == 0 else []


class TableLog:
    """ROOT/launch/launch.log, and the same lines on the console."""

    def __init__(self, folder):
        self.path = Path(folder) / "launch.log"

    def __call__(self, message, error=False):
        print(f"[launch] {message}", file=sys.stderr if error else sys.stdout, flush=True)
        with open(self.path, "a") as file:
            file.write(f"{now()} {message}\n")


def dependency_state(run, finished):
    """ready, waiting or blocked (a run it waits for failed) given the end states of the finished runs."""
    states = []
    for other, file in run.after:
        if finished.get(other) == FAILED:
            return "blocked"
        states.append(finished.get(other) == DONE or (file is not None and Path(file).exists()))
    return "ready" if all(states) else "waiting"


def job_outcome(job):
    """(state, note) of a finished submitit job."""
    error = job.exception()
    if error is not None:
        return FAILED, str(error).strip().splitlines()[-1]
    result = job.result()
    return result["state"], f"exit {result['returncode']}" if result["state"] == FAILED else ""


def run_here(runs, executor, slots, log, poll_seconds):
    """Start every run once the runs it waits for allow it and a slot is free (each slot is a GPU id or None);
    return {name: end state}. With the debug executor each job runs to its end inside job.done()."""
    finished = {run.name: DONE for run in runs if run.recorded_as_done()}
    for name in finished:
        log(f"{name}: recorded as done with the same command, not started again")
    pending = [run for run in runs if run.name not in finished]
    free = collections.Counter(slots)
    launcher_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    running = {}  # name -> (run, job, slot, start time)
    while pending or running:
        for name, (run, job, slot, started) in list(running.items()):
            if job.done():
                state, note = job_outcome(job)
                finished[name] = state
                free[slot] += 1
                del running[name]
                if state == DONE:
                    log(f"{name}: done in {time.time() - started:.0f} s")
                else:
                    log(f"{name}: failed ({note}), see {run.folder / 'log.txt'}", error=True)
        for run in list(pending):
            dependencies = dependency_state(run, finished)
            if dependencies == "blocked":
                pending.remove(run)
                finished[run.name] = FAILED
                log(f"{run.name}: not started, a run it waits for failed", error=True)
            elif dependencies == "ready" and +free:
                slot = max(free, key=lambda gpu: free[gpu])  # the GPU with the most free slots
                free[slot] -= 1
                # submitit's local jobs see CUDA_VISIBLE_DEVICES='' (no GPU asked of it): a run without a GPU slot
                # gets this process's own (unset: every GPU), as the bash queue gave it
                visible = slot if slot is not None else launcher_visible_devices
                job = executor.submit(RunJob(run, {"CUDA_VISIBLE_DEVICES": visible}))
                pending.remove(run)
                running[run.name] = (run, job, slot, time.time())
                log(f"{run.name}: started in {run.folder}" + (f" on GPU {slot}" if slot is not None else ""))
        if pending and not running and all(dependency_state(run, finished) == "waiting" for run in pending):
            raise LaunchError("these runs wait for each other or for a file no run writes: "
                              + ", ".join(run.name for run in pending))
        time.sleep(poll_seconds)
    return finished


def dependency_levels(runs):
    """The runs in waves: each wave waits only for runs of earlier waves (one Slurm array each)."""
    levels, placed = [], {}
    remaining = list(runs)
    while remaining:
        level = [run for run in remaining if all(other in placed for other, _ in run.after)]
        if not level:
            raise LaunchError("these runs wait for each other: " + ", ".join(run.name for run in remaining))
        for run in level:
            placed[run.name] = len(levels)
        levels.append(level)
        remaining = [run for run in remaining if run.name not in placed]
    return levels


@contextlib.contextmanager
def stub_sbatch(folder):
    """--dry_run: submitit goes its whole way (the sbatch files it writes are the ones it would send), but finds a
    stub sbatch on PATH that answers with job ids 1, 2, ... and sends nothing (and an srun, which it only looks for)."""
    stubs = Path(folder) / "bin"
    stubs.mkdir(parents=True, exist_ok=True)
    (stubs / "sbatch").write_text('#!/bin/sh\ncount=$(($(cat "$0.count" 2>/dev/null || echo 0) + 1))\n'
                                  'echo "$count" > "$0.count"\necho "Submitted batch job $count"\n')
    (stubs / "srun").write_text("#!/bin/sh\nexit 1\n")
    for stub in ("sbatch", "srun"):
        (stubs / stub).chmod(0o755)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{stubs}{os.pathsep}{path}"
    try:
        yield
    finally:
        os.environ["PATH"] = path


def submit_to_slurm(runs, args, folder, log):
    """One job array per dependency wave (Slurm's --dependency=afterok on the runs the wave waits for); each task
    is one run, requeued on preemption or timeout; returns the jobs by run name. A file dependency (a warm-up
    checkpoint) waits for its whole run here: Slurm cannot wait for a file."""
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=args.requeues)
    jobs = {}
    for wave, level in enumerate(dependency_levels([run for run in runs if not run.recorded_as_done()])):
        parents = sorted({jobs[other].job_id for run in level for other, _ in run.after if other in jobs})
        # each task's resume command, readable in the submission (the command itself travels in submitit's pickle)
        commands = [f"# task {index} ({run.name}): {shlex.join(run.command())}" for index, run in enumerate(level)]
        executor.update_parameters(
            job_name=f"{Path(args.root).name}-{wave}", time=args.time, gpus_per_node=args.gpus_per_job or None,
            partition=args.partition, account=args.account, qos=args.qos, array_parallelism=args.jobs or 256,
            dependency="afterok:" + ":".join(parents) if parents else None, setup=commands)
        with executor.batch():
            submitted = [executor.submit(RunJob(run)) for run in level]
        for run, job in zip(level, submitted):
            jobs[run.name] = job
            if not args.dry_run:
                write_json_atomic(run.folder / STATE_FILE, {"state": NOT_STARTED, "command": run.command(),
                                                            "log": str(run.folder / "log.txt"),
                                                            "job_id": job.job_id, "time": now()})
        log(f"wave {wave}: {len(level)} runs as Slurm job {submitted[0].job_id.split('_')[0]}"
            + (f", after {', '.join(parents)}" if parents else "")
            + f"; submission {submitted[0].paths.submission_file}")
    return jobs


def wait_for_slurm(jobs, log):
    finished = {}
    while len(finished) < len(jobs):
        for name, job in jobs.items():
            if name not in finished and job.done():
                finished[name] = job_outcome(job)[0]
                log(f"{name}: {finished[name]}", error=finished[name] == FAILED)
        time.sleep(POLL_SECONDS["slurm"])
    return finished


# evaluation.summarize's families (not imported from it: every job process imports this module, and it imports torch)
FAMILIES = ("toy", "image", "cvae", "lagvae", "sym")
# The summaries that read seed folders (evaluation.summary.mean_std_over_seeds). The LagVAE sweep centres its grid on
# one VAE's -ELBO, so sweep_lagvae.sh takes one seed (--seed S) per root.
SEEDED_SUMMARIES = ("toy", "image", "cvae", "sym")


def summary_command(family, root, kind, command, device):
    """The summary of a finished table, merged into results/ with RESULTS.md re-rendered: the one summarize entry
    point every run script's table ends with (run_common.sh's summarize_and_render)."""
    return [sys.executable, "-m", "evaluation.summarize", family, str(root), "--kind", kind, "--command", command,
            "--device", device]


def parse_seeds(text):
    try:
        seeds = [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers such as 0,1,2, not {text!r}")
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text} repeats a seed")
    return seeds


def parse_gpus(text):
    return [] if text in ("", "none") else [gpu.strip() for gpu in text.split(",") if gpu.strip()]


def run_parser():
    parser = argparse.ArgumentParser(prog="launch.py run", allow_abbrev=False,  # --seed must not mean --seeds
                                     description="Run the table on standard input (see python launch.py --help); "
                                                 "arguments that are not the ones below go to every run.")
    parser.add_argument("--root", required=True, help="folder of the table's run folders, e.g. runs/toy_quick")
    parser.add_argument("--executor", choices=("local", "slurm", "debug"), default="local",
                        help="local: a process per run (default); slurm: job arrays; debug: one run after the "
                             "other inside this process's job loop (tests)")
    parser.add_argument("--jobs", type=int, help="at most this many runs at a time (default: one per GPU slot, "
                                                 "else --default_jobs); on Slurm the arrays' parallelism")
    parser.add_argument("--default_jobs", type=int, default=1, help="the run script's default without GPUs")
    parser.add_argument("--gpus", type=parse_gpus, help="GPU ids for the runs, e.g. 0,1,2,3 (default: every "
                                                        "visible GPU; none for the CPU); each run sees its own")
    parser.add_argument("--runs_per_gpu", type=int, default=1, help="runs sharing one GPU (default: %(default)s)")
    parser.add_argument("--seeds", type=parse_seeds, help="replicate the table over these seeds, e.g. 0,1,2: run "
                                                          "folders ROOT/NAME/seedS, summaries mean ± std")
    parser.add_argument("--time", type=int, help="minutes a job may run before it is requeued (Slurm: required; "
                                                 "local: default no limit)")
    parser.add_argument("--requeues", type=int, default=20, help="timeouts a run may be requeued after")
    slurm = parser.add_argument_group("slurm")
    slurm.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    slurm.add_argument("--gpus_per_job", type=int, default=1, help="GPUs of each Slurm job (default: %(default)s)")
    slurm.add_argument("--account", help="Slurm account to charge (default: the user's)")
    slurm.add_argument("--qos", help="Slurm quality of service (default: the cluster's)")
    slurm.add_argument("--no_wait", action="store_true", help="submit and return; run the script again when the "
                                                             "jobs are done to make the summary")
    slurm.add_argument("--dry_run", action="store_true",
                       help="write the sbatch files submitit would send under ROOT/launch/slurm_dry_run, send none")
    summary = parser.add_argument_group("the summary made once every run is done")
    summary.add_argument("--summarize", choices=FAMILIES, help="python -m evaluation.summarize FAMILY ROOT")
    summary.add_argument("--kind", choices=("quick", "full"), default="full",
                         help="the summary's kind: quick (CPU scale) or full (default: %(default)s)")
    summary.add_argument("--command", default="", help="the command as typed, for the summary")
    summary.add_argument("--summary_device", default="auto", help="the runs' device: where the summary evaluates "
                                                                 "(lagvae, sym) and the hardware it names "
                                                                 "(default: auto)")
    return parser


def check_run_args(parser, args):
    for name in ("jobs", "default_jobs", "runs_per_gpu", "time", "gpus_per_job"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "gpus_per_job" else 1):
            parser.error(f"--{name} {value} must be positive")
    if args.executor == "slurm" and args.time is None:
        parser.error("--executor slurm needs --time MINUTES (a job running longer is requeued and resumes)")
    if args.executor != "slurm" and (args.dry_run or args.no_wait):
        parser.error("--dry_run and --no_wait are for --executor slurm")
    if args.seeds and args.summarize and args.summarize not in SEEDED_SUMMARIES:
        parser.error(f"--seeds: the {args.summarize} summary reads no seed folders (those of "
                     f"{', '.join(SEEDED_SUMMARIES)} do); run another seed with --seed S and its own --root")


def local_slots(args):
    """One slot per run allowed at a time: a GPU id (repeated --runs_per_gpu times) or None on the CPU."""
    gpus = visible_gpus() if args.gpus is None else args.gpus
    if not gpus:
        return [None] * (args.jobs or args.default_jobs)
    slots = [gpu for _ in range(args.runs_per_gpu) for gpu in gpus]  # spread over the GPUs first
    return slots[:args.jobs] if args.jobs else slots


def check_devices_seen_alone(runs):
    """With a GPU each, a run sees only its own GPU (CUDA_VISIBLE_DEVICES), as cuda:0."""
    for run in runs:
        device = "auto"
        for flag, value in zip(run.flags, [*run.flags[1:], None]):
            if flag == "--device" or flag.startswith("--device="):
                device = value if flag == "--device" else flag.split("=", 1)[1]
        if re.fullmatch(r"cuda:[1-9]\d*", str(device)):
            raise LaunchError(f"run {run.name} has --device {device}, but with a GPU per run (--gpus) each run sees "
                              "only its own GPU, as cuda:0: pass --device cuda, or --gpus none to choose the GPU "
                              "yourself")


def run_table(argv, lines):
    """`launch.py run` with the table's lines (read once the flags are parsed): the exit status, 0 when every run
    is done and the summary was made."""
    parser = run_parser()
    args, extra = parser.parse_known_args(argv)
    check_run_args(parser, args)
    launch_folder = Path(args.root) / "launch"
    runs = read_table(list(lines), args.root, extra, args.seeds, read_launched(launch_folder))
    slots = local_slots(args) if args.executor == "local" else [None]
    if any(slot is not None for slot in slots):
        check_devices_seen_alone(runs)
    launch_folder.mkdir(parents=True, exist_ok=True)
    for run in runs:
        run.folder.mkdir(parents=True, exist_ok=True)
    in_flight = [f"{run.name} ({why})" for run in runs for why in [in_flight_because(run.folder)] if why]
    if in_flight:
        raise LaunchError(f"runs of {args.root} are still in flight: {'; '.join(in_flight)}. Wait for them (python "
                          "launch.py status), or stop them (and delete the launch_state.json of a run the launcher "
                          "recorded as submitted or running)")
    record_table(launch_folder, runs)
    log = TableLog(launch_folder)
    log(f"{len(runs)} runs of {args.root}, {args.executor} executor: {args.command or shlex.join(argv)}")
    if args.executor == "slurm":
        if args.dry_run:
            with stub_sbatch(launch_folder / "slurm_dry_run"):
                jobs = submit_to_slurm(runs, args, launch_folder / "slurm_dry_run", log)
        else:
            jobs = submit_to_slurm(runs, args, launch_folder / "submitit", log)
        if args.dry_run or args.no_wait:
            log(f"submitted; follow it with: python launch.py status {args.root}")
            return 0
        finished = {run.name: DONE for run in runs if run.name not in jobs} | wait_for_slurm(jobs, log)
    else:
        if args.executor == "debug":
            executor = submitit.DebugExecutor(folder=launch_folder / "debug")
        else:
            executor = submitit.LocalExecutor(folder=launch_folder / "submitit", max_num_timeout=args.requeues)
            executor.update_parameters(timeout_min=args.time or 10**7)
        finished = run_here(runs, executor, slots, log, POLL_SECONDS[args.executor])
    failed = [name for name, state in finished.items() if state != DONE]
    if failed:
        log(f"{len(failed)} of {len(runs)} runs failed ({', '.join(failed)}): no summary; python launch.py "
            f"status {args.root} names their logs", error=True)
        return 1
    if args.summarize:
        command = summary_command(args.summarize, args.root, args.kind, args.command, args.summary_device)
        log(f"summary: {shlex.join(command[1:])}")
        return 0 if subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1")).returncode == 0 else 1
    return 0


def read_launched(launch_folder):
    path = Path(launch_folder) / "table.json"
    return json.loads(path.read_text()) if path.exists() else {}


def record_table(launch_folder, runs):
    """ROOT/launch/table.json: every run launched into ROOT, by name, for `launch.py status`."""
    table = read_launched(launch_folder)
    for run in runs:
        table[run.name] = {"folder": str(run.folder), "command": run.command(), "after": run.after}
    write_json_atomic(Path(launch_folder) / "table.json", table)


def run_status(folder):
    """(state, detail) of one run folder from its launch_state.json."""
    state = read_state(folder)
    if state is None:
        return NOT_STARTED, ""
    if state["state"] == RUNNING and state.get("host") == socket.gethostname() and not pid_alive(state["pid"]):
        return FAILED, f"stopped without an end (killed?), see {state['log']}"
    if state["state"] == FAILED:
        return FAILED, f"exit {state['returncode']}, see {state['log']}"
    if state["state"] == DONE:
        return DONE, f"{state['seconds']:.0f} s" + (f", requeued {state['requeues']}x" if state["requeues"] else "")
    if state["state"] == RUNNING:
        where = f"job {state['job_id']}" if state.get("job_id") else f"pid {state['pid']}"
        return RUNNING, f"since {state['time']} ({where} on {state['host']}), log {state['log']}"
    return NOT_STARTED, f"submitted as job {state['job_id']}" if state.get("job_id") else "requeued"


def lock_holder(folder):
    """Who holds the run folder's lock ("process PID on HOST", as training.runs writes it), or None. Probed with a
    shared lock, dropped at once: two launchers probing do not block each other."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return None
    with open(path) as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return file.read().strip() or "another process"
        fcntl.flock(file, fcntl.LOCK_UN)
    return None


def in_flight_because(folder):
    """Why the run in folder must not be started now (submitted or running per its launch state, or its folder held
    by a training process started by hand or by another launcher), or None."""
    state, detail = run_status(folder)
    if state == RUNNING or detail.startswith("submitted"):
        return detail
    holder = lock_holder(folder)
    return f"its run folder is in use by {holder}" if holder else None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def table_status(table):
    """`launch.py status TABLE`: one line per run; TABLE is a run root (runs/toy_quick) or its name (toy_quick)."""
    root = Path(table) if Path(table, "launch").is_dir() else Path("runs") / table
    launched = read_launched(root / "launch")
    if not launched:
        raise LaunchError(f"{table}: no table was launched there ({root / 'launch' / 'table.json'} does not exist); "
                          "give a run root such as runs/toy_quick")
    rows = [(name, *run_status(entry["folder"])) for name, entry in launched.items()]
    width = max(len(name) for name, _, _ in rows)
    for name, state, detail in rows:
        print(f"{name:<{width}}  {state:<11}  {detail}")
    counts = collections.Counter(state for _, state, _ in rows)
    print(", ".join(f"{counts[state]} {state}" for state in (DONE, RUNNING, FAILED, NOT_STARTED) if counts[state]))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "status"), help="run --help lists run's flags")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="run: its flags (run --help); status: the TABLE")
    args = parser.parse_args(argv[:1])
    try:
        if args.action == "status":
            if len(argv) != 2:
                parser.error("status takes one TABLE: a run root such as runs/toy_quick, or its name")
            return table_status(argv[1])
        if sys.stdin.isatty() and not {"-h", "--help"} & set(argv):
            raise LaunchError("launch.py run reads its table on standard input, one run a line (NAME SCRIPT "
                              "FLAGS...), as run_common.sh's launch_table sends it")
        return run_table(argv[1:], sys.stdin)
    except LaunchError as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    # imported, not run as __main__: submitit pickles RunJob by reference to this module, which job processes import
    import launch

    sys.exit(launch.main())
