"""Amortized Householder-Sylvester flow encoder q(z|x) (van den Berg et al. 2018, as used by CyGen).

    e ~ N(0, I) (optionally clamped),  z_0 = mu(x) + sigma(x) * e,
    z_k = z_{k-1} + Q_k R1_k tanh(R2_k Q_k^T z_{k-1} + b_k),   k = 1..F,

every flow parameter is a head on the body output h(x). Everything is laid out batch-first, [B, F, ...], so sample b
only ever sees its own Householder vectors (the official code reshaped them as (H, F, B) and mixed samples: bug B1).
The flow has no tractable inverse; CyGen only needs z = T(e, x), log q and the per-sample Jacobian dz/de, which is
available in closed form from the same forward pass.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class FlowParams:
    """Per-sample flow parameters; B = batch, F = flows, D = latent dimension."""
    mean: torch.Tensor        # [B, D]
    std: torch.Tensor         # [B, D]
    inner: torch.Tensor       # [B, F, D, D]  R2 Q^T
    outer: torch.Tensor       # [B, F, D, D]  Q R1
    bias: torch.Tensor        # [B, F, D]
    diag_product: torch.Tensor  # [B, F, D]  diag(R1) * diag(R2), in (-1, 1) so each step is invertible


@dataclass
class FlowSample:
    z: torch.Tensor           # [S, B, D]
    log_q: torch.Tensor       # [S, B]   log q(z|x), up to the truncation constant when e is clamped
    tanh_grad: torch.Tensor   # [S, B, F, D]  tanh'(R2 Q^T z + b) of every step, for the Jacobian


def householder_product(vectors):
    """Q = H_1 H_2 ... H_H with H_j = I - 2 v_j v_j^T / |v_j|^2; vectors [..., H, D] -> [..., D, D]."""
    v = vectors / vectors.norm(dim=-1, keepdim=True)
    eye = torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
    reflections = eye - 2 * v.unsqueeze(-1) * v.unsqueeze(-2)
    return chain_matmul_tree(reflections, dim=-3)


def chain_matmul_tree(matrices, dim):
    """M_1 @ M_2 @ ... @ M_n along `dim` in log2(n) batched matmuls instead of n sequential ones."""
    m = matrices.movedim(dim, 0)
    while m.shape[0] > 1:
        if m.shape[0] % 2:
            eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device).expand_as(m[:1])
            m = torch.cat([m, eye])
        m = m[0::2] @ m[1::2]
    return m[0]


class HouseholderSylvesterEncoder(nn.Module):
    def __init__(self, body: nn.Module, body_dim: int, z_dim: int, n_flows: int, n_householder: int,
                 e_clamp: float | None = None):
        super().__init__()
        self.body, self.z_dim, self.n_flows, self.n_householder = body, z_dim, n_flows, n_householder
        self.e_clamp = e_clamp
        D, F, H = z_dim, n_flows, n_householder
        self.mean_head = nn.Linear(body_dim, D)
        self.var_head = nn.Sequential(nn.Linear(body_dim, D), nn.Softplus())
        self.triangular_head = nn.Linear(body_dim, F * D * D)  # strict upper part -> R1, its transpose's -> R2
        self.diag1_head = nn.Sequential(nn.Linear(body_dim, F * D), nn.Tanh())
        self.diag2_head = nn.Sequential(nn.Linear(body_dim, F * D), nn.Tanh())
        self.householder_head = nn.Linear(body_dim, F * H * D)
        self.bias_head = nn.Linear(body_dim, F * D)
        self.register_buffer("strict_upper", torch.triu(torch.ones(D, D), diagonal=1), persistent=False)

    def flow_params(self, x) -> FlowParams:
        h = self.body(x)
        B, D, F = h.shape[0], self.z_dim, self.n_flows
        full = self.triangular_head(h).view(B, F, D, D)
        diag1 = self.diag1_head(h).view(B, F, D)
        diag2 = self.diag2_head(h).view(B, F, D)
        r1 = full * self.strict_upper + torch.diag_embed(diag1)
        r2 = full.transpose(-1, -2) * self.strict_upper + torch.diag_embed(diag2)
        q = householder_product(self.householder_head(h).view(B, F, self.n_householder, D))
        return FlowParams(mean=self.mean_head(h), std=self.var_head(h).sqrt(),
                          inner=r2 @ q.transpose(-1, -2), outer=q @ r1,
                          bias=self.bias_head(h).view(B, F, D), diag_product=diag1 * diag2)

    def sample_base(self, n_samples: int, batch_size: int, device=None):
        """e ~ N(0, I) of shape [n_samples, B, D], clamped elementwise when e_clamp is set (SVHN uses 0.1)."""
        weight = self.mean_head.weight
        e = torch.randn(n_samples, batch_size, self.z_dim, device=device or weight.device, dtype=weight.dtype)
        return e if self.e_clamp is None else e.clamp(-self.e_clamp, self.e_clamp)

    def transform(self, params: FlowParams, e) -> FlowSample:
        """z = T(e, x) and log q(z|x) for e of shape [S, B, D] (S samples per row of the batch)."""
        # Samples go last, [B, D, S], so every step is one native batched matmul (no broadcast copies of Q, R).
        z = torch.addcmul(params.mean.unsqueeze(-1), params.std.unsqueeze(-1), e.permute(1, 2, 0))
        tanh_grads = []
        # unbind once: indexing [:, k] in the loop would make every backward pass write F full-size gradients.
        for inner, outer, bias in zip(params.inner.unbind(1), params.outer.unbind(1), params.bias.unbind(1)):
            h = torch.tanh(torch.baddbmm(bias.unsqueeze(-1), inner, z))
            z = torch.baddbmm(z, outer, h)
            tanh_grads.append(1 - h * h)
        tanh_grad = torch.stack(tanh_grads, dim=1)  # [B, F, D, S]
        # det(I + Q R1 diag(h') R2 Q^T) = prod_i (1 + h'_i R1_ii R2_ii): Sylvester's determinant identity.
        log_det = (params.std.log().sum(-1, keepdim=True)
                   + torch.log1p(tanh_grad * params.diag_product.unsqueeze(-1)).sum((1, 2)))
        log_base = -0.5 * (e * e).sum(-1) - 0.5 * self.z_dim * math.log(2 * math.pi)
        return FlowSample(z=z.permute(2, 0, 1), log_q=log_base - log_det.T, tanh_grad=tanh_grad.permute(3, 0, 1, 2))

    def jacobian(self, params: FlowParams, tanh_grad):
        """dz/de per sample, [S, B, D, D] (or [B, D, D] for tanh_grad [B, F, D]): J_F ... J_1 diag(sigma) with J_k = I + Q R1 diag(h'_k) R2 Q^T."""
        eye = torch.eye(self.z_dim, dtype=tanh_grad.dtype, device=tanh_grad.device)
        steps = eye + params.outer @ (tanh_grad.unsqueeze(-1) * params.inner)
        # The product runs from the last flow to the first: reverse the flow axis before the tree product.
        return chain_matmul_tree(steps.flip(-3), dim=-3) * params.std.unsqueeze(-2)

    def forward(self, x, n_samples: int = 1) -> FlowSample:
        params = self.flow_params(x)
        return self.transform(params, self.sample_base(n_samples, x.shape[0], x.device))

    @torch.no_grad()
    def sample(self, x):
        """One z ~ q(z|x) per row, [B, D]."""
        return self.forward(x).z[0]
