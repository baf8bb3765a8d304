#!/usr/bin/env bash
# Sample quality of every method with one protocol (compute_gen_fid.py: pytorch-fid's FID, the KID of the same
# features, and the repo's MNIST classifier metrics), from the runs of the other run scripts, into
# results/fid_<experiment>_<mode>.json.
#   bash run_fid.sh --quick   CPU scale: 500 samples per method (the quick runs' --save_samples), 2,000 for the
#                             MNIST test-vs-train reference; ~10 images/s on 2 CPU cores
#   bash run_fid.sh           full scale (after the full runs): 10,000 samples per method; meant for a GPU
#   bash run_fid.sh --quick image sym   only some parts (reference, image, sym; default all three)
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

sym=runs/symvae$suffix
if ! wanted sym; then :
elif [ -f "$sym/mnist-ladder-sym/checkpoint.pt" ] && [ -f "$sym/mnist-ladder-elbo/checkpoint.pt" ]; then
    files=() methods=()
    for method in sym elbo; do
        for chain in random limiting; do
            out="$sym/mnist-ladder-$method/samples_${chain}_$n.pt"
            [ -f "$out" ] || "$PYTHON" generate.py --run_dir "$sym/mnist-ladder-$method" --save_samples "$n" \
                --mode "$chain" --out "$out" ${extra[@]+"${extra[@]}"}
            label=Symmetric; [ "$method" = elbo ] && label=ELBO
            files+=("$out") methods+=("$label, $chain")
        done
    done
    "${fid[@]}" "${files[@]}" --n_samples "$n" --binarize_reference 0.4375 \
        --summary "results/fid_symvae$suffix.json" --method "${methods[@]}"
else
    echo "run_fid.sh: no mnist-ladder runs in $sym (bash run_sym.sh${suffix:+ --quick} first); skipped" >&2
fi
"$PYTHON" -m evaluation.render_results  # each part wrote its own summary: no merge, only the rendering
