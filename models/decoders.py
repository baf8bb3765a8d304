"""Gaussian generator p(x|z) = N(x; mu_theta(z), sigma_p^2 I) with a fixed variance (CyGen's `set_p_var`)."""
import math

import torch
from torch import nn


class GaussianDecoder(nn.Module):
    def __init__(self, mean_net: nn.Module, variance: float):
        super().__init__()
        self.mean_net, self.variance = mean_net, variance

    def log_prob(self, x, z):
        """log p(x|z) summed over the data dimensions; z may carry leading sample dims [*S, B, D]."""
        mean = self.mean_net(z.reshape(-1, z.shape[-1]))
        mean = mean.view(*z.shape[:-1], *mean.shape[1:])
        squared = (x - mean).pow(2).flatten(start_dim=z.dim() - 1).sum(-1)
        n_dims = math.prod(x.shape[1:])
        return -0.5 * squared / self.variance - 0.5 * n_dims * math.log(2 * math.pi * self.variance)

    def sample(self, z):
        mean = self.mean_net(z)
        return mean + math.sqrt(self.variance) * torch.randn_like(mean)
