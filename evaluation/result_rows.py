"""Reading the summaries under results/ back: loading them, finding rows by family, kind, method, dataset and
metric, and reading a row's number (a float, or 'mean ± std', or 'mean ± std (n seeds)').

A family is a summary-name prefix: family 'image' with kind 'quick' covers image_quick.json, image_speed.json and
every other image_*.json whose kind is quick, so a row is found by what it says, not by which file it sits in.
"""
import json
import re
from pathlib import Path

from evaluation.summary import ROW_KEYS

SUMMARY_KEYS = ("experiment", "kind", "command", "commit", "hardware", "date", "rows")
KINDS = ("quick", "full")
# Data files under results/ that are not summaries: the claims and the speed table's layout.
NOT_SUMMARIES = ("claims.json",)
DECIMAL = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
NUMBER = re.compile(rf"\s*([-+]?{DECIMAL})(?:\s*±\s*({DECIMAL}))?")


def load_summaries(results_dir):
    """{name: summary} of every results/<name>.json, sorted by name; a malformed one is refused by name."""
    summaries = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        if path.name in NOT_SUMMARIES:
            continue
        summary = read_json(path)
        missing = [key for key in SUMMARY_KEYS if key not in summary]
        missing += [f"rows[{index}].{key}" for index, row in enumerate(summary.get("rows", []))
                    for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"{path} lacks {missing}: write it with evaluation.summary.write_summary")
        if summary["kind"] not in KINDS:
            raise ValueError(f"{path} has kind {summary['kind']!r}; it must be one of {', '.join(KINDS)}")
        summaries[path.stem] = summary
    return summaries


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it with git checkout {path}") from error


def in_family(name, family):
    return name == family or name.startswith(family + "_")


def family_rows(summaries, family, kind):
    """(summary name, summary, row) of every row of the family's summaries of this kind."""
    return [(name, summary, row) for name, summary in summaries.items()
            if in_family(name, family) and summary["kind"] == kind for row in summary["rows"]]


def matches(row, selector):
    """Whether a row fits a selector: method, dataset, metric exact where given, metric_regex searched."""
    if any(key in selector and row[key] != selector[key] for key in ("method", "dataset", "metric")):
        return False
    return "metric_regex" not in selector or re.search(selector["metric_regex"], row["metric"]) is not None


def find_rows(summaries, family, kind, selector):
    """Every (summary name, summary, row) of the family and kind that fits the selector."""
    return [found for found in family_rows(summaries, family, kind) if matches(found[2], selector)]


def find_row(summaries, family, kind, selector):
    """The one row the selector names, or None when no summary of this kind holds it (not run). With
    pick: 'max' the row whose metric_regex group 1 is the largest number (the sweep's last e1, say)."""
    found = find_rows(summaries, family, kind, selector)
    if selector.get("pick") == "max" and found:
        return max(found, key=lambda item: float(re.search(selector["metric_regex"], item[2]["metric"]).group(1)))
    if len(found) > 1:
        raise ValueError(f"{family} ({kind}): {len(found)} rows fit {selector} "
                         f"({', '.join(name for name, _, _ in found)}); name the method, dataset and metric")
    return found[0] if found else None


def parse_number(value, where):
    """(mean, std) of a row's 'ours' or 'paper' value: a number (std 0) or a string opening with 'mean' or
    'mean ± std' ('93.92 ± 0.15', '0.42 ± 0.03 (3 seeds)', '~4.6e3 (step 30000)' reads 4600)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: {value!r} is not a number")
    if isinstance(value, (int, float)):
        return float(value), 0.0
    match = NUMBER.match(str(value).lstrip("~"))
    if not match:
        raise ValueError(f"{where}: {value!r} does not open with a number")
    return float(match.group(1)), float(match.group(2) or 0.0)


def provenance_of(summary, row):
    """The command and hardware a row was made with (a row kept by merge_summary carries its own)."""
    return row.get("command", summary["command"]), row.get("hardware", summary["hardware"])
