#!/usr/bin/env bash
# Sample quality of every method with one protocol (compute_gen_fid.py: pytorch-fid's FID, the KID of the same
# features, and the repo's MNIST classifier metrics), from the runs of the other run scripts, into
# results/fid_<experiment>_<mode>.json.
#   bash run_fid.sh --quick   CPU scale: 500 samples per method (the quick runs' --save_samples), 2,000 for the
#                             MNIST test-vs-train reference; ~10 images/s on 2 CPU cores
#   bash run_fid.sh           full scale (after the full runs): 10,000 samples per method; meant for a GPU
#   bash run_fid.sh --quick image sym   only some parts (reference, image, sym; default all three)
#   SYM_FID_SPLIT=all bash run_fid.sh --quick sym   the symmetric HVAEs against train + test (the seed's reference)
# A method whose runs are missing is skipped with a message. Reference statistics are cached, never recomputed, and
# the reference summary is only made when it does not exist yet. RESULTS.md is re-rendered at the end.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
mode=full
if [ "${1:-}" = "--quick" ]; then mode=quick; shift; fi
parts=()
while [ $# -gt 0 ] && [[ "$1" =~ ^(reference|image|sym)$ ]]; do parts+=("$1"); shift; done
[ ${#parts[@]} -gt 0 ] || parts=(reference image sym)
extra=("$@")
wanted() { [[ " ${parts[*]} " == *" $1 "* ]]; }
if [ "$mode" = quick ]; then n=500; n_reference=2000; suffix=_quick; else n=10000; n_reference=10000; suffix=; fi
fid=("$PYTHON" compute_gen_fid.py --dataset mnist --split train --metric all --kind "$mode" ${extra[@]+"${extra[@]}"})

reference=results/fid_mnist_reference.json; [ "$mode" = full ] && reference=results/fid_mnist_reference_full.json
if wanted reference && [ ! -f "$reference" ]; then
    "${fid[@]}" dataset:mnist:test noise:uniform --n_samples "$n_reference" --summary "$reference" \
        --method "MNIST test set" "uniform noise"
fi

image=runs/image$suffix
if ! wanted image; then :
elif [ -f "$image/mnist-cygen_pt/samples/samples_cygen_$n.pt" ] && [ -f "$image/mnist-vae/samples/samples_elbo_$n.pt" ]; then
    "${fid[@]}" "$image/mnist-cygen_pt/samples/samples_cygen_$n.pt" "$image/mnist-vae/samples/samples_elbo_$n.pt" \
        --n_samples "$n" --summary "results/fid_image$suffix.json" --method "CyGen(PT), SGLD" "VAE, prior"
else
    echo "run_fid.sh: no CyGen / VAE image samples in $image (bash run_image.sh${suffix:+ --quick} first); skipped" >&2
fi

# Each symmetric-HVAE setting with both runs: random-code and limiting-chain samples of both methods, scored
# against its dataset's training split (binarised for MNIST, whose model has binary pixels); SYM_FID_SPLIT=all
# scores against train + test (70k), the seed code's reference, into results/fid_symvae_<setting>_all70k<mode>.json.
sym=runs/symvae$suffix
sym_split=${SYM_FID_SPLIT:-train}
found_sym=0
for setting in mnist-ladder mnist-reverse fmnist-ladder; do
    wanted sym && [ -f "$sym/$setting-sym/checkpoint.pt" ] && [ -f "$sym/$setting-elbo/checkpoint.pt" ] || continue
    found_sym=1 files=() methods=()
    for method in sym elbo; do
        for chain in random limiting; do
            out="$sym/$setting-$method/samples_${chain}_$n.pt"
            [ -f "$out" ] || "$PYTHON" generate.py --run_dir "$sym/$setting-$method" --save_samples "$n" \
                --mode "$chain" --out "$out" ${extra[@]+"${extra[@]}"}
            label=Symmetric; [ "$method" = elbo ] && label=ELBO
            [ "$setting" = mnist-reverse ] && label+=" (reverse)"  # beside mnist-ladder's rows in one table
            files+=("$out") methods+=("$label, $chain")
        done
    done
    dataset=${setting%-*} reference=()
    [ "$dataset" = mnist ] && reference=(--binarize_reference 0.4375)
    name=fid_symvae; [ "$setting" = mnist-ladder ] || name+="_${setting//-/_}"
    [ "$sym_split" = train ] || name+="_${sym_split}70k"
    "$PYTHON" compute_gen_fid.py "${files[@]}" --dataset "$dataset" --split "$sym_split" --metric all \
        --kind "$mode" --n_samples "$n" "${reference[@]}" --summary "results/$name$suffix.json" \
        --experiment "$name$suffix" --method "${methods[@]}" ${extra[@]+"${extra[@]}"}
done
if wanted sym && [ "$found_sym" = 0 ]; then
    echo "run_fid.sh: no symmetric-HVAE runs in $sym (bash run_sym.sh${suffix:+ --quick} first); skipped" >&2
fi
"$PYTHON" -m evaluation.render_results  # each part wrote its own summary: no merge, only the rendering
