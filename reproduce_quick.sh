#!/usr/bin/env bash
# README command (1): install what is needed, then the quick CPU-scale reproduction of every method; each part ends
# by merging its summary into results/ and re-rendering RESULTS.md.
#   bash reproduce_quick.sh              all, in this order: toy image cvae lagvae sym fid (several hours on 2 cores)
#   bash reproduce_quick.sh toy cvae     a subset (toy: ~15 min; cvae, lagvae, sym: ~30-60 min each; image: ~3 h,
#                                        two runs at a time: each run's minutes are in results/image_quick.json)
# Each experiment's runs land in runs/<experiment>_quick/ with --resume, so a second call only finishes what is left.
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
experiments=("$@")
[ ${#experiments[@]} -gt 0 ] || experiments=(toy image cvae lagvae sym fid)
for experiment in "${experiments[@]}"; do
    case "$experiment" in
        toy) bash run_toy.sh --quick ;;
        image) bash run_image.sh --quick ;;
        cvae) bash run_cvae.sh --quick ;;
        lagvae) bash sweep_lagvae.sh --quick ;;
        sym) bash run_sym.sh --quick ;;
        fid) bash run_fid.sh --quick ;;
        *) echo "reproduce_quick.sh: unknown experiment '$experiment' (toy image cvae lagvae sym fid)" >&2; exit 2 ;;
    esac
done
