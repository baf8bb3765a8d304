"""The prior-based and prior-free baselines that share CyGen's two conditionals: ELBO (VAE) and DAE."""
import math

import torch


def standard_normal_log_prob(z):
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def elbo_loss(encoder, decoder, x, n_mc=1, kl_beta=1.0):
    """Negative ELBO with an N(0, I) prior and an M-sample Monte-Carlo KL. Returns (loss, reconstruction, kl)."""
    sample = encoder(x, n_mc)
    reconstruction = -decoder.log_prob(x, sample.z).mean()
    kl = (sample.log_q - standard_normal_log_prob(sample.z)).mean()
    return reconstruction + kl_beta * kl, reconstruction, kl


def dae_loss(encoder, decoder, x):
    """-log p(x|z) at the data x with z ~ q(z|x): noise enters through the encoder, no prior term.

    The official code evaluated p at a resample x~ ~ p(.|z) instead of x, which has zero gradient (bug B3).
    """
    return -decoder.log_prob(x, encoder(x).z).mean()


def importance_weighted_log_px(encoder, decoder, x, n_mc):
    """IWAE estimate of log p(x) under the N(0, I) prior, [B]."""
    sample = encoder(x, n_mc)
    log_w = standard_normal_log_prob(sample.z) + decoder.log_prob(x, sample.z) - sample.log_q
    return torch.logsumexp(log_w, dim=0) - math.log(n_mc)
