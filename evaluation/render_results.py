"""RESULTS.md, rendered from the summaries under results/: python -m evaluation.render_results [--check].

Each experiment writes results/<name>.json through evaluation.summary.write_summary: rows of method, dataset,
metric, ours, paper (the paper's reference number) and scale, with the command, commit, hardware and date. This
renders every row into one reproduction table, quick (CPU-scale) rows apart from full-scale ones, then one section
per experiment family: the prose of results/<prefix>_notes.md, which covers <prefix>.json and every
<prefix>_*.json (without notes, a summary's family is its name up to the first '_'), the provenance of each summary,
and links to the figures under results/figures/<family>/ and results/figures/<summary name>/. New summaries and
notes need no change here; a test fails when RESULTS.md differs from this rendering.
"""
import argparse
import json
import os
from pathlib import Path

from evaluation.summary import ROW_KEYS
from training.runs import write_atomically

SUMMARY_KEYS = ("experiment", "kind", "command", "commit", "hardware", "date", "rows")
TABLE_COLUMNS = (*ROW_KEYS, "hardware", "command")
KINDS = {"quick": "Quick rows (CPU scale: shorter runs, smaller batches; not the paper's protocol)",
         "full": "Full-scale rows (the paper's protocol)"}
NOTES_SUFFIX = "_notes.md"
HEADER = """# Reproduction results

Rendered by `python -m evaluation.render_results` from the summaries under `results/` (each written by the command
beside its numbers) and the notes `results/*_notes.md`: do not edit by hand. Nothing is copied from a paper except the
*paper* column."""


def load_summaries(results_dir):
    """{name: summary} of every results/<name>.json, sorted by name; a malformed one is refused by name."""
    summaries = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        summary = json.loads(path.read_text())
        missing = [key for key in SUMMARY_KEYS if key not in summary]
        missing += [f"rows[{index}].{key}" for index, row in enumerate(summary.get("rows", []))
                    for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"{path} lacks {missing}: write it with evaluation.summary.write_summary")
        if summary["kind"] not in KINDS:
            raise ValueError(f"{path} has kind {summary['kind']!r}; it must be one of {', '.join(KINDS)}")
        summaries[path.stem] = summary
    return summaries


def load_notes(results_dir):
    return {path.name[:-len(NOTES_SUFFIX)]: path.read_text().strip()
            for path in sorted(Path(results_dir).glob("*" + NOTES_SUFFIX))}


def cell(value):
    """A table cell: None is '-', a float keeps 4 significant digits, '|' and line breaks cannot break the row."""
    if value is None:
        return "-"
    text = format(value, ".4g") if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table_row(summary, row):
    # A row may override its summary's hardware or command (e.g. one run of a sweep).
    values = [cell(row.get(key, summary.get(key))) for key in TABLE_COLUMNS]
    values[-1] = f"`{values[-1]}`"
    return "| " + " | ".join(values) + " |"


def reproduction_table(summaries, kind):
    rows = [table_row(summary, row) for summary in summaries.values() if summary["kind"] == kind
            for row in summary["rows"]]
    if not rows:
        return ["None yet."]
    return ["| " + " | ".join(TABLE_COLUMNS) + " |", "|---" * len(TABLE_COLUMNS) + "|", *rows]


def section_of(name, notes):
    """The section a summary goes to: the longest notes prefix covering it (`name` itself or `name` starting with
    'prefix_'), else its family, the name up to its first '_' (cvae_quick and cvae_full share 'cvae')."""
    covering = [prefix for prefix in notes if name == prefix or name.startswith(prefix + "_")]
    return max(covering, key=len, default=name.split("_")[0])


def provenance(name, summary):
    """One bullet: which file, and how, where and when it was made."""
    line = (f"- `results/{name}.json` ({summary['kind']}): {summary['experiment']}. `{summary['command']}`, "
            f"commit `{summary['commit']}`, {summary['date']}, {summary['hardware']}.")
    return f"{line} {summary['notes']}" if summary.get("notes") else line


def figure_links(folders, output_dir):
    """Links to every PNG under the given folders, by their path below results/figures/."""
    links = [f"[{figure.relative_to(folder.parent).with_suffix('').as_posix()}]"
             f"({Path(os.path.relpath(figure, output_dir)).as_posix()})"
             for folder in folders if folder.is_dir() for figure in sorted(folder.rglob("*.png"))]
    return "Figures: " + ", ".join(links) + "." if links else None


def render(results_dir="results", output_dir="."):
    """The text of RESULTS.md; figure links are relative to output_dir, the folder RESULTS.md lives in."""
    summaries, notes = load_summaries(results_dir), load_notes(results_dir)
    lines = [HEADER, "", "## Reproduction table", ""]
    for kind, title in KINDS.items():
        lines += [f"### {title}", "", *reproduction_table(summaries, kind), ""]

    sections = {prefix: [] for prefix in notes}
    for name in summaries:
        sections.setdefault(section_of(name, notes), []).append(name)
    for section in sorted(sections):
        names = sections[section]
        text = notes.get(section, "")
        if not text.startswith("## "):  # notes normally open with their section's heading
            heading = summaries[names[0]]["experiment"] if names else section
            text = f"## {heading}\n\n{text}".strip()
        lines += [text, ""]
        if names:
            lines += [provenance(name, summaries[name]) for name in names] + [""]
        figures = figure_links([Path(results_dir) / "figures" / folder for folder in sorted({section, *names})],
                               output_dir)
        if figures:
            lines += [figures, ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"), help="(default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("RESULTS.md"), help="(default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when --output is stale")
    args = parser.parse_args()
    try:
        text = render(args.results, args.output.parent)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            raise SystemExit(f"{args.output} is stale: run python -m evaluation.render_results")
        print(f"{args.output} is up to date")
        return
    write_atomically(args.output, lambda file: file.write(text.encode()))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
