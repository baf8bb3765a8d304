#!/usr/bin/env bash
# CyGen's image experiments, paper Table 7 (downstream accuracy): VAE, DAE and CyGen(PT) on MNIST and SVHN.
#   bash run_image.sh            the paper's protocol: 100 ELBO warm-up epochs, then 10 (MNIST) / 20 (SVHN) CyGen
#                                epochs; VAE = warm-up + 100 ELBO epochs and DAE = 100 epochs (the official script);
#                                batch 100, the whole training set, 10 downstream trials. Meant for a GPU.
#   bash run_image.sh --quick    CPU scale, MNIST only: a 5,000-image training subset, 4 warm-up epochs + 1 epoch,
#                                the compatibility term on 25 of every 100 images, DAE 5 epochs at the warm-up's
#                                learning rate, 5 downstream trials of 50 classifier epochs; two runs at a time.
# Extra arguments after the mode go to every run (e.g. --device cuda). Runs land in runs/image[_quick]/<data>-<name>
# with --resume; the summary goes to results/image_<mode>.json (python -m evaluation.summarize_image).
# Samples for FID: --save_samples of the CyGen(PT) and VAE runs (500 quick, 10,000 full).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
invocation="bash run_image.sh $*"
mode=full
if [ "${1:-}" = "--quick" ]; then mode=quick; shift; fi
extra=("$@")

if [ "$mode" = quick ]; then
    root=runs/image_quick
    datasets=(mnist)
    common=(--n_train 5000 --n_trials 5 --downstream_epochs 50 --gen_niter 50)
    samples=500
    vae=(--warm_up 4 --epochs 1)
    cygen=(--warm_up 4 --epochs 1 --compat_rows 25)
    dae=(--epochs 5 --lr 1e-3 --lr_ratio_dec 1)
    parallel=2
else
    root=runs/image
    datasets=(mnist svhn)
    common=()
    samples=10000
    vae=(--warm_up 100 --epochs 100)
    cygen=(--warm_up 100)
    dae=(--epochs 100)
    parallel=1
fi

run() {  # run <data> <name> <flags...>
    local data=$1 name=$2; shift 2
    local dir=$root/$data-$name
    mkdir -p "$dir"
    echo "[run_image] $dir"
    OMP_NUM_THREADS=1 "$PYTHON" main_image.py --dataset "$data" --run_dir "$dir" --resume "${common[@]}" "$@" \
        ${extra[@]+"${extra[@]}"} > "$dir/log.txt" 2>&1 \
        || { echo "[run_image] $dir failed, see $dir/log.txt" >&2; return 1; }
}

jobs_list=()
for data in "${datasets[@]}"; do
    if [ "$data" = svhn ]; then  # the official SVHN settings
        cygen_data=(--epochs 20 --kl_beta 0.01 --vae_clamp 0.1)
    else
        cygen_data=(--epochs 10 --kl_beta 1 --vae_clamp 100)
    fi
    [ "$mode" = quick ] && cygen_data=()
    jobs_list+=("$data cygen_pt --method cygen ${cygen[*]} ${cygen_data[*]} --save_samples $samples"
                "$data vae --method elbo ${vae[*]} --save_samples $samples"
                "$data dae --method dae --set_p_var 1 ${dae[*]}")
done

failed=0
for job in "${jobs_list[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || failed=1; done
    # shellcheck disable=SC2086
    run $job &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
"$PYTHON" -m evaluation.summarize_image "$root" --kind "$mode" --command "$invocation"
exit $failed
