#!/usr/bin/env bash
# CVAE vs the deterministic NN on MNIST quadrant completion (Sohn et al. 2015; Pyro's cvae tutorial), 1 / 2 / 3 input
# quadrants, then the CLL table (results/cvae_<mode>.json) and figures (results/figures/cvae/<mode>_q<N>.png).
#   bash run_cvae.sh            full: 50k train / 10k held-out validation, up to 101 epochs with early stopping
#                               (patience 3), whole test set, S = 100 (CPU-feasible on one thread; --device cuda works)
#   bash run_cvae.sh --quick    CPU scale: 20k train / 5k validation, at most 12 epochs, 5000 test images
# Extra arguments after the mode go to every run. Runs land in runs/cvae[_quick]/q<N>-{nn,cvae} and use --resume:
# a finished run only re-evaluates, an interrupted one continues. PARALLEL=2 runs two quadrant settings at a time.
set -euo pipefail
cd "$(dirname "$0")"
source run_common.sh
extra=("$@")
parallel=${PARALLEL:-1}

if [ "$mode" = quick ]; then
    root=runs/cvae_quick
    common=(--n_train 20000 --n_valid 5000 --epochs 12 --n_test 5000)
else
    root=runs/cvae
    common=()
fi

run() {  # run <dir> <flags...>
    run_in_folder run_cvae main_cvae.py "$@"
}

setting() {  # the NN, then the CVAE on top of it
    local q=$1
    run "$root/q$q-nn" --model nn --quadrants "$q" && \
    run "$root/q$q-cvae" --model cvae --quadrants "$q" --baseline_run "$root/q$q-nn"
}

for q in 1 2 3; do
    wait_for_slot "$parallel"
    setting "$q" &
done
wait_for_all
[ "$failed" = 0 ] || exit 1
device=$(device_flag ${extra[@]+"${extra[@]}"})
OMP_NUM_THREADS=1 "$PYTHON" -m evaluation.summarize_cvae "$root" --kind "$mode" --figures results/figures/cvae \
    --summary "results/cvae_$mode.json" --command "$invocation" --device "$device"
