"""The toy table (python -m evaluation.summarize toy RUNS_ROOT --kind quick|full --command ...).

Reads each run folder's config.json and metrics.csv under RUNS_ROOT (as bash run_toy.sh lays them out:
<data>-<name>, or <data>-<name>/seed<S> with launch.py --seeds: then mean ± std over the seeds) for
results/toy_<kind>.json and copies each run's last figure (the first seed's) to results/figures/toy_<kind>/.
"""
import csv
import json
import shutil
from pathlib import Path

import torch

from evaluation.summary import FamilySummary, hardware_description, mean_std_over_seeds, runs_by_name
from training import resolve_device

LABELS = {"cygen_pt": "CyGen(PT)", "cygen": "CyGen", "no_compat": "CyGen(PT), w_cm=0", "vae": "VAE (ELBO)",
          "dae": "DAE", "bigan": "BiGAN", "gibbsnet": "GibbsNet"}
# The spec's pinwheel values, logged by the official code with its bug B2 in the compatibility term (batch 1000).
PAPER = {("pinwheel", "cygen_pt", "compatibility_lite", "pretrained"): "~1.6e4 (step 1000, B2)",
         ("pinwheel", "cygen_pt", "compatibility_lite", "end"): "~4.6e3 (step 30000, B2)",
         ("pinwheel", "no_compat", "compatibility_lite", "pretrained"): "~1.6e4 (step 1000, B2)",
         ("pinwheel", "no_compat", "compatibility_lite", "end"): "~1.2e8 (diverges, B2)"}
METRICS = {"compatibility_lite": "compatibility, lite (J-weighted)", "compatibility": "compatibility, full norm",
           "nll_hm": "harmonic-mean NLL"}


def run_rows(run_dir: Path, run_name):
    """(summary rows, config) of one finished run named <data>-<name>: its final values, and for CyGen(PT)-style runs
    the compatibility at the end of ELBO pretraining too."""
    config = json.loads((run_dir / "config.json").read_text())
    flags = config["flags"]
    with open(run_dir / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    last_step = int(rows[-1]["step"]) if rows else 0
    if last_step < flags["niters"]:
        raise ValueError(f"{run_dir} stopped at step {last_step} of {flags['niters']}: finish it first "
                         "(bash run_toy.sh resumes it)")
    data, name = run_name.split("-", 1)
    at_pretraining = next((row for row in rows if int(row["step"]) == flags["pretr_niter"]), None)
    scale = f"{last_step} iterations, batch {flags['batch_size']}"

    def summary_row(column, moment):
        row, when = ((at_pretraining, f", after ELBO pretraining (step {flags['pretr_niter']})")
                     if moment == "pretrained" else (rows[-1], ""))
        return {"method": LABELS.get(name, name), "dataset": data, "metric": METRICS[column] + when,
                "ours": float(row[column]), "paper": PAPER.get((data, name, column, moment)), "scale": scale}

    moments = ("pretrained", "end") if at_pretraining else ("end",)
    summary_rows = [summary_row(column, moment) for column in ("compatibility_lite", "compatibility")
                    for moment in moments]
    return summary_rows + [summary_row("nll_hm", "end")], config


def summarize(root, *, kind, device, results):
    """The toy table of the finished runs under root (evaluation.summarize's contract); each run's last figure is
    copied to results/figures/toy_<kind>/<data>-<name>.png."""
    runs = runs_by_name(root)
    if not runs:
        raise ValueError(f"{root} holds no run folder with a metrics.csv; run bash run_toy.sh first")
    rows, configs = [], []
    for run, seed_dirs in runs.items():
        of_each_seed = [run_rows(seed_dir, run.name) for seed_dir in seed_dirs]
        rows += mean_std_over_seeds([seed_rows for seed_rows, _ in of_each_seed])
        configs += [config for _, config in of_each_seed]
    figures = Path(results) / "figures" / f"toy_{kind}"
    figures.mkdir(parents=True, exist_ok=True)
    for run, seed_dirs in runs.items():
        shutil.copyfile(max(seed_dirs[0].glob("samples/step*.png")), figures / f"{run.name}.png")
    torch.set_num_threads(1)  # run_toy.sh trains every run with one thread
    commits = sorted({str(config["git_commit"]) for config in configs})
    return FamilySummary(name=f"toy_{kind}", rows=rows, hardware=hardware_description(resolve_device(device)),
                         experiment="CyGen and baselines on 2-D toy data (Liu et al. 2021, section 5.1)",
                         notes=f"Trained at commit {', '.join(commits)}; each run's exact command is in "
                               f"{Path(root).as_posix()}/<data>-<method>/config.json.")
