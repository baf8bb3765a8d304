"""The MLP encoder and decoder of InfoVAE / LagVAE (Zhao, Song, Ermon, UAI 2018) on binarised 28x28 images.

q(z|x) = N(mean(x), diag(std(x)^2)): 784-w-w softplus, linear heads for the mean and the log-std.
p(x|z) = Bernoulli(sigmoid(logits(z))): z-w-w-784 softplus.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from data.images import to_float

X_DIM = 28 * 28


def binarize(x_uint8, generator=None):
    """Binary images drawn pixel-wise with probability intensity / 255 (MNIST's dynamic binarisation)."""
    return torch.bernoulli(to_float(x_uint8), generator=generator)


def softplus_mlp(in_dim, width, out_dim):
    return nn.Sequential(nn.Linear(in_dim, width), nn.Softplus(), nn.Linear(width, width), nn.Softplus(),
                         nn.Linear(width, out_dim))


@dataclass
class GaussianSample:
    """z ~ q(z|x) with the parameters that drew it; the fields importance_weighted_log_px reads are z and log_q."""
    z: torch.Tensor        # [S, B, D]
    log_q: torch.Tensor    # [S, B]
    mean: torch.Tensor     # [B, D]
    log_std: torch.Tensor  # [B, D]


def diagonal_gaussian_log_prob(z, mean, log_std):
    """log N(z; mean, diag(exp(log_std)^2)) summed over the last dimension, broadcasting leading dims."""
    standardized = (z - mean) * torch.exp(-log_std)
    return (-0.5 * standardized.pow(2) - log_std).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class GaussianMLPEncoder(nn.Module):
    def __init__(self, z_dim=64, width=1024, x_dim=X_DIM):
        super().__init__()
        self.z_dim = z_dim
        self.net = softplus_mlp(x_dim, width, 2 * z_dim)

    def posterior(self, x):
        """(mean, log_std) of q(z|x), each [B, D]."""
        mean, log_std = self.net(x.flatten(1)).chunk(2, dim=-1)
        return mean, log_std

    def forward(self, x, n_samples: int = 1) -> GaussianSample:
        mean, log_std = self.posterior(x)
        z = mean + torch.exp(log_std) * torch.randn(n_samples, *mean.shape, device=x.device)
        return GaussianSample(z, diagonal_gaussian_log_prob(z, mean, log_std), mean, log_std)


class BernoulliMLPDecoder(nn.Module):
    def __init__(self, z_dim=64, width=1024, x_dim=X_DIM):
        super().__init__()
        self.net = softplus_mlp(z_dim, width, x_dim)

    def logits(self, z):
        return self.net(z)

    def log_prob(self, x, z):
        """log p(x|z) summed over the pixels of binary x [B, ...]; z may carry leading sample dims [*S, B, D]."""
        logits = self.net(z)
        target = x.flatten(1).expand_as(logits)
        return -functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
