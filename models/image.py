"""CyGen's image networks (paper Table 16): a gated-conv flow encoder and gated-conv decoder for 28x28 grayscale
(MNIST, Fashion-MNIST), and a plain conv stack for 32x32 colour (SVHN).

The SVHN stack of the official code has BatchNorm after every conv; BatchNorm couples the samples of a batch, so a
per-sample Jacobian would see the rest of the batch. It is left out, as in the paper's table.
"""
import math

import torch
from torch import nn

from models.decoders import GaussianDecoder
from models.sylvester import HouseholderSylvesterEncoder
from models.tangents import linear_tangent

BODY_DIM = 256


class GatedConv2d(nn.Module):
    """h(x) * sigmoid(g(x)) with two convolutions of the same shape (the gated layers of Sylvester-flow VAEs).

    h starts at N(0, 4 / fan_in) with zero bias, so that the gated product keeps the scale of its input. PyTorch's
    default initialisation shrinks the signal about 12-fold in variance per gated layer: six layers leave the decoder's
    output almost independent of z (sensitivity ~1e-6 at initialisation), and short runs never leave the mean image.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding=None):
        super().__init__()
        if output_padding is None:
            self.h = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
            self.g = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
            fan_in = in_channels * kernel_size ** 2
        else:  # transposed: each output sees in_channels x (kernel / stride)^2 inputs
            self.h = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding)
            self.g = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding)
            fan_in = in_channels * kernel_size ** 2 / stride ** 2
        nn.init.normal_(self.h.weight, 0.0, 2.0 / math.sqrt(fan_in))
        nn.init.zeros_(self.h.bias)

    def forward(self, x):
        return self.h(x) * torch.sigmoid(self.g(x))

    def linearize(self, x, x_t):
        """The output and its derivative along x_t (models.tangents): d[h s] = (dh + h (1 - s) dg) s, s = sigmoid(g)."""
        h, gate = self.h(x), torch.sigmoid(self.g(x))
        h_t, g_t = linear_tangent(self.h, x_t), linear_tangent(self.g, x_t)
        return h * gate, (h_t + h * (1 - gate) * g_t) * gate


def gated_transposed(in_channels, out_channels, kernel_size, stride, padding, output_padding=0):
    return GatedConv2d(in_channels, out_channels, kernel_size, stride, padding, output_padding)


class LatentAsImage(nn.Module):
    """[N, D] -> [N, D, 1, 1], the input of a transposed-conv decoder."""

    def forward(self, z):
        return z.view(*z.shape, 1, 1)


def grayscale_28_body():
    return nn.Sequential(
        GatedConv2d(1, 32, 5, 1, 2), GatedConv2d(32, 32, 5, 2, 2), GatedConv2d(32, 64, 5, 1, 2),
        GatedConv2d(64, 64, 5, 2, 2), GatedConv2d(64, 64, 5, 1, 2), GatedConv2d(64, BODY_DIM, 7, 1, 0),
        nn.Flatten())


def grayscale_28_decoder_mean(z_dim):
    return nn.Sequential(
        LatentAsImage(),
        gated_transposed(z_dim, 64, 7, 1, 0), gated_transposed(64, 64, 5, 1, 2), gated_transposed(64, 32, 5, 2, 2, 1),
        gated_transposed(32, 32, 5, 1, 2), gated_transposed(32, 32, 5, 2, 2, 1), gated_transposed(32, 32, 5, 1, 2),
        nn.Conv2d(32, 1, 1), nn.Sigmoid())


def conv_block(conv):
    return [conv, nn.LeakyReLU()]


def colour_32_body():
    channels = [(3, 32, 5, 1), (32, 64, 4, 2), (64, 128, 4, 1), (128, 256, 4, 2), (256, 512, 4, 1), (512, 256, 1, 1)]
    layers = [layer for c_in, c_out, k, s in channels for layer in conv_block(nn.Conv2d(c_in, c_out, k, s))]
    return nn.Sequential(*layers, nn.Flatten())


def colour_32_decoder_mean(z_dim):
    channels = [(z_dim, 256, 4, 1), (256, 128, 4, 2), (128, 64, 4, 1), (64, 32, 4, 2), (32, 32, 5, 1)]
    layers = [layer for c_in, c_out, k, s in channels for layer in conv_block(nn.ConvTranspose2d(c_in, c_out, k, s))]
    return nn.Sequential(LatentAsImage(), *layers, *conv_block(nn.Conv2d(32, 32, 1)), nn.Conv2d(32, 3, 1),
                         nn.Sigmoid())


ARCHITECTURES = {(1, 28, 28): (grayscale_28_body, grayscale_28_decoder_mean),
                 (3, 32, 32): (colour_32_body, colour_32_decoder_mean)}


def check_image_shape(image_shape):
    if tuple(image_shape) not in ARCHITECTURES:
        raise ValueError(f"no image architecture for inputs of shape {tuple(image_shape)}; "
                         f"built for {', '.join(str(shape) for shape in ARCHITECTURES)}")
    return ARCHITECTURES[tuple(image_shape)]


def image_encoder(image_shape, z_dim=64, n_flows=4, n_householder=8, e_clamp=None):
    body, _ = check_image_shape(image_shape)
    return HouseholderSylvesterEncoder(body(), BODY_DIM, z_dim, n_flows, n_householder, e_clamp)


def image_decoder(image_shape, z_dim=64, variance=0.01):
    _, decoder_mean = check_image_shape(image_shape)
    return GaussianDecoder(decoder_mean(z_dim), variance)
