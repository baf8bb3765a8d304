"""The 2-D toy densities of FFJORD (Grathwohl et al., 2019; rtqichen/ffjord lib/toy_data.py), drawn with torch ops.

Constants follow FFJORD. Two deliberate differences, neither of which changes a density:
- where FFJORD (or the sklearn generator it calls) places points on an evenly spaced grid of angles (moons, circles,
  rings), the angle is drawn uniformly: the grid is a stratified sample of that uniform, but it depends on the batch
  size and couples the points of one batch;
- where FFJORD returns batch_size // k points (pinwheel, 2spirals), exactly batch_size points are returned.
Each sampler also returns the mixture component of every point, used only to colour plots.
"""
import math

import torch
from torch import Tensor

TOY_DATASETS = ("pinwheel", "8gaussians", "checkerboard", "2spirals", "moons", "rings", "swissroll", "circles")


class _RandomSource:
    """The draws of one batch, on one device, from one generator, so that each sampler reads as its formula."""

    def __init__(self, batch_size: int, device, generator: torch.Generator | None):
        self.batch_size = batch_size
        self.options = dict(device=device, generator=generator)

    def normal(self, *event_shape: int) -> Tensor:
        return torch.randn(self.batch_size, *event_shape, dtype=torch.float32, **self.options)

    def uniform(self, *event_shape: int) -> Tensor:
        return torch.rand(self.batch_size, *event_shape, dtype=torch.float32, **self.options)

    def component(self, num_components: int) -> Tensor:
        return torch.randint(num_components, (self.batch_size,), **self.options)

    def balanced_component(self, num_components: int) -> Tensor:
        # FFJORD gives these mixtures equal counts per component in shuffled order; a permutation mod k does both.
        return torch.randperm(self.batch_size, **self.options) % num_components


def _polar(radius, angle: Tensor) -> Tensor:
    return torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=1)


def _pinwheel(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    arm = draw.balanced_component(5)
    radial = 1.0 + 0.3 * draw.normal()
    tangential = 0.1 * draw.normal()
    angle = 2 * math.pi * arm / 5 + 0.25 * torch.exp(radial)
    # FFJORD multiplies the row vector (radial, tangential) by [[cos, -sin], [sin, cos]]: a clockwise rotation.
    x = radial * torch.cos(angle) + tangential * torch.sin(angle)
    y = -radial * torch.sin(angle) + tangential * torch.cos(angle)
    return 2 * torch.stack((x, y), dim=1), arm


def _eight_gaussians(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    centre = draw.component(8)
    point = _polar(4.0, centre * (math.pi / 4)) + 0.5 * draw.normal(2)
    return point / 1.414, centre


def _checkerboard(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    x = 4 * draw.uniform() - 2
    column = torch.floor(x)
    lower_cell = draw.component(2)  # each of the 4 columns holds two occupied cells, two units apart
    y = draw.uniform() - 2 * lower_cell + column % 2
    # Every occupied cell has the same parity, so the label is the cell's index (0..7) instead.
    cell = 2 * (column.long() + 2) + lower_cell
    return 2 * torch.stack((x, y), dim=1), cell


def _two_spirals(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    arm = draw.balanced_component(2)
    turn = torch.sqrt(draw.uniform()) * (3 * math.pi)  # up to 540 degrees
    spiral = torch.stack((-torch.cos(turn) * turn, torch.sin(turn) * turn), dim=1) + 0.5 * draw.uniform(2)
    # The second arm is the first one reflected through the origin, its uniform jitter included.
    reflection = (1 - 2 * arm).unsqueeze(1)
    return reflection * spiral / 3 + 0.1 * draw.normal(2), arm


def _moons(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    moon = draw.balanced_component(2)
    upper = _polar(1.0, math.pi * draw.uniform())
    # sklearn's make_moons: the lower moon is the upper one mirrored about the point (0.5, 0.25).
    lower = torch.tensor([1.0, 0.5], device=upper.device) - upper
    point = torch.where(moon.unsqueeze(1) == 0, upper, lower) + 0.1 * draw.normal(2)
    return 2 * point + torch.tensor([-1.0, -0.2], device=point.device), moon


def _rings(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    ring = draw.balanced_component(4)
    radius = 3 * (1 - 0.25 * ring)
    return _polar(radius, 2 * math.pi * draw.uniform()) + 0.08 * draw.normal(2), ring


def _swissroll(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    # sklearn's make_swiss_roll(noise=1.0) keeps (t cos t, t sin t) of its 3-D roll; FFJORD then divides by 5.
    turn = 1.5 * math.pi * (1 + 2 * draw.uniform())
    point = (_polar(turn, turn) + draw.normal(2)) / 5
    half_turn = torch.clamp(torch.floor((turn - 1.5 * math.pi) / math.pi), max=2).long()
    return point, half_turn


def _circles(draw: _RandomSource) -> tuple[Tensor, Tensor]:
    # sklearn's make_circles(factor=0.5, noise=0.08) adds its noise before FFJORD scales by 3 (unlike rings).
    inner = draw.balanced_component(2)
    radius = 1 - 0.5 * inner
    return 3 * (_polar(radius, 2 * math.pi * draw.uniform()) + 0.08 * draw.normal(2)), inner


_SAMPLERS = {
    "pinwheel": _pinwheel,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "2spirals": _two_spirals,
    "moons": _moons,
    "rings": _rings,
    "swissroll": _swissroll,
    "circles": _circles,
}


def sample_toy(name: str, batch_size: int, device="cpu",
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draws batch_size points (float32 [B, 2]) and their mixture components (int64 [B]) on `device`.

    `generator` (on `device`) makes the draw reproducible; without it torch's global RNG is used.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"unknown toy dataset {name!r}; valid names: {', '.join(TOY_DATASETS)}")
    return _SAMPLERS[name](_RandomSource(batch_size, device, generator))
