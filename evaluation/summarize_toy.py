"""Markdown table of finished toy runs: python -m evaluation.summarize_toy RUNS_ROOT [--figures DIR].

Reads each run folder's config.json and metrics.csv (never typed numbers), and optionally copies each run's last
figure to DIR so RESULTS.md can link it.
"""
import argparse
import csv
import json
import shutil
from pathlib import Path

# Paper values (spec, pinwheel: the official code's logged lite value, with its bug B2 in the compatibility term).
PAPER_COMPATIBILITY = {("pinwheel", "cygen_pt"): "1.6e4 -> ~4.6e3", ("pinwheel", "no_compat"): "1.6e4 -> ~1.2e8"}
LABELS = {"cygen_pt": "CyGen(PT)", "cygen": "CyGen", "no_compat": "CyGen(PT), w_cm=0", "vae": "VAE (ELBO)",
          "dae": "DAE", "bigan": "BiGAN", "gibbsnet": "GibbsNet"}


def transition(at_pretraining, last, column):
    """'after pretraining -> final' for CyGen(PT)-style runs, else the final value."""
    final = f"{float(last[column]):.3g}"
    return f"{float(at_pretraining[column]):.3g} -> {final}" if at_pretraining else final


def summarize(run_dir: Path):
    flags = json.loads((run_dir / "config.json").read_text())["flags"]
    with open(run_dir / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        return None
    data, name = run_dir.name.split("-", 1)
    at_pretraining = next((r for r in rows if int(r["step"]) == flags["pretr_niter"]), None)
    return {"data": data, "name": name, "iterations": rows[-1]["step"], "batch": flags["batch_size"],
            "lite": transition(at_pretraining, rows[-1], "compatibility_lite"),
            "full": transition(at_pretraining, rows[-1], "compatibility"), "nll_hm": float(rows[-1]["nll_hm"]),
            "minutes": float(rows[-1]["elapsed_s"]) / 60, "figure": max(run_dir.glob("samples/step*.png"), default=None)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--figures", type=Path, help="copy each run's last figure here")
    args = parser.parse_args()
    print("| data | method | iterations (batch) | compatibility, lite (J-weighted) | paper (lite, with B2) "
          "| compatibility, full norm | harmonic-mean NLL | minutes | figure |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run_dir in sorted(p for p in args.root.iterdir() if (p / "metrics.csv").exists()):
        row = summarize(run_dir)
        if row is None:
            continue
        figure = ""
        if args.figures and row["figure"]:
            args.figures.mkdir(parents=True, exist_ok=True)
            target = args.figures / f"{run_dir.name}.png"
            shutil.copyfile(row["figure"], target)
            figure = f"[png]({target.as_posix()})"
        paper = PAPER_COMPATIBILITY.get((row["data"], row["name"]), "-")
        print(f"| {row['data']} | {LABELS.get(row['name'], row['name'])} | {row['iterations']} ({row['batch']}) "
              f"| {row['lite']} | {paper} | {row['full']} | {row['nll_hm']:.3f} | {row['minutes']:.1f} "
              f"| {figure} |")


if __name__ == "__main__":
    main()
