"""Result summaries: each experiment writes one small JSON under results/, and RESULTS.md is rendered from them.

A summary holds the rows of a reproduction table (method | dataset | metric | ours | paper | scale) together with the
command that produced them, the git commit, the hardware and the date, so no number in RESULTS.md is typed by hand.
"""
import datetime
from pathlib import Path

from training import git_commit, hardware_description, write_json_atomic  # noqa: F401 (re-exported)

ROW_KEYS = ("method", "dataset", "metric", "ours", "paper", "scale")


def write_summary(path, *, experiment, rows, command, kind, hardware, notes=""):
    """Write results/<name>.json. kind is 'quick' (CPU-scale) or 'full'; each row needs ROW_KEYS."""
    if kind not in ("quick", "full"):
        raise ValueError(f"kind must be 'quick' or 'full', not {kind!r}")
    for row in rows:
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"summary row {row} lacks {missing}")
    summary = {"experiment": experiment, "kind": kind, "command": command, "commit": git_commit(),
               "hardware": hardware, "date": datetime.date.today().isoformat(), "notes": notes, "rows": rows}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, summary)
    return summary

