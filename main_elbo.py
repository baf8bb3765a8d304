"""The ELBO baseline for the binary-latent HVAE of main_sym.py: one Adam over encoder and decoder, gradients through
the binary latents by the ZGR estimator (= DARN(1/2)).

    python main_elbo.py --dataset mnist --encoder ladder --device cuda             # README setting, 200k iterations
    python main_elbo.py --arch mlp --mlp_width 300 --conditional_width 300 --batch_size 128 --lr 3e-4 --niters 20000 \\
        --device cpu                                                                 # CPU scale (run_sym.sh --quick)

Ladder encoder: analytic per-bit KLs; reverse encoder: the one-sample KL (objectives/symvae.py). Flags, logging,
checkpoints and resume are main_sym.py's.
"""
import compat  # noqa: F401  (first: torchvision shim)

import contextlib

import torch

from main_sym import minimise, train
from objectives.symvae import elbo_loss
from training import run_main


class ElboUpdate:
    def __init__(self, model, lr, autocast=contextlib.nullcontext):
        self.model, self.autocast = model, autocast
        self.optimizers = {"model": torch.optim.Adam(model.parameters(), lr=lr, foreach=True)}

    def __call__(self, x):
        with self.autocast():
            loss, terms = elbo_loss(self.model, x)
        minimise(self.optimizers["model"], loss)
        return terms


if __name__ == "__main__":
    run_main(lambda: train("elbo", ElboUpdate, __doc__))
