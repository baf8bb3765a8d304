"""Training curves of run folders: one panel per metrics.csv column, every run overlaid.

    python plot_curves.py runs/toy_quick                       # every run folder below a folder -> its curves.png
    python plot_curves.py RUN_DIR [RUN_DIR ...] --out curves.png --metrics compatibility,nll_hm

Only metrics.csv is read, so the columns of any method (losses, compatibility, multipliers, accuracy, MI) plot
without this file knowing them. notebooks/training_curves.ipynb draws with the same functions.
"""
import argparse
import csv
import math
import os
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

# Not curves: the x axis, and wall time (which measures the machine's load, not training).
NOT_PLOTTED = ("step", "elapsed_s")


def find_run_dirs(paths):
    """Each path is a run folder (holds metrics.csv) or a folder of run folders, searched recursively."""
    run_dirs = []
    for path in map(Path, paths):
        found = [path] if (path / "metrics.csv").is_file() else sorted(p.parent for p in path.rglob("metrics.csv"))
        if not found:
            raise FileNotFoundError(f"{path} holds no metrics.csv: pass a run folder (the --run_dir of a main_*.py "
                                    "run) or a folder of run folders")
        run_dirs += found
    return run_dirs


def run_labels(run_dirs):
    """The shortest names that tell the runs apart: their paths below the folder they share."""
    resolved = [Path(run_dir).resolve() for run_dir in run_dirs]
    shared = Path(os.path.commonpath(resolved))
    if len(set(resolved)) == 1:
        shared = shared.parent
    return [path.relative_to(shared).as_posix() for path in resolved]


def read_curves(run_dir):
    """{column: [values]} of the numeric columns of run_dir/metrics.csv; an empty cell is nan."""
    with open(Path(run_dir) / "metrics.csv", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        columns = reader.fieldnames or []

    def number(text):
        return float(text) if text != "" else math.nan

    curves = {}
    for column in columns:
        try:
            curves[column] = [number(row[column]) for row in rows]
        except ValueError:  # a text column such as the training phase
            continue
    return curves


def load_runs(paths):
    """{label: curves} of every run folder found under paths, in sorted order; runs with no rows yet are left out."""
    run_dirs = find_run_dirs(paths)
    runs = {label: read_curves(run_dir) for label, run_dir in zip(run_labels(run_dirs), run_dirs)}
    empty = [label for label, curves in runs.items() if not curves.get("step")]
    if len(empty) == len(runs):
        raise ValueError(f"no run under {', '.join(map(str, paths))} has logged a metrics row yet")
    return {label: curves for label, curves in runs.items() if label not in empty}


def metric_names(runs, metrics=None):
    """The requested metrics, or every column any run logged (in order of first appearance)."""
    available = list(dict.fromkeys(name for curves in runs.values() for name in curves if name not in NOT_PLOTTED))
    if metrics is None:
        return available
    unknown = [name for name in metrics if name not in available]
    if unknown:
        raise ValueError(f"no run logged {unknown}; the columns are {available}")
    return list(metrics)


def spans_decades(values):
    finite = [value for value in values if math.isfinite(value)]
    return bool(finite) and min(finite) > 0 and max(finite) > 100 * min(finite)


def plot_curves(runs, metrics=None, columns=3):
    """A Figure with one panel per metric against the step; a positive metric spanning decades gets a log axis."""
    names = metric_names(runs, metrics)
    columns = min(columns, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.4 + 0.25 * math.ceil(len(runs) / columns)),
                    layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    palette = colormaps["tab10" if len(runs) <= 10 else "tab20"]
    color_of_run = {label: palette(index % palette.N) for index, label in enumerate(runs)}  # same in every panel
    for ax, name in zip(axes, names):
        values_of_every_run = []
        for label, curves in runs.items():
            if name in curves:
                ax.plot(curves["step"], curves[name], marker="." if len(curves["step"]) < 30 else None, label=label,
                        color=color_of_run[label])
                values_of_every_run += curves[name]
        if spans_decades(values_of_every_run):
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handle_of_label = {label: handle for ax in axes[:len(names)]
                       for handle, label in zip(*ax.get_legend_handles_labels())}
    figure.legend(handle_of_label.values(), handle_of_label.keys(), loc="outside lower center", ncols=columns,
                  fontsize="small")
    return figure


def last_values_table(runs, metrics=None):
    """Markdown table of each run's last logged row."""
    names = metric_names(runs, metrics)
    lines = ["| run | step | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for label, curves in runs.items():
        cells = [f"{curves[name][-1]:.4g}" if name in curves else "" for name in names]
        lines.append(f"| {label} | {curves['step'][-1]:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run folders, or folders holding run folders")
    parser.add_argument("--out", type=Path, help="PNG to write (default: curves.png in the one folder given)")
    parser.add_argument("--metrics", help="comma-separated metrics.csv columns (default: every one)")
    parser.add_argument("--columns", type=int, default=3, help="panels per row (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.out is None and len(args.paths) > 1:
        parser.error("with several folders, say where the figure goes with --out FILE.png")
    if args.columns <= 0:
        parser.error("--columns must be positive")
    out = args.out or Path(args.paths[0]) / "curves.png"
    metrics = args.metrics.split(",") if args.metrics else None
    try:
        runs = load_runs(args.paths)
        figure = plot_curves(runs, metrics, args.columns)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    print(last_values_table(runs, metrics))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
