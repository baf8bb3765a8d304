"""The papers' claims against our numbers: results/claims.json holds each claim (its source in the paper, the
paper's values, the summary rows it is measured on and its rule's parameters), and verdict() decides from the
numbers alone, at each scale, whether it is reproduced. No verdict is typed.

A claim's measure turns rows into one number with its noise (std over trials or seeds, combined in quadrature):
  value        the row's number                        difference   row A - row B
  ratio        row A / row B (compared in decades)     count_within rows within `within` of their paper column
  fraction     k/n read from the row by `pattern`      sequence     the rows' numbers in order
The paper's value goes through the same measure (a pair for difference and ratio). Rules (kind, tolerance, scale
linear or log10) are in RULES below, stated in RESULTS.md under the claims table.
"""
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.result_rows import find_row, find_rows, parse_number, provenance_of, read_json

NOISE_SIGMAS = 2  # "within noise": within 2 combined standard deviations, or the claim's tolerance if larger
REPRODUCED = "reproduced within noise"
SMALLER = "same direction, smaller effect"
LARGER = "same direction, larger effect"
SAME_DIRECTION = "same direction (the paper gives no size)"
NO_EFFECT = "no effect beyond noise"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"
RULES = {
    "match": f"ours within max({NOISE_SIGMAS} sigma, tolerance) of the paper's value: {REPRODUCED}; else "
             f"{NOT_REPRODUCED}.",
    "effect": f"a signed effect (a gap, or a ratio in decades): within max({NOISE_SIGMAS} sigma, tolerance) of the "
              f"paper's: {REPRODUCED}; else within that of no effect: {NO_EFFECT}; else the paper's sign: "
              f"{SMALLER} / {LARGER}; else {NOT_REPRODUCED}.",
    "direction": f"the paper states the sign only: beyond max({NOISE_SIGMAS} sigma, tolerance) of no effect in "
                 f"that direction: {SAME_DIRECTION}; within it: {NO_EFFECT}; else {NOT_REPRODUCED}.",
    "all": f"k of n comparisons hold: all: reproduced (n of n); none: {NOT_REPRODUCED}; else partly reproduced "
           "(k of n).",
    "decreasing": f"strictly decreasing, as the paper's: reproduced (decreasing); else {NOT_REPRODUCED}.",
}
CLAIMS_FILE = "claims.json"
RUN_SCRIPT = re.compile(r"\bbash \S+\.sh\b")  # a run script's invocation, which reproduces its rows


def load_claims(results_dir):
    """The claims file: {"papers": {name: citation}, "reproduce": {family: {kind: command}}, "claims": [...],
    "speed": [...]}; a claim's "headline" (a short name) puts it in the README's table too."""
    path = Path(results_dir) / CLAIMS_FILE
    if not path.exists():
        raise ValueError(f"{path} is missing: RESULTS.md opens with its claims (git checkout {path} restores it)")
    data = read_json(path)
    for claim in data["claims"]:
        missing = [key for key in ("id", "source", "claim", "metric", "family", "measure", "rows", "rule")
                   if key not in claim]
        if missing:
            raise ValueError(f"{CLAIMS_FILE}: claim {claim.get('id', claim)} lacks {missing}")
        if claim["rule"]["kind"] not in RULES:
            raise ValueError(f"{CLAIMS_FILE}: claim {claim['id']} has rule {claim['rule']['kind']!r}, not one of "
                             f"{', '.join(RULES)}")
    return data


@dataclass
class Measured:
    """A claim's number at one scale: value (float, (k, n) or a list) and noise (std), and the (summary name,
    summary, row) it came from."""
    value: object
    noise: float = 0.0
    sources: list = field(default_factory=list)


def combine(measure, parts, claim):
    """The measure of parts [(mean, std), ...] (ours or the paper's)."""
    if measure == "value":
        (mean, std), = parts
        return Measured(mean, std)
    if measure == "difference":
        (a, sa), (b, sb) = parts
        return Measured(a - b, math.hypot(sa, sb))
    if measure == "ratio":
        (a, sa), (b, sb) = parts
        if a <= 0 or b <= 0:
            raise ValueError(f"{CLAIMS_FILE}: claim {claim['id']} is a ratio of positive numbers, not {a} / {b}")
        return Measured(a / b, a / b * math.hypot(sa / a, sb / b))
    if measure == "sequence":
        return Measured([mean for mean, _ in parts])
    raise ValueError(f"{CLAIMS_FILE}: claim {claim['id']} has measure {measure!r}")


def measure_ours(claim, summaries, kind):
    """Measured for our summaries of this kind, or None when a row it needs is missing (not run at this scale)."""
    family, measure = claim["family"], claim["measure"]
    where = f"claim {claim['id']} ({kind})"
    if measure == "count_within":  # every matching row is one comparison, against its own paper column
        found = find_rows(summaries, family, kind, claim["rows"][0])
        if not found:
            return None
        within = [abs(parse_number(row["ours"], where)[0] - parse_number(row["paper"], where)[0]) <= claim["within"]
                  for _, _, row in found]
        return Measured((sum(within), len(within)), sources=found)
    found = [find_row(summaries, family, kind, selector) for selector in claim["rows"]]
    if None in found:
        return None
    if measure == "fraction":
        (_, _, row), = found
        match = re.search(claim["pattern"], str(row["ours"]))
        if not match:
            raise ValueError(f"{where}: {row['ours']!r} has no {claim['pattern']!r}")
        return Measured((int(match.group(1)), int(match.group(2))), sources=found)
    measured = combine(measure, [parse_number(row["ours"], where) for _, _, row in found], claim)
    measured.sources = found
    return measured


