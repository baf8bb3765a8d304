#!/usr/bin/env bash
# README command (1): install what is needed, then run the quick CPU-scale reproduction of every method built so
# far (for now: CyGen and its baselines on the 2-D toys, under ~15 minutes on 2 cores). Figures and metrics land in
# runs/; `python -m evaluation.summarize_toy runs/toy_quick` prints the table.
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
bash run_toy.sh --quick
