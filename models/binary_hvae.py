"""The hierarchical VAE with binary latents of symmetric equilibrium learning (Flach, Schlesinger, Shekhovtsov 2024).

Decoder p(z0) p(z1|z0) p(x|z1): z0 uniform bits, z1 bits from an MLP with a skip, x from a transposed-conv (or, at
CPU scale, MLP) network. Encoder in one of two factorisation orders: "ladder" q(z0|x) q(z1|z0,x), whose z1 logits
add the decoder's p(z1|z0) logits to an x-dependent term, and "reverse" (wake-sleep) q(z1|x) q(z0|z1).
The networks are here; the learning rules are in objectives/symvae.py.
"""
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = math.prod(IMAGE_SHAPE)
ENCODER_ORDERS = ("ladder", "reverse")
ARCHITECTURES = ("conv", "mlp")
LIKELIHOODS = {"mnist": "bernoulli", "fmnist": "gaussian"}
DECODER_ACTIVATIONS = {"mnist": nn.Tanh, "fmnist": nn.ReLU}  # the official code's choice per dataset


def bernoulli_log_prob(logits, value):
    """log Bern(value; sigmoid(logits)) summed over all but the batch dimension.

    Written as value * logits - softplus(logits) so that it is differentiable in `value` too: the ELBO's one-sample
    KL of the reverse encoder passes ZGR gradients through the sampled bits. Summed in float32: under bfloat16
    autocast (--precision bf16) a bfloat16 sum of 784 pixels would keep ~3 significant digits.
    """
    return (value * logits - F.softplus(logits)).flatten(1).sum(1, dtype=torch.float32)


