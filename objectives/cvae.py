"""The MNIST quadrant task and the CVAE's objective and conditional log-likelihood estimators (Sohn et al., 2015).

x is the image with its output pixels set to -1; y holds only the output pixels. Indexing the output pixels, rather
than passing -1 targets to a BCE, avoids pyro#3273 (PyTorch >= 2.1 rejects targets outside [0, 1]). All estimators
return one value per image in nats, summed over the output pixels.
"""
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from data.images import to_float
from models.cvae import analytic_kl

QUADRANT_SETTINGS = (1, 2, 3)
SIDE = 28


def input_mask(n_quadrants, device="cpu"):
    """Boolean [784], True on input pixels. Pyro's choice: 1 = bottom-left, 2 = left half, 3 = all but bottom-right."""
    if n_quadrants not in QUADRANT_SETTINGS:
        raise ValueError(f"n_quadrants must be one of {QUADRANT_SETTINGS}, got {n_quadrants}")
    half = SIDE // 2
    mask = torch.zeros(SIDE, SIDE, dtype=torch.bool, device=device)
    mask[half:, :half] = True
    if n_quadrants >= 2:
        mask[:half, :half] = True
    if n_quadrants == 3:
        mask[:half, half:] = True
    return mask.flatten()


class QuadrantTask:
    """Splits uint8 image batches into (x, y) on their device in one indexed operation."""

    def __init__(self, n_quadrants, device="cpu"):
        self.n_quadrants = n_quadrants
        self.input_mask = input_mask(n_quadrants, device)
        self.output_index = (~self.input_mask).nonzero().squeeze(1)

    def split(self, images_uint8):
        image = to_float(images_uint8).flatten(1)
        return image.masked_fill(~self.input_mask, -1.0), image[:, self.output_index]

    def complete(self, x, y):
        """The full image: x's input pixels with y (true or predicted output pixels) in the missing ones."""
        return x.index_copy(-1, self.output_index, y)

    def output_logits(self, logits):
        return logits[..., self.output_index]


def bernoulli_log_likelihood(logits, y):
    """log prod_i Bern(y_i; sigmoid(logits_i)) over the output pixels; y may be continuous in [0, 1] (as in the paper
    and Pyro); logits [*S, B, n_out] broadcast against y [B, n_out]."""
    return -F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none").sum(-1)


# ---- the deterministic baseline ------------------------------------------------------------------------------

def baseline_negative_cll(baseline, task, x, y):
    """The NN's masked BCE per image [B]: its training loss and its negative CLL."""
    return -bernoulli_log_likelihood(task.output_logits(baseline(x)), y)


def baseline_prediction(baseline, task, x):
    """The frozen baseline's output pixels; no_grad guarantees the CVAE loss never reaches the baseline (the
    gradient leak fixed in ucals/cvae's "Fixing serious bug")."""
    with torch.no_grad():
        return torch.sigmoid(task.output_logits(baseline(x)))


# ---- the CVAE ------------------------------------------------------------------------------------------------

class Conditionals(NamedTuple):
    prior: object  # p(z|x), a models.cvae.DiagonalGaussian
    posterior: object  # q(z|x,y)


def conditionals(cvae, baseline, task, x, y):
    """p(z|x) reads x completed by the baseline's prediction y_hat; q(z|x,y) reads x completed by y."""
    prior = cvae.prior_net(task.complete(x, baseline_prediction(baseline, task, x)))
    posterior = cvae.recognition_net(task.complete(x, y))
    return Conditionals(prior, posterior)


def log_likelihood(cvae, task, x, y, z):
    """log p(y|x,z) [S, B] for z [S, B, D]."""
    return bernoulli_log_likelihood(task.output_logits(cvae.generation_logits(x, z)), y)


def negative_elbo(cvae, baseline, task, x, y, generator=None):
    """-ELBO per image [B] with one reparameterised z ~ q(z|x,y) and the analytic KL; also its two parts."""
    prior, posterior = conditionals(cvae, baseline, task, x, y)
    reconstruction = -log_likelihood(cvae, task, x, y, posterior.rsample(1, generator))[0]
    kl = analytic_kl(posterior, prior)
    return reconstruction + kl, reconstruction, kl


def log_mean_exp(values):
    return torch.logsumexp(values, dim=0) - math.log(values.shape[0])


# The estimators take log_p_y_given_z (z [S, B, D] -> [S, B]) so that the tests can check them on a linear-Gaussian
# model whose log-likelihood is known in closed form; for the CVAE it is partial(log_likelihood, cvae, task, x, y).

def log_importance_weights(log_p_y_given_z, parts, n_samples, generator=None):
    """log p(y|x,z_s) + log p(z_s|x) - log q(z_s|x,y) with z_s ~ q(z|x,y), [S, B]."""
    z = parts.posterior.rsample(n_samples, generator)
    return log_p_y_given_z(z) + parts.prior.log_prob(z) - parts.posterior.log_prob(z)


def negative_cll_monte_carlo(log_p_y_given_z, parts, n_samples, generator=None):
    """The paper's "Monte Carlo" CLL: -log (1/S) sum_s p(y|x,z_s), z_s ~ p(z|x)."""
    return -log_mean_exp(log_p_y_given_z(parts.prior.rsample(n_samples, generator)))


def negative_cll_importance(log_p_y_given_z, parts, n_samples, generator=None):
    """The paper's "importance sampling" CLL with q(z|x,y) as the proposal: exp(-value) is unbiased for p(y|x), so
    the value is an upper bound on -log p(y|x) in expectation that tightens as S grows."""
    return -log_mean_exp(log_importance_weights(log_p_y_given_z, parts, n_samples, generator))


def negative_elbo_particles(log_p_y_given_z, parts, n_particles=10, generator=None):
    """The number in Pyro's table: Trace_ELBO(num_particles=10), i.e. -mean_s log w_s with a sampled KL."""
    return -log_importance_weights(log_p_y_given_z, parts, n_particles, generator).mean(0)
