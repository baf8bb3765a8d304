"""RESULTS.md, RESULTS_APPENDIX.md and the README's headline table, rendered from results/:
python -m evaluation.render_results [--check].

RESULTS.md opens with the claims table (results/claims.json: each claim's verdict computed by evaluation.claims from
the summaries), then the speed table (claims.json "speed"), then one compact section per results family: the part
of results/<prefix>_notes.md above the line `<!-- appendix -->` (without that line, its first paragraph). The rest
of each notes file, every summary's rows in full and links to every figure go to RESULTS_APPENDIX.md. A notes file
covers <prefix>.json and every <prefix>_*.json (without notes, a summary's family is its name up to the first '_').

Notes cite numbers through placeholders, filled here, so prose cannot drift from the summaries:
  {{toy_full | CyGen(PT) | pinwheel | compatibility, lite (J-weighted) | .2g}}   one row's 'ours' (format optional)
  {{claim | table7-mnist-gap | quick}}                                          a claim's measured number
  {{verdict | table7-mnist-gap}}                                                its verdict, as in the claims table
and lay a family's rows out as the paper's table (rows = methods, columns = datasets or settings):
  ```table
  summary: image                                  the family (every image_*.json, quick and full)
  metric: downstream accuracy (%)                 fixed fields (method, dataset or metric)
  rows: method = VAE | DAE | CyGen(PT)            the rows' field and values (value -> label; ~regex -> label;
  columns: dataset = mnist -> MNIST | svhn        a ~regex without a label makes a column per group(1) value)
  ```
  (cells: quick / full (paper)), or `list: method | metric | ours` for every row of the family.
A placeholder or table that names no row fails the rendering with its notes file named. A test fails when any of
the three files differs from this rendering.
"""
import argparse
import os
import re
from pathlib import Path

from evaluation import claims
from evaluation.result_rows import family_rows, find_row, load_summaries, provenance_of
from evaluation.summary import ROW_KEYS
from training.runs import write_atomically

NOTES_SUFFIX = "_notes.md"
APPENDIX_MARKER = "<!-- appendix -->"
APPENDIX = "RESULTS_APPENDIX.md"
# Sections in reading order; a family not named here follows in alphabetical order.
SECTION_ORDER = ("toy", "image", "symvae", "cvae", "lagvae", "fid", "gpu_check", "faults", "curves")
# The parts of README command (1), bash reproduce_quick.sh, and the summary each writes.
PARTS = {"toy": "toy_quick", "image": "image_quick", "cvae": "cvae_quick", "lagvae": "lagvae_quick",
         "sym": "symvae_quick", "fid": "fid_image_quick"}
README_START = "<!-- headline: rendered by python -m evaluation.render_results; do not edit -->"
README_END = "<!-- /headline -->"
HEADER = """# Reproduction results

Rendered by `python -m evaluation.render_results` from `results/` (summaries `*.json`, each written by the command
named with it; notes `*_notes.md`; claims and rules `claims.json`): do not edit by hand. Nothing is copied from a paper
except the *paper* column. Every row in full, the longer notes and every figure: [{appendix}]({appendix})."""
APPENDIX_HEADER = """# Reproduction results: appendix

Rendered with [RESULTS.md](RESULTS.md) by `python -m evaluation.render_results`: every summary's rows in full (command
and hardware once per summary), the longer notes and links to every figure."""
PLACEHOLDER = re.compile(r"\{\{([^{}]+)\}\}")
TABLE_BLOCK = re.compile(r"```table\n(.*?)\n```", re.DOTALL)


def load_notes(results_dir):
    return {path.name[:-len(NOTES_SUFFIX)]: path.read_text().strip()
            for path in sorted(Path(results_dir).glob("*" + NOTES_SUFFIX))}


def cell(value):
    """A table cell: None is '-', a float keeps 4 significant digits, '|' and line breaks cannot break the row."""
    if value is None:
        return "-"
    text = format(value, ".4g") if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header, rows):
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|", *("| " + " | ".join(r) + " |" for r in rows)]


def section_of(name, notes):
    """The section a summary goes to: the longest notes prefix covering it (`name` itself or `name` starting with
    'prefix_'), else its family, the name up to its first '_' (cvae_quick and cvae_full share 'cvae')."""
    covering = [prefix for prefix in notes if name == prefix or name.startswith(prefix + "_")]
    return max(covering, key=len, default=name.split("_")[0])


def split_notes(text):
    """(compact part for RESULTS.md, appendix part): split at the marker, else after the first paragraph (with
    the heading)."""
    if APPENDIX_MARKER in text:
        compact, rest = text.split(APPENDIX_MARKER, 1)
        return compact.strip(), rest.strip()
    blocks = text.split("\n\n")
    cut = 2 if blocks[0].startswith("## ") and len(blocks) > 1 else 1
    return "\n\n".join(blocks[:cut]).strip(), "\n\n".join(blocks[cut:]).strip()


