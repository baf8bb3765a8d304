#!/usr/bin/env bash
# README command (2): install what is needed, then run the whole test suite on the CPU (a few minutes).
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
# One thread: on a loaded 2-core machine two threads were many times slower than one.
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 exec "${PYTHON:-python3}" -m pytest -q "$@"
