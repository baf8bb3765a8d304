"""The CLL table of the quadrant experiments from finished run folders (never typed numbers).

    python -m evaluation.summarize cvae RUNS_ROOT --kind quick|full --command "bash run_cvae.sh --quick"

RUNS_ROOT holds q{1,2,3}-nn and q{1,2,3}-cvae, as run_cvae.sh lays them out; each has a test_cll.json.
"""
import json
import shutil
from pathlib import Path

from evaluation.summary import FamilySummary, hardware_description
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


def read_results(root):
    results = {}
    for quadrants in QUADRANT_SETTINGS:
        nn_file, cvae_file = root / f"q{quadrants}-nn" / "test_cll.json", root / f"q{quadrants}-cvae" / "test_cll.json"
        missing = [str(path) for path in (nn_file, cvae_file) if not path.exists()]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}; run bash run_cvae.sh first")
        nn, cvae = json.loads(nn_file.read_text()), json.loads(cvae_file.read_text())
        values = {"nn": nn["negative_cll"]["nn"], **{k: v for k, v in cvae["negative_cll"].items() if k != "nn"}}
        values["gap_elbo10"] = values["nn"] - values["cvae_elbo10"]
        values["gap_mc"] = values["nn"] - values["cvae_mc"]
        results[quadrants] = {"values": values, "nn": nn, "cvae": cvae}
    return results


def summarize(root, *, kind, device, results):
    """The CLL table of the quadrant runs under root (evaluation.summarize's contract); each CVAE run's completion
    figure is copied to results/figures/cvae/<kind>_q<N>.png."""
    results_by_setting = read_results(Path(root))
    rows = [{"method": label, "dataset": f"MNIST, {quadrants} input quadrant(s)",
             "metric": "negative CLL (nats/image)", "ours": round(results_by_setting[quadrants]["values"][name], 2),
             "paper": reference(name, index) + " (tutorial / paper)", "scale": kind}
            for name, label in LABELS.items() for index, quadrants in enumerate(QUADRANT_SETTINGS)]
    figures = Path(results) / "figures" / "cvae"
    figures.mkdir(parents=True, exist_ok=True)
    for quadrants in QUADRANT_SETTINGS:
        figure = Path(root) / f"q{quadrants}-cvae" / "samples" / "completions.png"
        if figure.exists():
            shutil.copyfile(figure, figures / f"{kind}_q{quadrants}.png")
    epochs = [f"{results_by_setting[q]['nn']['best_epoch']} / {results_by_setting[q]['cvae']['best_epoch']}"
              for q in QUADRANT_SETTINGS]
    first = results_by_setting[QUADRANT_SETTINGS[0]]["cvae"]
    shrinking = {name: all(results_by_setting[a]["values"][name] > results_by_setting[b]["values"][name]
                           for a, b in zip(QUADRANT_SETTINGS, QUADRANT_SETTINGS[1:]))
                 for name in ("gap_elbo10", "gap_mc")}
    notes = (f"train images {first['n_train']}, test images {first['n_test']}, S={first['n_samples']}; "
             f"best epochs NN/CVAE: {', '.join(epochs)}; the gap shrinks monotonically with more quadrants: "
             + ", ".join(f"{LABELS[name]}: {value}" for name, value in shrinking.items()))
    return FamilySummary(name=f"cvae_{kind}", experiment="cvae_mnist_quadrants", rows=rows, notes=notes,
                         hardware=hardware_description(resolve_device(device)))