class Filler:
    """Fills the placeholders and table blocks of notes from the summaries, remembering which summaries it used."""

    def __init__(self, summaries, claims_data):
        self.summaries, self.claims_data, self.used = summaries, claims_data, set()

    def fill(self, text, where):
        try:
            text = TABLE_BLOCK.sub(lambda match: "\n".join(self.table_block(match.group(1))), text)
            return PLACEHOLDER.sub(lambda match: self.placeholder(match.group(1)), text)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from error

    def placeholder(self, body):
        parts = [part.strip() for part in body.split("|")]
        return (self.claim_placeholder if parts[0] in ("verdict", "claim") else self.row_placeholder)(body, parts)

    def claim_placeholder(self, body, parts):
        """{{verdict | ID}}: the claim's verdict cell; {{claim | ID | quick or full}}: its measured number."""
        usage = "{{verdict | ID}} or {{claim | ID | quick or full}} with an ID of claims.json"
        claim = next((c for c in self.claims_data["claims"] if len(parts) > 1 and c["id"] == parts[1]), None)
        if claim is None or len(parts) != (2 if parts[0] == "verdict" else 3):
            raise ValueError(f"{{{{{body}}}}}: write {usage}")
        if parts[0] == "verdict":
            ours, verdict, _ = claims.assess(claim, self.summaries, self.claims_data["reproduce"])
            self.used.update(name for measured in ours.values() if measured for name, _, _ in measured.sources)
            return verdict
        measured = claims.measure_ours(claim, self.summaries, parts[2])
        if measured is None:
            raise ValueError(f"{{{{{body}}}}}: claim {parts[1]} has no {parts[2]} rows")
        self.used.update(name for name, _, _ in measured.sources)
        return claims.formatted(measured, claim)

    def row_placeholder(self, body, parts):
        """{{SUMMARY | method | dataset | metric [| format]}}: the row's 'ours'."""
        if len(parts) not in (4, 5) or parts[0] not in self.summaries:
            raise ValueError(f"{{{{{body}}}}}: write {{{{SUMMARY | method | dataset | metric [| format]}}}} with "
                             "SUMMARY the name of a results/*.json")
        found = [row for row in self.summaries[parts[0]]["rows"]
                 if (row["method"], row["dataset"], row["metric"]) == tuple(parts[1:4])]
        if len(found) != 1:
            raise ValueError(f"{{{{{body}}}}} names {len(found)} rows of results/{parts[0]}.json, not one")
        self.used.add(parts[0])
        value = found[0]["ours"]
        return format(value, parts[4]) if len(parts) == 5 and isinstance(value, (int, float)) else cell(value)

    def table_block(self, body):
        lines = body.strip().splitlines()
        spec = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
        if "summary" not in spec or not ({"rows", "columns"} <= spec.keys() or "list" in spec):
            raise ValueError(f"a table block needs summary: and rows: / columns: (or list:), not {lines}")
        found = [(name, row) for kind in ("quick", "full")
                 for name, _, row in family_rows(self.summaries, spec["summary"], kind)
                 if all(row[key] == spec[key] for key in ("method", "dataset", "metric") if key in spec)]
        if "list" in spec:
            columns = [column.strip() for column in spec["list"].split(" | ")]
            self.used.update(name for name, _ in found)
            return table(columns, [[cell(row[column]) for column in columns] for _, row in found])
        row_field, row_entries = axis(spec["rows"], [row for _, row in found])
        column_field, column_entries = axis(spec["columns"], [row for _, row in found])
        cells_of = {(row_label, column_label): [(name, row) for name, row in found if row_test(row[row_field])
                                                and column_test(row[column_field])]
                    for row_label, row_test in row_entries for column_label, column_test in column_entries}
        if found and not any(cells_of.values()):
            raise ValueError(f"the table of {spec['summary']} names none of its {len(found)} rows")
        # the kinds any cell shows: a family without full rows yet shows its quick values alone
        kinds = [kind for kind in ("quick", "full")
                 if any(self.summaries[name]["kind"] == kind for here in cells_of.values() for name, _ in here)]
        lines = [[row_label, *(self.pivot_cell(cells_of[row_label, column_label], kinds, spec)
                               for column_label, _ in column_entries)] for row_label, _ in row_entries]
        papers = any(present(row["paper"]) for here in cells_of.values() for _, row in here)
        legend = " / ".join(kinds or ["quick"]) + (" (paper)" if papers else "")
        return table([f"{row_field} (cells: {legend})", *(label for label, _ in column_entries)], lines)

    def pivot_cell(self, here, kinds, spec):
        by_kind = {}
        for name, row in here:
            kind = self.summaries[name]["kind"]
            if kind in by_kind:
                raise ValueError(f"the table of {spec['summary']}: two {kind} rows in one cell ({row['method']}, "
                                 f"{row['dataset']}, {row['metric']}); narrow it with method, dataset or metric")
            by_kind[kind] = row
            self.used.add(name)
        if not by_kind:
            return "-"
        paper = next((row["paper"] for row in by_kind.values() if present(row["paper"])), None)
        text = " / ".join(cell(by_kind[kind]["ours"]) if kind in by_kind else "-" for kind in kinds)
        return text + (f" ({cell(paper)})" if paper is not None else "")