def gaussian_log_prob(x, mean, log_sigma):
    """log N(x; mean, exp(log_sigma)^2) summed over all but the batch dimension; log_sigma a scalar tensor."""
    standardized = (x - mean) * torch.exp(-log_sigma)
    return (-0.5 * standardized.square() - log_sigma - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def bernoulli_sample(probability):
    # A diverged network's nan probabilities would stop torch.bernoulli with a bare range error (a device-side
    # assert on CUDA); drawn as 0 instead, the nan reaches the loss terms, which the loop reports by step and term.
    return torch.bernoulli(probability.nan_to_num(0.0))


def draw_bernoulli(logits):
    return bernoulli_sample(torch.sigmoid(logits))


def tanh_mlp(n_in, width, n_hidden, n_out):
    """n_hidden tanh layers of `width`, then a linear output."""
    layers, size = [], n_in
    for _ in range(n_hidden):
        layers += [nn.Linear(size, width), nn.Tanh()]
        size = width
    return nn.Sequential(*layers, nn.Linear(size, n_out))


class SkipMLP(nn.Module):
    """logits = MLP(input) + a bias-free linear skip of the input: p(z1|z0) and the reverse encoder's q(z0|z1)."""

    def __init__(self, n_in, n_out, width, n_hidden):
        super().__init__()
        self.mlp = tanh_mlp(n_in, width, n_hidden, n_out)
        self.skip = nn.Linear(n_in, n_out, bias=False)

    def forward(self, inputs):
        return self.mlp(inputs) + self.skip(inputs)


def conv_trunk(width, channels=32):
    """x [B,1,28,28] -> [B, width] (28 -> 27 -> 13 -> 11 -> 9 -> 4 -> 1), tanh everywhere as the official code."""
    c = channels
    shapes = [(1, c, 3, 1, 1), (c, c, 2, 1, 0), (c, 2 * c, 3, 2, 0), (2 * c, 2 * c, 3, 1, 0), (2 * c, 2 * c, 3, 1, 0),
              (2 * c, 4 * c, 3, 2, 0), (4 * c, width, 4, 1, 0)]
    layers = []
    for n_in, n_out, kernel, stride, padding in shapes:
        layers += [nn.Conv2d(n_in, n_out, kernel, stride, padding), nn.Tanh()]
    return nn.Sequential(*layers, nn.Flatten())


def mlp_trunk(width):
    return nn.Sequential(nn.Flatten(), nn.Linear(N_PIXELS, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh())


def conv_image_net(nz1, activation, channels=32):
    """z1 [B, nz1] -> pixel logits / means [B,1,28,28] (1 -> 4 -> 9 -> 11 -> 13 -> 27 -> 28)."""
    c = channels
    shapes = [(nz1, 4 * c, 4, 1), (4 * c, 2 * c, 3, 2), (2 * c, 2 * c, 3, 1), (2 * c, 2 * c, 3, 1), (2 * c, c, 3, 2),
              (c, c, 2, 1)]
    layers = [nn.Unflatten(1, (nz1, 1, 1))]
    for n_in, n_out, kernel, stride in shapes:
        layers += [nn.ConvTranspose2d(n_in, n_out, kernel, stride), activation()]
    return nn.Sequential(*layers, nn.Conv2d(c, 1, 3, 1, padding=1))


def mlp_image_net(nz1, activation, width):
    return nn.Sequential(nn.Linear(nz1, width), activation(), nn.Linear(width, width), activation(),
                         nn.Linear(width, N_PIXELS), nn.Unflatten(1, IMAGE_SHAPE))


class ImageLikelihood(nn.Module):
    """p(x|z1): Bernoulli pixels (MNIST) or Gaussian pixels with one learned scalar log sigma, init 0 (FMNIST)."""

    def __init__(self, net, kind):
        super().__init__()
        self.net, self.kind = net, kind
        self.log_sigma = nn.Parameter(torch.zeros(())) if kind == "gaussian" else None

    def log_prob(self, x, z1):
        output = self.net(z1)
        if self.kind == "bernoulli":
            return bernoulli_log_prob(output, x)
        return gaussian_log_prob(x, output, self.log_sigma)

    def sample(self, z1):
        output = self.net(z1)
        if self.kind == "bernoulli":
            return draw_bernoulli(output)
        return output + torch.exp(self.log_sigma) * torch.randn_like(output)

    def mode(self, z1):
        """The image shown for a code: binary pixels at logits > 0, or the Gaussian mean clipped to [0, 1]."""
        output = self.net(z1)
        return (output > 0).float() if self.kind == "bernoulli" else output.clamp(0, 1)


class LadderEncoder(nn.Module):
    """q(z0|x) = Bern(sigmoid(a0)), q(z1|z0,x) = Bern(sigmoid(f01(z0) + a1)), f01 the decoder's p(z1|z0) logits.

    a1 = Linear(h); a0 = MLP(h) + Linear(a1) with h the trunk's features; the MLP keeps the trunk's width,
    width-width-width-nz0, as the official code has it (600 on MNIST, 1000 on Fashion-MNIST).
    """
    order = "ladder"

    def __init__(self, trunk, width, nz0, nz1):
        super().__init__()
        self.trunk = trunk
        self.z1_head = nn.Linear(width, nz1)
        self.z0_mlp = tanh_mlp(width, width, 2, nz0)
        self.z0_skip = nn.Linear(nz1, nz0, bias=False)

    def forward(self, x):
        features = self.trunk(x)
        a1 = self.z1_head(features)
        return self.z0_mlp(features) + self.z0_skip(a1), a1


class ReverseEncoder(nn.Module):
    """q(z1|x) = Bern(sigmoid(Linear(h))), q(z0|z1) = Bern(sigmoid(SkipMLP(z1)))."""
    order = "reverse"

    def __init__(self, trunk, width, nz0, nz1, conditional_width):
        super().__init__()
        self.trunk = trunk
        self.z1_head = nn.Linear(width, nz1)
        self.q_z0_given_z1 = SkipMLP(nz1, nz0, conditional_width, 3)

    def forward(self, x):
        return self.z1_head(self.trunk(x))


class Posterior(NamedTuple):
    z0: torch.Tensor
    z1: torch.Tensor
    logits_z0: torch.Tensor  # of q(z0|x) (ladder) or q(z0|z1) (reverse)
    logits_z1: torch.Tensor  # of q(z1|z0,x) (ladder) or q(z1|x) (reverse)
    prior_logits_z1: torch.Tensor | None  # p(z1|z0) at the sampled z0, computed on the way (ladder only)


class BinaryHVAE(nn.Module):
    def __init__(self, p_z1_given_z0, p_x_given_z1, encoder, nz0):
        super().__init__()
        self.p_z1_given_z0, self.p_x_given_z1, self.encoder = p_z1_given_z0, p_x_given_z1, encoder
        self.nz0 = nz0

    def decoder_parameters(self):
        return [*self.p_z1_given_z0.parameters(), *self.p_x_given_z1.parameters()]

    def sample_prior_z0(self, n):
        device = self.p_z1_given_z0.skip.weight.device
        return torch.bernoulli(torch.full((n, self.nz0), 0.5, device=device))

    def sample_p(self, n):
        """Ancestral sample (z0, z1, x) of the decoder, x sampled rather than its mode."""
        z0 = self.sample_prior_z0(n)
        z1 = draw_bernoulli(self.p_z1_given_z0(z0))
        return z0, z1, self.p_x_given_z1.sample(z1)

    def log_p(self, z0, z1, x):
        """(log p(z1|z0), log p(x|z1)) per sample; log p(z0) = -nz0 log 2 is a constant."""
        return bernoulli_log_prob(self.p_z1_given_z0(z0), z1), self.p_x_given_z1.log_prob(x, z1)

    def posterior(self, x, z0=None, z1=None, draw=draw_bernoulli, prior_gradient=True):
        """Runs the encoder in its factorisation order; a bit layer that is not given is drawn with `draw` from its
        logits (a Bernoulli draw, or zgr_binary for the ELBO). prior_gradient=False detaches the shared p(z1|z0)
        logits of the ladder encoder, so the encoder update neither needs nor builds their graph."""
        if self.encoder.order == "ladder":
            logits_z0, a1 = self.encoder(x)
            z0 = draw(logits_z0) if z0 is None else z0
            with torch.set_grad_enabled(prior_gradient and torch.is_grad_enabled()):
                prior_logits = self.p_z1_given_z0(z0)
            logits_z1 = prior_logits + a1
            z1 = draw(logits_z1) if z1 is None else z1
            return Posterior(z0, z1, logits_z0, logits_z1, prior_logits)
        logits_z1 = self.encoder(x)
        z1 = draw(logits_z1) if z1 is None else z1
        logits_z0 = self.encoder.q_z0_given_z1(z1)
        z0 = draw(logits_z0) if z0 is None else z0
        return Posterior(z0, z1, logits_z0, logits_z1, None)

    def log_q(self, x, z0, z1):
        """(log q(z0|.), log q(z1|.)) per sample of given complete samples; no gradient into p(z1|z0)."""
        posterior = self.posterior(x, z0, z1, prior_gradient=False)
        return bernoulli_log_prob(posterior.logits_z0, z0), bernoulli_log_prob(posterior.logits_z1, z1)

    @torch.no_grad()
    def random_code_images(self, n):
        """Ancestral codes z0 ~ p(z0), z1 ~ p(z1|z0), shown as the decoder's mode."""
        z1 = draw_bernoulli(self.p_z1_given_z0(self.sample_prior_z0(n)))
        return self.p_x_given_z1.mode(z1)

    @torch.no_grad()
    def chain_code(self, x):
        return self.posterior(x).z1

    @torch.no_grad()
    def reconstruction(self, x):
        """Mode of p(x|z1) with z1 ~ q(z|x): one step of the limiting chain shown as an image."""
        return self.p_x_given_z1.mode(self.chain_code(x))

    @torch.no_grad()
    def chain_step(self, x):
        """x -> z ~ q(z|x) -> x' ~ p(x|z1): one transition of the chain whose limit is the limiting distribution."""
        return self.p_x_given_z1.sample(self.chain_code(x))


def build_model(dataset, encoder, arch, nz0, nz1, conditional_width=600, encoder_width=None, conv_channels=32,
                mlp_width=600):
    """The official networks (arch='conv'), or MLP trunk and image network of width mlp_width (arch='mlp').
    encoder_width=None takes the official trunk width: 600 on MNIST, 1000 on FMNIST."""
    if dataset not in LIKELIHOODS or encoder not in ENCODER_ORDERS or arch not in ARCHITECTURES:
        raise ValueError(f"unknown dataset {dataset!r}, encoder {encoder!r} or arch {arch!r}")
    activation = DECODER_ACTIVATIONS[dataset]
    if arch == "conv":
        width = encoder_width or (1000 if dataset == "fmnist" else 600)
        trunk, image_net = conv_trunk(width, conv_channels), conv_image_net(nz1, activation, conv_channels)
    else:
        width = encoder_width or mlp_width
        trunk, image_net = mlp_trunk(width), mlp_image_net(nz1, activation, mlp_width)
    posterior = (LadderEncoder(trunk, width, nz0, nz1) if encoder == "ladder"
                 else ReverseEncoder(trunk, width, nz0, nz1, conditional_width))
    model = BinaryHVAE(p_z1_given_z0=SkipMLP(nz0, nz1, conditional_width, 2),
                       p_x_given_z1=ImageLikelihood(image_net, LIKELIHOODS[dataset]), encoder=posterior, nz0=nz0)
    # Channels-last conv weights make every feature map channels-last: oneDNN's fast path on CPU (a symmetric
    # iteration at batch 1024 ~1.35x faster, bench/bench_sym.py), cuDNN's NHWC kernels on GPU; the same math.
    return model.to(memory_format=torch.channels_last) if arch == "conv" else model
