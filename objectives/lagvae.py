"""InfoVAE and Lagrangian VAE objectives (Zhao, Song, Ermon, UAI 2018; shared/specs/lagvae.md).

Consistency terms per batch: nll = -log p(x|z), kl = KL(q(z|x) || N(0, I)) in closed form (the official code used
a one-sample Monte-Carlo estimate; the analytic KL has the same expectation and no variance), mmd = 1e4 * MMD(z_q, z_p)
with z_p ~ N(0, I) of the batch size. The mutual information I_q(x;z) is pushed in the direction of `mi` through
    mi <= 0: I_q <= E KL(q(z|x) || p(z))          -> the KL weight becomes l1 - mi
    mi >  0: I_q >= H(x) - E[-log p(x|z)]         -> the nll weight becomes l1 + mi
InfoVAE fixes (l1, l2) = (e1, e2) as weights; LagVAE learns them by projected gradient ascent on the Lagrangian.
"""
import math

import torch

MMD_SCALE = 1e4
MULTIPLIER_RANGE = (0.001, 100.0)  # the official code's clip, applied after every ascent step


def squared_distances(a, b):
    """||a_i - b_j||^2 as an [n, m] matrix through one matmul (no [n, m, d] tensor)."""
    squared = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1) - 2 * a @ b.T
    return squared.clamp_min(0)  # rounding can make the diagonal of a == b slightly negative


def mmd_kernel(a, b):
    """k(x, y) = exp(-mean_d (x - y)^2 / d) = exp(-||x - y||^2 / d^2), the official code's very wide kernel."""
    return torch.exp(-squared_distances(a, b) / a.shape[-1] ** 2)


def mmd(z_q, z_p):
    """Biased (V-statistic) estimate of MMD^2 between two samples [n, d] and [m, d]."""
    return mmd_kernel(z_q, z_q).mean() + mmd_kernel(z_p, z_p).mean() - 2 * mmd_kernel(z_q, z_p).mean()


def mmd_noise_floor(batch_size, z_dim):
    """E[1e4 * mmd] between two independent samples of N(0, I): (2 / n) (1 - E k(x, x')), where
    ||x - x'||^2 ~ 2 chi^2_d gives E k = (1 + 4 / d^2)^(-d / 2). An e2 at or below it cannot be met."""
    mean_cross_kernel = (1 + 4 / z_dim ** 2) ** (-z_dim / 2)
    return MMD_SCALE * 2 / batch_size * (1 - mean_cross_kernel)


def gaussian_kl(mean, log_std):
    """KL(N(mean, diag(exp(log_std)^2)) || N(0, I)) summed over the latent dimensions in float32 (bfloat16 inputs
    under --precision bf16), [B]."""
    return (0.5 * (mean.pow(2) + torch.exp(2 * log_std) - 1) - log_std).sum(-1, dtype=torch.float32)


def consistency_terms(encoder, decoder, x):
    """Batch means of nll, kl and 1e4 * MMD(q(z), p(z)) for binary x, one z ~ q(z|x) per image."""
    sample = encoder(x)
    z = sample.z[0]
    nll = -decoder.log_prob(x, z).mean()
    kl = gaussian_kl(sample.mean, sample.log_std).mean()
    return {"nll": nll, "kl": kl, "mmd": MMD_SCALE * mmd(z, torch.randn_like(z))}


def information_objective(terms, mi, l1, l2):
    """The part of the Lagrangian that depends on the model (the whole InfoVAE loss, with l1 = e1, l2 = e2).

    mi = 0, l1 = 1, l2 = 0 is the negative ELBO of a plain VAE.
    """
    if mi > 0:
        return (l1 + mi) * terms["nll"] + l1 * terms["kl"] + l2 * terms["mmd"]
    return l1 * terms["nll"] + (l1 - mi) * terms["kl"] + l2 * terms["mmd"]


def lagrangian(terms, mi, l1, l2, e1, e2):
    """LagVAE's Lagrangian: minimised by the model, maximised by the multipliers (l1, l2)."""
    return information_objective(terms, mi, l1, l2) - l1 * e1 - l2 * e2


def constraint_violations(terms, e1, e2):
    """dL/d(l1, l2) = (nll + kl - e1, mmd - e2): positive where a constraint is violated."""
    return torch.stack([terms["nll"] + terms["kl"] - e1, terms["mmd"] - e2]).detach()


def multiplier_optimizer(multipliers, lr):
    # The official code used TensorFlow's RMSProp with decay 0.9 on the multipliers.
    return torch.optim.RMSprop([multipliers], lr=lr, alpha=0.9)


def multiplier_ascent_step(multipliers, optimizer, violations):
    """One projected gradient-ascent step: raise a multiplier whose constraint is violated, lower it otherwise,
    then clip to MULTIPLIER_RANGE."""
    multipliers.grad = -violations  # the optimizer descends, the multipliers ascend
    optimizer.step()
    with torch.no_grad():
        multipliers.clamp_(*MULTIPLIER_RANGE)


def initial_multipliers(device):
    return torch.ones(2, device=device, requires_grad=True)


def multipliers_at_clip(multipliers):
    """Which of (l1, l2) sit at the upper clip: the sign of a constraint that cannot be met."""
    return [math.isclose(value, MULTIPLIER_RANGE[1]) for value in multipliers.tolist()]
