#!/usr/bin/env bash
# CyGen's toy experiments (paper section 5.1): pinwheel and 8gaussians x {CyGen(PT), CyGen, no-compatibility
# ablation, VAE, DAE, BiGAN, GibbsNet}.
#   bash run_toy.sh            full length (30000 iterations, batch 1000; DAE / GibbsNet 12000), as the paper
#   bash run_toy.sh --quick    CPU scale: batch 200, 1500 iterations (500 of them ELBO pretraining; DAE 3000),
#                              4 instead of 128 discriminator updates per step; two runs at a time, one thread each
# Extra arguments after the mode go to every run (e.g. --device cuda; on CPU --compile_flow true). Runs land in
# runs/toy[_quick]/<data>-<name>; runs use --resume: a finished run is a no-op, an interrupted one continues.
# TOY_RUNS="cygen_pt no_compat" runs only those names; TOY_JOBS=N (or --jobs N) runs N at a time (default 1,
# quick 2, with GPUs one per GPU); launch.py's flags (--gpus, --seeds, --executor slurm: python launch.py run --help)
# pass through. The table: results/toy_<mode>.json (python -m evaluation.summarize toy, made by launch.py once every
# run is done); a subset keeps the other runs' rows.
set -euo pipefail
cd "$(dirname "$0")"
source run_common.sh
extra=("$@")
subset_from TOY_RUNS

if [ "$mode" = quick ]; then
    root=runs/toy_quick
    common=(--batch_size 200 --niters 1500 --eval_every 250 --eval_batch_size 500 --plot_every 1500)
    pretrain=(--pretr_method elbo --pretr_niter 500)
    dae_length=(--niters 3000 --plot_every 3000)
    gibbsnet_length=()
    adversarial=(--n_discr_upd 4)
    parallel=2
else
    root=runs/toy
    common=()
    pretrain=(--pretr_method elbo --pretr_niter 1000)
    dae_length=(--niters 12000)
    gibbsnet_length=(--niters 12000)
    adversarial=()
    parallel=1
fi

run() {  # run <data> <name> <flags...>
    local data=$1 name=$2; shift 2
    add_run "$data-$name" main_toy.py --data "$data" "$@"
}

jobs_list=()
for data in pinwheel 8gaussians; do
    # The official script slows the adversarial baselines down on 8gaussians.
    gan_lr=(); [ "$data" = 8gaussians ] && gan_lr=(--lr 1e-4 --lr_d 3e-5)
    jobs_list+=("$data cygen_pt --method cygen ${pretrain[*]}"
                "$data cygen --method cygen"
                "$data no_compat --method cygen ${pretrain[*]} --w_cm 0"
                "$data vae --method elbo"
                "$data dae --method dae --lr 1e-4 ${dae_length[*]}"
                "$data bigan --method bigan ${adversarial[*]} ${gan_lr[*]}"
                "$data gibbsnet --method gibbsnet --n_gibbs 2 ${gibbsnet_length[*]} ${adversarial[*]} ${gan_lr[*]}")
done

max_jobs=${TOY_JOBS:-}
for job in "${jobs_list[@]}"; do
    name=$(cut -d' ' -f2 <<< "$job")
    in_subset "$name" || continue
    # shellcheck disable=SC2086
    run $job
done
summarize_and_render toy
