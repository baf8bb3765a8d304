"""Result summaries: each experiment writes one small JSON under results/, and RESULTS.md is rendered from them.

A summary holds the rows of a reproduction table (method | dataset | metric | ours | paper | scale) together with the
command that produced them, the git commit, the hardware and the date, so no number in RESULTS.md is typed by hand.
write_summary writes a whole summary (a bench, an FID call); merge_summary, the last step of every run script
(python -m evaluation.summarize), merges a table's rows into the summary already there. A run replicated over
seeds (launch.py --seeds: RUN/seed<S>) becomes one row of mean ± std (runs_by_name, mean_std_over_seeds).
"""
import csv
import datetime
import json
import re
import statistics
from collections import namedtuple
from pathlib import Path

from training import git_commit, hardware_description, write_json_atomic  # noqa: F401 (re-exported)

ROW_KEYS = ("method", "dataset", "metric", "ours", "paper", "scale")
# Where a row was made, when it differs from its summary's (a row kept by merge_summary from an earlier command).
PROVENANCE_KEYS = ("command", "hardware", "commit", "date")

# What every results family's summarize(root, kind=, device=, results=) returns: the summary's file name under
# results/ (without .json) and its content; evaluation.summarize merges it into that file.
FamilySummary = namedtuple("FamilySummary", "name experiment rows hardware notes")


def write_summary(path, *, experiment, rows, command, kind, hardware, notes="", run_seconds=None):
    """Write results/<name>.json. kind is 'quick' (CPU-scale) or 'full'; each row needs ROW_KEYS; run_seconds maps
    a run folder to its training time (elapsed_s of its metrics.csv)."""
    if kind not in ("quick", "full"):
        raise ValueError(f"kind must be 'quick' or 'full', not {kind!r}")
    for row in rows:
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"summary row {row} lacks {missing}")
    summary = {"experiment": experiment, "kind": kind, "command": command, "commit": git_commit(),
               "hardware": hardware, "date": datetime.date.today().isoformat(), "notes": notes, "rows": rows}
    if run_seconds is not None:
        summary["run_seconds"] = run_seconds
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, summary)
    return summary


def row_key(row):
    return row["method"], row["dataset"], row["metric"]


def merge_summary(path, *, experiment, rows, command, kind, hardware, notes="", run_seconds=None):
    """write_summary with `rows` merged into the summary already at `path`: a row replaces the held row of the same
    (method, dataset, metric) in place and new rows follow, so a subset run (TOY_RUNS=vae bash run_toy.sh --quick)
    keeps every other run's rows. A kept row carries the command, hardware, commit and date it was made with
    where they differ from the new summary's; run_seconds are merged per run folder."""
    path = Path(path)
    try:
        held = json.loads(path.read_text()) if path.exists() else {"rows": [], "run_seconds": {}}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}), so its rows cannot be kept: restore it with git "
                         f"checkout {path}, or move it away to start a new summary") from error
    if held.get("kind", kind) != kind:
        raise ValueError(f"{path} holds {held['kind']} rows, not {kind} ones: a {kind} summary has its own file")
    fresh = {row_key(row): row for row in rows}
    if len(fresh) != len(rows):
        raise ValueError(f"the rows for {path} repeat a (method, dataset, metric)")
    summary_now = {"command": command, "hardware": hardware, "commit": git_commit(),
                   "date": datetime.date.today().isoformat()}
    merged = []
    for row in held["rows"]:
        if row_key(row) in fresh:
            merged.append(fresh.pop(row_key(row)))
            continue
        made = {key: row.get(key, held.get(key)) for key in PROVENANCE_KEYS}
        merged.append({**row, **{key: value for key, value in made.items() if value != summary_now[key]}})
    merged += fresh.values()
    seconds = {**held.get("run_seconds", {}), **(run_seconds or {})}
    return write_summary(path, experiment=experiment, rows=merged, command=command, kind=kind, hardware=hardware,
                         notes=notes, run_seconds=seconds)


def training_seconds(root):
    """{run folder below root: its training time in s}: the elapsed_s of the last metrics.csv row of every run
    folder (and of seed folders one level down), which every training loop counts across --resume."""
    seconds = {}
    for metrics in sorted([*Path(root).glob("*/metrics.csv"), *Path(root).glob("*/*/metrics.csv")]):
        with open(metrics) as file:
            rows = list(csv.DictReader(file))
        if rows and rows[-1].get("elapsed_s"):
            seconds[metrics.parent.relative_to(root).as_posix()] = round(float(rows[-1]["elapsed_s"]), 1)
    return seconds


def seed_folders(run_folder, marker="metrics.csv"):
    """The folders of one run of a table: RUN/seedS (launch.py --seeds), in seed order, else RUN itself when it
    holds the marker file; [] when neither does."""
    seeds = [path for path in Path(run_folder).glob("seed*") if re.fullmatch(r"seed\d+", path.name)
             and (path / marker).exists()]
    if seeds:
        return sorted(seeds, key=lambda path: int(path.name[len("seed"):]))
    return [Path(run_folder)] if (Path(run_folder) / marker).exists() else []


def runs_by_name(root, marker="metrics.csv"):
    """{run folder: its seed folders} of every run under root (see seed_folders), sorted by name."""
    runs = {path: seed_folders(path, marker) for path in sorted(Path(root).iterdir()) if path.is_dir()}
    return {path: folders for path, folders in runs.items() if folders}


def mean_std_over_seeds(rows_of_each_seed, value=lambda row: float(row["ours"])):
    """The rows of one run replicated over seeds, as one row per (method, dataset, metric): with one seed its rows
    unchanged, with several 'ours' = 'mean ± std (n seeds)' of value(row) over the seeds (std with n - 1)."""
    if len(rows_of_each_seed) == 1:
        return list(rows_of_each_seed[0])
    values = {}
    for rows in rows_of_each_seed:
        for row in rows:
            values.setdefault(row_key(row), []).append(value(row))
    combined = []
    for row in rows_of_each_seed[0]:
        seeds = values[row_key(row)]
        if len(seeds) != len(rows_of_each_seed):
            raise ValueError(f"{row_key(row)} is missing in {len(rows_of_each_seed) - len(seeds)} of the seeds")
        mean, std = statistics.mean(seeds), statistics.stdev(seeds)
        combined.append({**row, "ours": f"{mean:.4g} ± {std:.2g} ({len(seeds)} seeds)"})
    return combined
