"""The last step of every run script: a results family's table from its finished run folders, merged into
results/<name>.json, then RESULTS.md (and its appendix and the README's headline table) re-rendered.

    python -m evaluation.summarize FAMILY ROOT --kind quick|full --command "bash run_toy.sh --quick"

FAMILY is one of toy, image, cvae, lagvae, sym; each module exposes summarize(root, kind=, device=, results=),
returning an evaluation.summary.FamilySummary. The rows are merged into the summary already there
(evaluation.summary.merge_summary): a subset run (TOY_RUNS=vae bash run_toy.sh --quick, run_sym.sh --quick after
--all) replaces its own rows and keeps every other run's.
"""
import argparse
import importlib
import sys
from pathlib import Path

from evaluation import render_results
from evaluation.summary import merge_summary, training_seconds
from training import ConfigError, add_device_arg

FAMILIES = {"toy": "evaluation.summarize_toy", "image": "evaluation.summarize_image",
            "cvae": "evaluation.summarize_cvae", "lagvae": "evaluation.lagvae", "sym": "evaluation.symvae"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=FAMILIES, help="which table: " + ", ".join(FAMILIES))
    parser.add_argument("root", type=Path, help="the folder of the table's run folders, e.g. runs/toy_quick")
    parser.add_argument("--kind", choices=("quick", "full"), required=True,
                        help="quick: the CPU-scale table (run scripts' --quick); full: the paper's protocol")
    parser.add_argument("--command", required=True, help="the command that trained the runs, as typed")
    add_device_arg(parser)  # the runs' device: evaluation (lagvae, sym) runs there, and it names the hardware
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="folder of the summaries and figures (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("RESULTS.md"),
                        help="the rendering to rewrite, beside its appendix (default: %(default)s)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"),
                        help="the README whose headline table is rewritten (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.root.is_dir():
        raise SystemExit(f"error: {args.root} is not a folder of run folders; run the table's run script first")
    family = importlib.import_module(FAMILIES[args.family])
    try:
        summary = family.summarize(args.root, kind=args.kind, device=args.device, results=args.results)
        path = args.results / f"{summary.name}.json"
        merge_summary(path, experiment=summary.experiment, rows=summary.rows, command=args.command, kind=args.kind,
                      hardware=summary.hardware, notes=summary.notes, run_seconds=training_seconds(args.root))
        print(f"merged {len(summary.rows)} rows into {path}")
        render_results.write_renderings(args.results, args.output, args.readme)
    except (ConfigError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    main(sys.argv[1:])