def present(paper):
    """Whether a row's paper column holds a value (summaries write None or '-' for none)."""
    return paper not in (None, "", "-")


def axis(text, rows):
    """(field, [(label, test of a field value)]) of a table axis `field = entry | entry` (entries apart by ' | '):
    an entry is a value or a ~regex, optionally `-> label`; a ~regex without a label expands to one entry per
    group(1) value found."""
    field, entries_text = (part.strip() for part in text.split("=", 1))
    entries = []
    for entry in entries_text.split(" | "):  # spaced, so a regex may hold an alternation
        value, _, label = (part.strip() for part in entry.partition("->"))
        if not value.startswith("~"):
            entries.append((label or value, lambda found, value=value: found == value))
            continue
        try:
            pattern = re.compile(value[1:])
        except re.error as error:
            raise ValueError(f"the table axis {text!r} has a bad regex {value[1:]!r}: {error}") from error
        if label:
            entries.append((label, lambda found, pattern=pattern: pattern.search(found) is not None))
            continue
        groups = dict.fromkeys(match.group(1) for row in rows if (match := pattern.search(row[field])))
        entries += [(group, lambda found, pattern=pattern, group=group:
                     (match := pattern.search(found)) is not None and match.group(1) == group) for group in groups]
    return field, entries


def short_commit(commit):
    return str(commit)[:7] + ("-dirty" if str(commit).endswith("-dirty") else "")


def provenance(name, summary):
    """One line: which file, made by which command, where and when; commands of rows kept from earlier runs."""
    line = (f"- `results/{name}.json` ({summary['kind']}): `{summary['command']}`; {summary['hardware']}; "
            f"commit {short_commit(summary['commit'])}, {summary['date']}.")
    earlier = sorted({provenance_of(summary, row) for row in summary["rows"]} - {(summary["command"],
                                                                                  summary["hardware"])})
    return line + "".join(f" Rows kept from `{command}` ({hardware})." for command, hardware in earlier)


def speed_table(speed, summaries):
    """Our step time against the official code's, with the speed-up and kernels per step where measured; a step
    whose bench summary or row is missing is left out."""
    lines = []
    for entry in speed:
        summary = summaries.get(entry["summary"])
        if summary is None:
            continue

        def value(method, metric):
            found = find_row({entry["summary"]: summary}, entry["summary"], summary["kind"],
                             {"method": method, "metric": metric})
            return found[2] if found else None
        ours = value(entry["method"], entry["time"])
        if ours is None:  # a bench run without this case (e.g. no --compile_flow)
            continue
        official = value(entry["official_method"], entry["time"]) if "official_method" in entry else None
        unit = entry["time"].split(" per ")[0]
        official_cell = (f"{cell(official['ours'])} {unit} (same run)" if official else
                         f"{ours['paper']}, not the same run" if present(ours["paper"]) else "not timed")
        speedup = value(entry["method"], entry["speedup"]) if "speedup" in entry else None
        kernels = value(entry["method"], "kernels per step")
        lines.append([f"{entry['step']} ({cell(ours['scale'])})", f"{cell(ours['ours'])} {unit}", official_cell,
                      f"{cell(speedup['ours'])}x" if speedup else "-", cell(kernels["ours"]) if kernels else "-",
                      provenance_of(summary, ours)[1]])
    return table(["step", "ours", "official code", "speed-up", "kernels per step", "device"], lines)


def sections(summaries, notes):
    grouped = {prefix: [] for prefix in notes}
    for name in summaries:
        grouped.setdefault(section_of(name, notes), []).append(name)
    order = {name: index for index, name in enumerate(SECTION_ORDER)}
    return {prefix: grouped[prefix] for prefix in sorted(grouped, key=lambda p: (order.get(p, len(order)), p))}


def heading_of(text, names, summaries, section):
    if text.startswith("## "):
        return text
    return f"## {summaries[names[0]]['experiment'] if names else section}\n\n{text}".strip()


