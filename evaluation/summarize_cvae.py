"""The CLL table of the quadrant experiments from finished run folders (never typed numbers).

    python -m evaluation.summarize cvae RUNS_ROOT --kind quick|full --command "bash run_cvae.sh --quick"

RUNS_ROOT holds q{1,2,3}-nn and q{1,2,3}-cvae, as run_cvae.sh lays them out; each has a test_cll.json (with
launch.py --seeds, each of its seed<S> folders has one: then mean ± std over the seeds).
"""
import json
import shutil
import statistics
from pathlib import Path

from evaluation.summary import FamilySummary, hardware_description, mean_std_over_seeds, seed_folders
from objectives.cvae import QUADRANT_SETTINGS
from training import resolve_device

# shared/specs/cvae.md. Pyro's tutorial reported its 10-particle -ELBO under the label "Monte Carlo", so its numbers
# sit beside our -ELBO row; the paper's Table 1 (test column, recalled) beside our Monte Carlo and IS rows.
TUTORIAL = {"nn": (100.4, 61.9, 25.4), "cvae_elbo10": (71.8, 51.0, 24.2), "gap_elbo10": (28.6, 10.9, 1.2)}
PAPER = {"nn": (99.75, 62.18, 25.99), "cvae_mc": (68.39, 45.34, 20.96), "cvae_is": (63.91, 44.73, 20.95)}
PAPER["gap_mc"] = tuple(round(nn - mc, 2) for nn, mc in zip(PAPER["nn"], PAPER["cvae_mc"]))
LABELS = {"nn": "NN (baseline)", "cvae_mc": "CVAE (Monte Carlo, S=100)", "cvae_is": "CVAE (importance sampling, S=100)",
          "cvae_elbo10": "CVAE (-ELBO, 10 particles; the tutorial's number)",
          "gap_elbo10": "gap NN - CVAE (-ELBO, 10 particles)", "gap_mc": "gap NN - CVAE (Monte Carlo)"}


def reference(name, index):
    values = (TUTORIAL.get(name, (None,) * 3)[index], PAPER.get(name, (None,) * 3)[index])
    return " / ".join("-" if value is None else f"{value:g}" for value in values)


def read_setting(nn_dir, cvae_dir):
    """One seed of one quadrant setting: {values, nn, cvae} of its two test_cll.json, and the CVAE's folder."""
    nn, cvae = (json.loads((folder / "test_cll.json").read_text()) for folder in (nn_dir, cvae_dir))
    values = {"nn": nn["negative_cll"]["nn"], **{k: v for k, v in cvae["negative_cll"].items() if k != "nn"}}
    values["gap_elbo10"] = values["nn"] - values["cvae_elbo10"]
    values["gap_mc"] = values["nn"] - values["cvae_mc"]
    return {"values": values, "nn": nn, "cvae": cvae, "cvae_dir": cvae_dir}


def read_results(root):
    """{quadrants: [read_setting of each seed]} of the runs under root."""
    results = {}
    for quadrants in QUADRANT_SETTINGS:
        nn_run, cvae_run = root / f"q{quadrants}-nn", root / f"q{quadrants}-cvae"
        nn_seeds, cvae_seeds = (seed_folders(run, marker="test_cll.json") for run in (nn_run, cvae_run))
        if not nn_seeds or not cvae_seeds:
            missing = [str(run / "test_cll.json") for run, seeds in ((nn_run, nn_seeds), (cvae_run, cvae_seeds))
                       if not seeds]
            raise ValueError(f"missing {', '.join(missing)}; run bash run_cvae.sh first")
        if [path.relative_to(nn_run) for path in nn_seeds] != [path.relative_to(cvae_run) for path in cvae_seeds]:
            raise ValueError(f"{nn_run} and {cvae_run} hold other seeds; finish both runs of each seed first "
                             "(bash run_cvae.sh with the same --seeds)")
        results[quadrants] = [read_setting(nn_dir, cvae_dir) for nn_dir, cvae_dir in zip(nn_seeds, cvae_seeds)]
    return results


def summarize(root, *, kind, device, results):
    """The CLL table of the quadrant runs under root (evaluation.summarize's contract); each CVAE run's completion
    figure (its first seed's) is copied to results/figures/cvae/<kind>_q<N>.png."""
    results_by_setting = read_results(Path(root))
    n_seeds = len(results_by_setting[QUADRANT_SETTINGS[0]])
    if any(len(seeds) != n_seeds for seeds in results_by_setting.values()):
        raise ValueError(f"the quadrant settings under {root} hold different numbers of seeds; finish every "
                         "setting's runs of each seed first")
    rows = mean_std_over_seeds([
        [{"method": label, "dataset": f"MNIST, {quadrants} input quadrant(s)", "metric": "negative CLL (nats/image)",
          "ours": round(results_by_setting[quadrants][seed]["values"][name], 2),
          "paper": reference(name, index) + " (tutorial / paper)", "scale": kind}
         for name, label in LABELS.items() for index, quadrants in enumerate(QUADRANT_SETTINGS)]
        for seed in range(n_seeds)])
    figures = Path(results) / "figures" / "cvae"
    figures.mkdir(parents=True, exist_ok=True)
    for quadrants in QUADRANT_SETTINGS:
        figure = results_by_setting[quadrants][0]["cvae_dir"] / "samples" / "completions.png"
        if figure.exists():
            shutil.copyfile(figure, figures / f"{kind}_q{quadrants}.png")
    epochs = [" & ".join(f"{seed['nn']['best_epoch']} / {seed['cvae']['best_epoch']}"
                         for seed in results_by_setting[q]) for q in QUADRANT_SETTINGS]
    first = results_by_setting[QUADRANT_SETTINGS[0]][0]["cvae"]

    def seeds_mean(quadrants, name):
        return statistics.mean(seed["values"][name] for seed in results_by_setting[quadrants])
    shrinking = {name: all(seeds_mean(a, name) > seeds_mean(b, name)
                           for a, b in zip(QUADRANT_SETTINGS, QUADRANT_SETTINGS[1:]))
                 for name in ("gap_elbo10", "gap_mc")}
    notes = (f"train images {first['n_train']}, test images {first['n_test']}, S={first['n_samples']}; "
             f"best epochs NN/CVAE: {', '.join(epochs)}; the gap shrinks monotonically with more quadrants: "
             + ", ".join(f"{LABELS[name]}: {value}" for name, value in shrinking.items()))
    return FamilySummary(name=f"cvae_{kind}", experiment="cvae_mnist_quadrants", rows=rows, notes=notes,
                         hardware=hardware_description(resolve_device(device)))
