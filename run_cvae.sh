#!/usr/bin/env bash
# CVAE vs the deterministic NN on MNIST quadrant completion (Sohn et al. 2015; Pyro's cvae tutorial), 1 / 2 / 3 input
# quadrants, then the CLL table (results/cvae_<mode>.json) and figures (results/figures/cvae/<mode>_q<N>.png).
#   bash run_cvae.sh            full: 50k train / 10k held-out validation, up to 101 epochs with early stopping
#                               (patience 3), whole test set, S = 100 (CPU-feasible on one thread; --device cuda works)
#   bash run_cvae.sh --quick    CPU scale: 20k train / 5k validation, at most 12 epochs, 5000 test images
# Extra arguments after the mode go to every run. Runs land in runs/cvae[_quick]/q<N>-{nn,cvae} and use --resume:
# an interrupted one continues. PARALLEL=N (or --jobs N) runs N at a time (each CVAE after its NN); launch.py's
# flags (--gpus, --seeds, --executor slurm: python launch.py run --help) pass through.
set -euo pipefail
cd "$(dirname "$0")"
source run_common.sh
extra=("$@")
max_jobs=${PARALLEL:-}

if [ "$mode" = quick ]; then
    root=runs/cvae_quick
    common=(--n_train 20000 --n_valid 5000 --epochs 12 --n_test 5000)
else
    root=runs/cvae
    common=()
fi

for q in 1 2 3; do  # the NN, then the CVAE on top of it
    add_run "q$q-nn" main_cvae.py --model nn --quadrants "$q"
    add_run "q$q-cvae" main_cvae.py --model cvae --quadrants "$q" --baseline_run "{q$q-nn}"
done
summarize_and_render cvae
