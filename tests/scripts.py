"""Running the repo's scripts in a subprocess, shared by the smoke tests of every method."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from models import compiled_steps

REPO = Path(__file__).resolve().parent.parent
# Tests of --compile_flow run where torch.compile can build its kernels.
needs_compiler = pytest.mark.skipif(not compiled_steps.compiler_available(),
                                    reason="torch.compile needs a C/C++ compiler")


def run_script(script, *args, check=True, timeout=300):
    """Run `python script args` from the repo root; with check, fail the test with the script's stderr."""
    result = subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def assert_speed_rows(rows, profiled_methods):
    """A bench summary's rows: timings positive, and each profiled method with its kernels (> 0), host syncs and peak
    memory (> 0) per step (bench.timing.profile_step); the values are never compared with targets here."""
    for row in rows:
        if isinstance(row["ours"], (int, float)) and row["metric"] != "host syncs per step":
            assert row["ours"] > 0, row
    profiled = {(row["method"], row["metric"]): row["ours"] for row in rows}
    for method in profiled_methods:
        assert profiled[(method, "kernels per step")] > 0 and profiled[(method, "peak memory (MB)")] > 0, method
        assert isinstance(profiled[(method, "host syncs per step")], int), method


def read_metrics(run_dir, drop=("elapsed_s",)):
    """Rows of a run folder's metrics.csv as dicts of strings, without the wall-clock columns."""
    with open(Path(run_dir) / "metrics.csv") as file:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(file)]
