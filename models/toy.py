"""The 2-D toy networks of CyGen (about 4.5k parameters with F=32 flows)."""
import torch
from torch import nn

from models.decoders import GaussianDecoder
from models.sylvester import HouseholderSylvesterEncoder


def toy_encoder(z_dim=2, n_flows=32, n_householder=2, x_dim=2, width=8):
    body = nn.Sequential(nn.Linear(x_dim, width), nn.ReLU(), nn.Linear(width, width))
    return HouseholderSylvesterEncoder(body, width, z_dim, n_flows, n_householder)


def toy_decoder(variance, z_dim=2, x_dim=2, width=16):
    mean_net = nn.Sequential(nn.Linear(z_dim, width), nn.ReLU(), nn.Linear(width, width), nn.Linear(width, x_dim))
    return GaussianDecoder(mean_net, variance)


class Discriminator(nn.Module):
    """D(x, z) of the BiGAN / GibbsNet baselines: x->512->256, z->512->256, concat->256->1, LeakyReLU(0.2)."""

    def __init__(self, x_dim, z_dim):
        super().__init__()
        self.x_net = nn.Sequential(nn.Linear(x_dim, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256))
        self.z_net = nn.Sequential(nn.Linear(z_dim, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256))
        self.joint_net = nn.Sequential(nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))

    def forward(self, x, z):
        return self.joint_net(torch.cat([self.x_net(x.flatten(1)), self.z_net(z)], dim=-1)).squeeze(-1)
