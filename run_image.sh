#!/usr/bin/env bash
# CyGen's image experiments, paper Table 7 (downstream accuracy): VAE, DAE and CyGen(PT) on MNIST and SVHN.
#   bash run_image.sh            the paper's protocol: 100 ELBO warm-up epochs, then 10 (MNIST) / 20 (SVHN) CyGen
#                                epochs (MNIST: from the VAE run's warm-up checkpoint); VAE = warm-up + 100 ELBO epochs and DAE = 100 epochs (the official script);
#                                batch 100, the whole training set, 10 downstream trials. Meant for a GPU.
#   bash run_image.sh --quick    CPU scale, MNIST and Fashion-MNIST: the encoder trained on a 5,000-image subset at
#                                batch 50, 6 warm-up epochs (decoder variance 0.05 instead of 0.5: with 0.5 a warm-up
#                                this short collapses q onto the prior) + 1 epoch, the compatibility term on 10 of
#                                every 50 images, DAE 7 epochs at lr 3e-4; 5 downstream trials of 50 classifier epochs
#                                on all 60,000 training images, as the paper's classifier; two runs at a time.
#                                Also the MNIST VAE / CyGen(PT) pair at the paper's warm-up decoder variance 0.5,
#                                after 1 and after 5 epochs from that warm-up (the Table 7 study of RESULTS.md).
# IMAGE_RUNS="mnist-vae_pvar05 mnist-cygen_pt_pvar05_e5" runs only those runs (a run a flag refers to, e.g. the
# warm-up's, must be among them); the summary keeps the other runs' rows.
# Extra arguments after the mode go to every run (e.g. --device cuda); launch.py's flags (--jobs, --gpus, --seeds,
# --executor slurm: python launch.py run --help) pass through. Runs land in runs/image[_quick]/<data>-<name> with
# --resume; the summary goes to results/image_<mode>.json (python -m evaluation.summarize image).
# Samples for FID: --save_samples of the CyGen(PT) and VAE runs (500 quick, 10,000 full).
set -euo pipefail
cd "$(dirname "$0")"
source run_common.sh
extra=("$@")
subset_from IMAGE_RUNS

if [ "$mode" = quick ]; then
    root=runs/image_quick
    datasets=(mnist fmnist)
    common=(--n_train 5000 --downstream_n_train 60000 --batch_size 50 --n_trials 5 --downstream_epochs 50
            --gen_niter 50)
    samples=500
    vae=(--warm_up 6 --warm_p_var 0.05 --epochs 1)
    cygen=(--warm_up 6 --warm_p_var 0.05 --epochs 1 --compat_rows 10)
    dae=(--epochs 7 --lr 3e-4 --lr_ratio_dec 1)
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
    in_subset "$data-$name" || return 0
    add_run "$data-$name" main_image.py --dataset "$data" "$@"
}

for data in "${datasets[@]}"; do
    # CyGen(PT) starts from the VAE run's warm-up checkpoint as soon as that run has written it ({run}/file: launch.py
    # waits for the file): the same 100 epochs are not trained twice
    warm_start=(--warm_start "{$data-vae}/warmup_checkpoint.pt")
    if [ "$data" = svhn ]; then  # the official SVHN settings; its CyGen warm-up (KL weight 0.01) is not the VAE's
        cygen_data=(--epochs 20 --kl_beta 0.01 --vae_clamp 0.1)
    else
        cygen_data=(--epochs 10 "${warm_start[@]}")
    fi
    [ "$mode" = quick ] && cygen_data=("${warm_start[@]}")
    run "$data" vae --method elbo "${vae[@]}" --save_samples "$samples"
    run "$data" dae --method dae --set_p_var 1 "${dae[@]}"
    run "$data" cygen_pt --method cygen "${cygen[@]}" "${cygen_data[@]}" --save_samples "$samples"
done
if [ "$mode" = quick ]; then
    # Which ingredient decides Table 7's VAE gap at this scale: the same VAE and CyGen(PT) runs with the paper's
    # warm-up decoder variance 0.5 (a KL weight 10x the quick 0.05's relative to the reconstruction), 1 and 5
    # epochs of each method from the same warm-up
    pvar=(--warm_up 6 --warm_p_var 0.5)
    pvar_warm_start=(--warm_start "{mnist-vae_pvar05}/warmup_checkpoint.pt")
    run mnist vae_pvar05 --method elbo "${pvar[@]}" --epochs 1
    run mnist cygen_pt_pvar05 --method cygen "${pvar[@]}" --epochs 1 --compat_rows 10 "${pvar_warm_start[@]}"
    run mnist vae_pvar05_e5 --method elbo "${pvar[@]}" --epochs 5 "${pvar_warm_start[@]}"
    run mnist cygen_pt_pvar05_e5 --method cygen "${pvar[@]}" --epochs 5 --compat_rows 10 "${pvar_warm_start[@]}"
fi
summarize_and_render image
