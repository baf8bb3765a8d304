"""Downstream-accuracy table of finished main_image.py runs (paper Table 7):

    python -m evaluation.summarize image runs/image_quick --kind quick --command "bash run_image.sh --quick"

Reads each run folder's config.json and metrics.csv (with launch.py --seeds, those of <run>/seed<S>: then mean ± std
over the seeds of the trials' mean) for results/image_<kind>.json and copies each run's final sample grids (the
first seed's) to results/figures/image_<kind>/ for RESULTS.md.
"""
import csv
import json
import shutil
from pathlib import Path

from evaluation.summary import FamilySummary, hardware_description, mean_std_over_seeds, runs_by_name
from training import resolve_device

PAPER_ACCURACY = {("mnist", "vae"): "94.5 ± 0.3", ("mnist", "dae"): "98.0 ± 0.1 (with bug B3)",
                  ("mnist", "cygen_pt"): "98.3 ± 0.1", ("svhn", "vae"): "30.8 ± 0.2",
                  ("svhn", "dae"): "74.5 ± 1.0 (with bug B3)", ("svhn", "cygen_pt"): "75.8 ± 0.5"}
LABELS = {"vae": "VAE", "dae": "DAE", "cygen_pt": "CyGen(PT)",
          # run_image.sh --quick's study: the paper's warm-up decoder variance
          "vae_pvar05": "VAE, warm-up variance 0.5", "cygen_pt_pvar05": "CyGen(PT), warm-up variance 0.5",
          "vae_pvar05_e5": "VAE, warm-up variance 0.5, 5 epochs",
          "cygen_pt_pvar05_e5": "CyGen(PT), warm-up variance 0.5, 5 epochs"}


def accuracy_text(row):
    return f"{float(row['accuracy']):.2f} ± {float(row['accuracy_std']):.2f}"


def trials_mean(row):
    """A row's number to average over seeds: the accuracy's mean over the trials, or the compatibility."""
    return float(row["ours"].split(" ± ")[0])


def summary_rows(run_dir: Path, run_name):
    config = json.loads((run_dir / "config.json").read_text())
    flags = config["flags"]
    with open(run_dir / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    evaluated = [row for row in rows if row["accuracy"]]
    if not evaluated:
        return []
    data, name = run_name.split("-", 1)
    method = LABELS.get(name, name)
    n_train = flags["n_train"] or "all"
    # Runs made before --downstream_n_train existed trained the classifier on the encoder's images.
    n_classifier = flags.get("downstream_n_train") or n_train
    scale = (f"{flags['warm_up']} warm-up + {flags['epochs']} epochs, {n_train} training images, batch "
             f"{flags['batch_size']}, {flags['n_trials']} trials x {flags['downstream_epochs']} classifier epochs "
             f"on {n_classifier} images, "
             f"{float(rows[-1]['elapsed_s']) / 60:.0f} min")
    last = evaluated[-1]
    result = [dict(method=method, dataset=data, metric="downstream accuracy (%)", ours=accuracy_text(last),
                   paper=PAPER_ACCURACY.get((data, name)), scale=scale)]
    after_warm_up = next((row for row in evaluated if int(row["step"]) == flags["warm_up"]), None)
    if after_warm_up is not None and after_warm_up is not last:
        result.append(dict(method=f"{method}, after the warm-up", dataset=data, metric="downstream accuracy (%)",
                           ours=accuracy_text(after_warm_up), paper=None, scale=scale))
    result.append(dict(method=method, dataset=data, metric="compatibility (held-out, Hutchinson)",
                       ours=f"{float(last['valid_compat']):.4g}", paper=None, scale=scale))
    return result


def summarize(root, *, kind, device, results):
    """The Table 7 rows of the finished runs under root (evaluation.summarize's contract); each run's final sample
    grids are copied to results/figures/image_<kind>/."""
    runs = runs_by_name(root)
    rows = [row for run, seed_dirs in runs.items() for row in mean_std_over_seeds(
        [summary_rows(seed_dir, run.name) for seed_dir in seed_dirs], value=trials_mean)]
    if not rows:
        raise ValueError(f"{root} holds no evaluated main_image.py run; run bash run_image.sh first")
    # runs record their hardware in config.json; the summary is made on the machine that ran them
    fallback = hardware_description(resolve_device(device))
    hardware = {json.loads((d / "config.json").read_text()).get("hardware") or fallback
                for seed_dirs in runs.values() for d in seed_dirs}
    figures = Path(results) / "figures" / f"image_{kind}"
    figures.mkdir(parents=True, exist_ok=True)
    for run, seed_dirs in runs.items():
        for grid in sorted((seed_dirs[0] / "samples").glob("final_*.png")):
            shutil.copyfile(grid, figures / f"{run.name}_{grid.name.removeprefix('final_')}")
    return FamilySummary(name=f"image_{kind}", experiment="CyGen on images: downstream accuracy (paper Table 7)",
                         rows=rows, hardware=", ".join(sorted(hardware)),
                         notes="Accuracy of a fresh Linear-LeakyReLU-Linear classifier on z ~ q(z|x) of the training "
                               "images with the encoder frozen, on the whole MNIST/SVHN test set; mean ± std over "
                               "trials.")