def full_rows(name, summary):
    """A summary's rows in full, with its provenance once (and a 'made by' column when rows were kept from
    earlier commands)."""
    kept = any(key in row for row in summary["rows"] for key in ("command", "hardware"))
    header = [*ROW_KEYS, *(["made by"] if kept else [])]
    rows = [[cell(row[key]) for key in ROW_KEYS]
            + ([f"`{cell(provenance_of(summary, row)[0])}`, {cell(provenance_of(summary, row)[1])}"] if kept else [])
            for row in summary["rows"]]
    notes = f" {summary['notes']}" if summary.get("notes") else ""
    return [f"### `results/{name}.json`: {summary['experiment']}", "", provenance(name, summary)[2:] + notes, "",
            *table(header, rows)]


def figure_links(folders, output_dir):
    """Links to every PNG under the given folders, by their path below results/figures/."""
    links = [f"[{figure.relative_to(folder.parent).with_suffix('').as_posix()}]"
             f"({Path(os.path.relpath(figure, output_dir)).as_posix()})"
             for folder in folders if folder.is_dir() for figure in sorted(folder.rglob("*.png"))]
    return "Figures: " + ", ".join(links) + "." if links else None


def render_all(results_dir="results", output_dir="."):
    """(RESULTS.md, RESULTS_APPENDIX.md, the README's headline block) as text; links relative to output_dir."""
    summaries, notes = load_summaries(results_dir), load_notes(results_dir)
    claims_data = claims.load_claims(results_dir)
    main = [HEADER.format(appendix=APPENDIX), "", "## Claims of the papers", "",
            *claims.claims_table(claims_data, summaries), "", claims.rules_text(claims_data), "",
            "## Speed: ours against the official code", "", *speed_table(claims_data["speed"], summaries), ""]
    appendix = [APPENDIX_HEADER, ""]
    for section, names in sections(summaries, notes).items():
        compact, rest = split_notes(notes.get(section, ""))
        filler = Filler(summaries, claims_data)
        where = f"results/{section}{NOTES_SUFFIX}"
        compact = heading_of(filler.fill(compact, where), names, summaries, section)
        shown = sorted(filler.used) or names  # notes without tables or placeholders: every summary of the section
        main += [compact, ""] + ([*(provenance(name, summaries[name]) for name in shown), ""] if shown else [])
        heading = compact.splitlines()[0]
        appendix += [heading, "", *([filler.fill(rest, where), ""] if rest else [])]
        for name in names:
            appendix += [*full_rows(name, summaries[name]), ""]
        figures = figure_links([Path(results_dir) / "figures" / folder for folder in sorted({section, *names})],
                               output_dir)
        if figures:
            appendix += [figures, ""]
    headline = [README_START, "", *claims.headline_table(claims_data, summaries), "", *parts_table(summaries), "",
                README_END]
    return "\n".join(main), "\n".join(appendix), "\n".join(headline)


def parts_table(summaries):
    """The parts of README command (1) with their runs' training time (summed over the runs; elapsed_s of each
    metrics.csv, recorded by evaluation.summarize)."""
    rows = []
    for part, name in PARTS.items():
        seconds = summaries.get(name, {}).get("run_seconds")
        time = (f"{sum(seconds.values()) / 60:.0f} min over {len(seconds)} runs" if seconds else
                "not recorded (summary made before evaluation.summarize recorded run times)")
        rows.append([f"`bash reproduce_quick.sh {part}`", f"`results/{name}.json`", time])
    return table(["part of command (1)", "summary", "training time, summed over its runs"], rows)


def with_headline(readme_text, headline):
    """The README with the text between its headline markers replaced; refused when the markers are missing."""
    start, end = readme_text.find(README_START), readme_text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README lacks the headline markers {README_START!r} ... {README_END!r}")
    return readme_text[:start] + headline + readme_text[end + len(README_END):]


def renderings(results_dir, output, readme):
    """{path: rendered text} of RESULTS.md (output), its appendix beside it and the README."""
    main, appendix, headline = render_all(results_dir, output.parent)
    return {output: main, output.parent / APPENDIX: appendix, readme: with_headline(readme.read_text(), headline)}


def write_renderings(results_dir, output, readme):
    for path, text in renderings(Path(results_dir), Path(output), Path(readme)).items():
        write_atomically(path, lambda file, text=text: file.write(text.encode()))
        print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="folder of the summaries, notes and claims.json (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("RESULTS.md"),
                        help="RESULTS.md to write; its appendix goes beside it (default: %(default)s)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"),
                        help="the README whose headline table is rewritten (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when any rendering is stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = [str(path) for path, text in renderings(args.results, args.output, args.readme).items()
                     if not path.exists() or path.read_text() != text]
            if stale:
                raise SystemExit(f"{', '.join(stale)} stale: run python -m evaluation.render_results")
            print(f"{args.output}, its appendix and {args.readme} are up to date")
            return
        write_renderings(args.results, args.output, args.readme)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    main()
