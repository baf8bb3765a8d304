"""Networks of the conditional VAE for MNIST quadrant completion (Sohn, Lee, Yan, NeurIPS 2015; Pyro's cvae example).

Every network reads and writes flat 784-pixel images; the task (which pixels are input, which are output) lives in
objectives/cvae.py. Outputs are Bernoulli logits, never sigmoids, so the likelihood is computed stably.
"""
from typing import NamedTuple

import torch
from torch import nn

N_PIXELS = 784


def mlp(in_dim, hidden_1, hidden_2, out_dim):
    return nn.Sequential(nn.Linear(in_dim, hidden_1), nn.ReLU(), nn.Linear(hidden_1, hidden_2), nn.ReLU(),
                         nn.Linear(hidden_2, out_dim))


class BaselineNet(nn.Module):
    """The deterministic NN: masked image -> logits of all 784 pixels (784-500-500-784 by default)."""

    def __init__(self, hidden_1=500, hidden_2=500):
        super().__init__()
        self.net = mlp(N_PIXELS, hidden_1, hidden_2, N_PIXELS)

    def forward(self, x):
        return self.net(x)


class DiagonalGaussian(NamedTuple):
    loc: torch.Tensor
    scale: torch.Tensor

    def rsample(self, n_samples, generator=None):
        """[S, B, D] reparameterised samples; an explicit generator keeps evaluation off the training RNG."""
        noise = torch.randn((n_samples, *self.loc.shape), device=self.loc.device, dtype=self.loc.dtype,
                            generator=generator)
        return self.loc + self.scale * noise

    def log_prob(self, z):
        """log N(z; loc, diag(scale^2)) summed over the latent dimensions; z may carry a leading sample dim."""
        # validate_args=False: the argument checks read the tensors on the host, a sync per call inside the step.
        return torch.distributions.Normal(self.loc, self.scale, validate_args=False).log_prob(z).sum(-1)


def analytic_kl(q: DiagonalGaussian, p: DiagonalGaussian):
    """KL(q || p) of two diagonal Gaussians, summed over dimensions in float32 (bfloat16 inputs under --precision
    bf16; Pyro's example used a 1-sample estimate)."""
    return torch.distributions.kl_divergence(
        torch.distributions.Normal(q.loc, q.scale, validate_args=False),
        torch.distributions.Normal(p.loc, p.scale, validate_args=False)).sum(-1, dtype=torch.float32)


class GaussianNet(nn.Module):
    """784 pixels -> diagonal Gaussian over z; the scale is exp of the last layer, as in Pyro's Encoder."""

    def __init__(self, z_dim, hidden_1, hidden_2):
        super().__init__()
        self.net = mlp(N_PIXELS, hidden_1, hidden_2, 2 * z_dim)

    def forward(self, image):
        loc, log_scale = self.net(image).chunk(2, dim=-1)
        return DiagonalGaussian(loc, log_scale.exp())


class CVAE(nn.Module):
    """prior p(z|x), recognition q(z|x,y) and generation p(y|x,z) (or Pyro's p(y|z) with gen_uses_x=False).

    The prior and recognition nets read completed images (see objectives/cvae.py): the input pixels of x with the
    missing ones filled by the baseline's prediction, respectively by the true y.
    """

    def __init__(self, z_dim=200, hidden_1=500, hidden_2=500, gen_uses_x=True):
        super().__init__()
        self.z_dim, self.gen_uses_x = z_dim, gen_uses_x
        self.prior_net = GaussianNet(z_dim, hidden_1, hidden_2)
        self.recognition_net = GaussianNet(z_dim, hidden_1, hidden_2)
        self.generation_net = mlp(z_dim + (N_PIXELS if gen_uses_x else 0), hidden_1, hidden_2, N_PIXELS)

    def generation_logits(self, x, z):
        """Logits of p(y|x,z) for all 784 pixels; z [S, B, D] -> [S, B, 784], one batched pass over all samples."""
        if self.gen_uses_x:
            z = torch.cat([x.expand(z.shape[0], *x.shape), z], dim=-1)
        return self.generation_net(z)
