"""The CLL table of the quadrant experiments from finished run folders (never typed numbers).

    python -m evaluation.summarize_cvae RUNS_ROOT [--kind quick|full] [--figures DIR] [--summary results/cvae_X.json]

RUNS_ROOT holds q{1,2,3}-nn and q{1,2,3}-cvae, as run_cvae.sh lays them out; each has a test_cll.json.
"""
import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from evaluation.summary import hardware_description, write_summary
from objectives.cvae import QUADRANT_SETTINGS
from training import add_device_arg, resolve_device

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
            raise SystemExit(f"error: missing {', '.join(missing)}; run bash run_cvae.sh first")
        nn, cvae = json.loads(nn_file.read_text()), json.loads(cvae_file.read_text())
        values = {"nn": nn["negative_cll"]["nn"], **{k: v for k, v in cvae["negative_cll"].items() if k != "nn"}}
        values["gap_elbo10"] = values["nn"] - values["cvae_elbo10"]
        values["gap_mc"] = values["nn"] - values["cvae_mc"]
        results[quadrants] = {"values": values, "nn": nn, "cvae": cvae}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--kind", choices=("quick", "full"), default="full")
    parser.add_argument("--figures", type=Path, help="copy each CVAE run's completion figure here")
    parser.add_argument("--summary", type=Path, help="write the rows with evaluation.summary.write_summary here")
    parser.add_argument("--command", default="", help="the command that produced the runs, for the summary")
    add_device_arg(parser, default="cpu")  # the device the runs used, for the summary's hardware
    args = parser.parse_args()
    results = read_results(args.root)

    print("negative CLL, nats per image summed over the output pixels (lower is better); "
          "cells: ours (Pyro tutorial / paper test)")
    print("| method | " + " | ".join(f"{q} quadrant{'s' * (q > 1)}" for q in QUADRANT_SETTINGS) + " |")
    print("|---" * (len(QUADRANT_SETTINGS) + 1) + "|")
    rows = []
    for name, label in LABELS.items():
        cells = []
        for index, quadrants in enumerate(QUADRANT_SETTINGS):
            ours = results[quadrants]["values"][name]
            cells.append(f"{ours:.1f} ({reference(name, index)})")
            rows.append({"method": label, "dataset": f"MNIST, {quadrants} input quadrant(s)",
                         "metric": "negative CLL (nats/image)", "ours": round(ours, 2),
                         "paper": reference(name, index) + " (tutorial / paper)", "scale": args.kind})
        print(f"| {label} | " + " | ".join(cells) + " |")
    epochs = [f"{results[q]['nn']['best_epoch']} / {results[q]['cvae']['best_epoch']}" for q in QUADRANT_SETTINGS]
    print("| best epoch NN / CVAE | " + " | ".join(epochs) + " |")
    first = results[QUADRANT_SETTINGS[0]]["cvae"]
    print(f"\ntrain images {first['n_train']}, test images {first['n_test']}, S = {first['n_samples']}")

    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for quadrants in QUADRANT_SETTINGS:
            figure = args.root / f"q{quadrants}-cvae" / "samples" / "completions.png"
            if figure.exists():
                shutil.copyfile(figure, args.figures / f"{args.kind}_q{quadrants}.png")
    if args.summary:
        shrinking = {name: all(results[a]["values"][name] > results[b]["values"][name]
                               for a, b in zip(QUADRANT_SETTINGS, QUADRANT_SETTINGS[1:]))
                     for name in ("gap_elbo10", "gap_mc")}
        notes = (f"train images {first['n_train']}, test images {first['n_test']}, S={first['n_samples']}; "
                 f"best epochs NN/CVAE: {', '.join(epochs)}; the gap shrinks monotonically with more quadrants: "
                 + ", ".join(f"{LABELS[name]}: {value}" for name, value in shrinking.items()))
        write_summary(args.summary, experiment="cvae_mnist_quadrants", rows=rows,
                      command=args.command or shlex.join(["python", "-m", "evaluation.summarize_cvae", *sys.argv[1:]]),
                      kind=args.kind, hardware=hardware_description(resolve_device(args.device)), notes=notes)


if __name__ == "__main__":
    main()
