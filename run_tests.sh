#!/usr/bin/env bash
# README command (2): install what is needed, then run the whole test suite on the CPU (a few minutes).
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
# One thread per worker: on a loaded 2-core machine two threads were many times slower than one. Two workers
# (TEST_WORKERS=N for another count; 0 runs in this process): CI's 2 cores; the suite took 6.9 instead of 12.1 min.
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 exec "${PYTHON:-python3}" -m pytest -q -n "${TEST_WORKERS:-2}" "$@"