def measure_paper(claim):
    """The paper's value through the claim's measure, or None where the paper gives only a direction or 'all'."""
    paper = claim.get("paper")
    if paper is None or claim["measure"] in ("count_within", "fraction"):
        return None
    parts = [paper] if claim["measure"] == "value" else paper
    return combine(claim["measure"], [tuple(part) if isinstance(part, list) else (part, 0.0) for part in parts],
                   claim)


def on_scale(measured, rule):
    """(value, noise) in the rule's scale: linear, or log10 (a ratio's decades, noise to first order)."""
    if rule.get("scale", "linear") == "linear":
        return measured.value, measured.noise
    if measured.value <= 0:
        raise ValueError(f"a log10 rule needs a positive value, not {measured.value}")
    return math.log10(measured.value), measured.noise / (measured.value * math.log(10))


def verdict(rule, ours, paper):
    """The verdict of a rule (results/claims.json 'rule') on our Measured and the paper's (None: no number)."""
    kind = rule["kind"]
    if ours is None:
        return NOT_RUN
    if kind == "all":
        k, n = ours.value
        return f"reproduced ({n} of {n})" if k == n else NOT_REPRODUCED if k == 0 else f"partly reproduced ({k} of {n})"
    if kind == "decreasing":
        values = ours.value
        return "reproduced (decreasing)" if all(a > b for a, b in zip(values, values[1:])) else NOT_REPRODUCED
    value, noise = on_scale(ours, rule)
    tolerance = rule.get("tolerance", 0.0)
    no_effect = abs(value) <= max(NOISE_SIGMAS * noise, tolerance)
    if kind == "direction":
        if no_effect:
            return NO_EFFECT
        return SAME_DIRECTION if math.copysign(1, value) == rule["sign"] else NOT_REPRODUCED
    paper_value, paper_noise = on_scale(paper, rule)
    if abs(value - paper_value) <= max(NOISE_SIGMAS * math.hypot(noise, paper_noise), tolerance):
        return REPRODUCED
    if kind == "match":
        return NOT_REPRODUCED
    if no_effect:
        return NO_EFFECT
    if math.copysign(1, value) != math.copysign(1, paper_value):
        return NOT_REPRODUCED
    return SMALLER if abs(value) < abs(paper_value) else LARGER


def formatted(measured, claim):
    """A Measured as a table cell: '93.92 ± 0.15', '+0.35 ± 0.24', '3.95x', '2/4', '20.6, 9.5, 4.4'."""
    value, measure = measured.value, claim["measure"]
    if measure in ("count_within", "fraction"):
        return f"{value[0]}/{value[1]}"
    if measure == "sequence":
        return ", ".join(f"{item:.4g}" for item in value)
    if measure == "ratio":
        return f"{value:.3g}x"
    sign = "+" if measure == "difference" and value > 0 else ""
    text = f"{sign}{value:.4g}"
    return f"{text} ± {measured.noise:.2g}" if measured.noise else text


def paper_cell(claim, paper):
    if paper is not None:
        return formatted(paper, claim)
    if claim["rule"]["kind"] == "direction":
        return "> 0" if claim["rule"]["sign"] > 0 else "< 0"
    return claim["rule"]["kind"]  # 'all'


def assess(claim, summaries, reproduce):
    """{kind: Measured or None}, the verdict cell and the command cell of one claim."""
    ours = {kind: measure_ours(claim, summaries, kind) for kind in claim.get("scales", ("quick", "full"))}
    paper = measure_paper(claim)
    decided = "full" if ours.get("full") is not None else "quick" if ours.get("quick") is not None else None
    if decided is None:
        scale = claim.get("scales", ("quick", "full"))[0]
        return ours, NOT_RUN, claim.get("reproduce") or reproduce[claim["family"]][scale]
    _, summary, row = ours[decided].sources[0]
    command, _ = provenance_of(summary, row)
    if not RUN_SCRIPT.search(command):  # summaries made before evaluation.summarize recorded the summarizer's call
        command = claim.get("reproduce") or reproduce[claim["family"]][decided]
    return ours, f"{verdict(claim['rule'], ours[decided], paper)} ({decided})", command


def claims_table(data, summaries):
    """The claims table's lines, then the rules it applies."""
    columns = ("claim", "metric", "paper", "ours (quick)", "ours (full)", "verdict", "how to reproduce")
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for claim in data["claims"]:
        ours, verdict_cell, command = assess(claim, summaries, data["reproduce"])
        cells = [f"{claim['claim']} ({claim['source']})", claim["metric"], paper_cell(claim, measure_paper(claim))]
        cells += [formatted(ours[kind], claim) if ours.get(kind) is not None else
                  "not in this protocol" if kind not in ours else "-" for kind in ("quick", "full")]
        cells += [verdict_cell, f"`{command}`"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


def rules_text(data):
    """The papers the sources name, then how each rule decides."""
    papers = "Papers: " + "; ".join(f"{name}: {citation}" for name, citation in data["papers"].items()) + "."
    return (papers + "\n\nVerdicts are computed from the numbers (`evaluation/claims.py`, parameters per claim in "
            "`results/claims.json`), at full scale where it ran, else quick; sigma combines the stds of ours and "
            "the paper's (over trials or seeds). " + " ".join(f"**{kind}**: {text}" for kind, text in RULES.items()))


def headline_table(data, summaries):
    """The README's short table: the claims marked headline, ours against the paper with the verdict."""
    lines = ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
    for claim in data["claims"]:
        if not claim.get("headline"):
            continue
        ours, verdict_cell, _ = assess(claim, summaries, data["reproduce"])
        decided = next((ours[kind] for kind in ("full", "quick") if ours.get(kind) is not None), None)
        cells = [claim["headline"], paper_cell(claim, measure_paper(claim)),
                 formatted(decided, claim) if decided else "-", verdict_cell]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines
