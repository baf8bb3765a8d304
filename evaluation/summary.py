"""Result summaries: each experiment writes one small JSON under results/, and RESULTS.md is rendered from them.

A summary holds the rows of a reproduction table (method | dataset | metric | ours | paper | scale) together with the
command that produced them, the git commit, the hardware and the date, so no number in RESULTS.md is typed by hand.
"""
import datetime
import json
import os
import platform
from pathlib import Path

import torch

from training import git_commit, write_json_atomic

ROW_KEYS = ("method", "dataset", "metric", "ours", "paper", "scale")


def hardware_description(device="cpu"):
    """'NVIDIA H100 80GB HBM3' for CUDA, else the CPU model with the thread count torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            model = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"


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


def read_summaries(results_dir="results"):
    return [json.loads(path.read_text()) for path in sorted(Path(results_dir).glob("*.json"))]
