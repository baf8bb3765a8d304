#!/usr/bin/env bash
# The paper's Pareto sweep (Zhao, Song, Ermon, UAI 2018, figure "mutual information vs consistency"):
#   1. a plain VAE (InfoVAE with mi=0, e1=1, e2=0); its final training -ELBO is the centre of the e1 grid;
#   2. LagVAE with mi=+1 and mi=-1 for e1 = VAE -ELBO + offsets (e2 = 5, above the MMD noise floor ~2.5);
#   3. InfoVAE points with fixed weights (mi=+-1, e1 in {0.5, 1}, e2=1: KL weight / nll weight 1/3, 1/2, 2, 3);
#   4. every final checkpoint re-evaluated on all its training images and the whole test set (-ELBO and the
#      bracket [InfoNCE, min(L1Out, KL)] on I_q(x;z); cached in <run>/final_evaluation.json), then the table,
#      the figure results/figures/lagvae/pareto_<mode>.png and results/lagvae_<mode>.json.
#   bash sweep_lagvae.sh            full scale, the paper's config (widths 1024, 55k images, 5000 epochs; GPU),
#                                   offsets 1..13 as the paper's 84..96 around its VAE's 83
#   bash sweep_lagvae.sh --quick    CPU scale: widths 256, 10k images, Adam lr 1e-3; the VAE trains 50 epochs
#                                   (2000 steps), every other point starts from it and trains 25 more (multiplier
#                                   lr 0.05); the grid's centre is the VAE continued as long, offsets 0 3 7 12;
#                                   14 runs, one thread each
# Extra arguments after the mode go to every run (e.g. --device cuda); launch.py's flags (--gpus, --executor slurm:
# python launch.py run --help) pass through. Runs land in runs/lagvae[_quick]/<name> and use --resume: a finished
# run is a no-op, an interrupted one continues. LAGVAE_PARALLEL=N (or --jobs N) runs N at a time.
set -euo pipefail
cd "$(dirname "$0")"
source run_common.sh
extra=("$@")
for arg in ${extra[@]+"${extra[@]}"}; do
    case $arg in --seeds|--seeds=*)
        echo "error: sweep_lagvae.sh centres its e1 grid on one VAE's -ELBO, so it runs one seed at a time: pass" \
            "--seed S instead of --seeds (and move runs/lagvae[_quick] away between seeds)" >&2
        exit 2 ;;
    esac
done

if [ "$mode" = quick ]; then
    root=runs/lagvae_quick
    common=(--width 256 --n_train 10000 --epochs 50 --eval_every 250 --n_eval 2000 --iwae_k 50 --lr 1e-3)
    lagvae=(--lambda_lr 0.05)
    # Each point starts from the trained VAE and trains 25 more epochs: in 2000 steps from scratch the early
    # violation (-ELBO far above e1) drives l1 so high that it cannot come back down within the run.
    start=(--init_from "{vae}" --epochs 25)
    offsets=(0 3 7 12)
else
    root=runs/lagvae
    common=()
    lagvae=(--lambda_lr 1e-4)
    start=()  # from scratch, as the paper
    offsets=(1 2 3 4 5 6 7 8 9 10 11 12 13)
fi
e2=5
max_jobs=${LAGVAE_PARALLEL:-}

# Two tables: the VAE first, as the e1 grid is centred on its -ELBO
vae=(--method infovae --mi 0 --e1 1 --e2 0)
add_run vae main_lagvae.py "${vae[@]}"
reference=vae
if [ ${#start[@]} -gt 0 ]; then  # the points train longer than the VAE: centre the grid on a VAE trained as long
    add_run vae_continued main_lagvae.py "${vae[@]}" "${start[@]}"
    reference=vae_continued
fi
launch_table
vae_elbo=$("$PYTHON" -m evaluation.lagvae elbo "$root/$reference")
echo "[sweep_lagvae] $reference training -ELBO $vae_elbo; e1 = round(it) + ${offsets[*]}"

# the second table, the points ({vae} names the VAE run of the first), then the sweep's summary
table=()
for offset in "${offsets[@]}"; do
    e1=$(awk -v c="$vae_elbo" -v o="$offset" 'BEGIN { printf "%d", c + o + 0.5 }')
    for mi in 1 -1; do
        add_run "lagvae_mi${mi}_e1+$(printf %02d "$offset")" main_lagvae.py --method lagvae --mi "$mi" --e1 "$e1" \
            --e2 "$e2" "${lagvae[@]}" ${start[@]+"${start[@]}"}
    done
done
for mi in 1 -1; do
    for weight in 0.5 1; do
        add_run "infovae_mi${mi}_e1_$weight" main_lagvae.py --method infovae --mi "$mi" --e1 "$weight" --e2 1 \
            ${start[@]+"${start[@]}"}
    done
done
summarize_and_render lagvae
