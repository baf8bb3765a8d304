"""Amortized Householder-Sylvester flow encoder q(z|x) (van den Berg et al. 2018, as used by CyGen).

    e ~ N(0, I) (optionally clamped),  z_0 = mu(x) + sigma(x) * e,
    z_k = z_{k-1} + Q_k R1_k tanh(R2_k Q_k^T z_{k-1} + b_k),   k = 1..F,

every flow parameter is a head on the body output h(x). The parameters are laid out per sample, batch-last
[F, ..., B], so sample b only ever sees its own Householder vectors (the official code reshaped them as (H, F, B) and
mixed samples: bug B1).
The flow has no tractable inverse; CyGen only needs z = T(e, x), log q and the per-sample Jacobian dz/de, which is
available in closed form from the same forward pass.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

from models.compiled_steps import step_function
from models.tangents import linearize


# Up to this many multiplications per sample (I * J * K), batch-last products are a broadcast multiply and a sum over
# the short middle axis, which beats a batched matmul over thousands of tiny matrices (the toy's 2x2 flow matrices:
# ~5x per product); above it, einsum's bmm (the I x J x K intermediate would cost more than bmm's layout copies).
BROADCAST_MATMUL_MAX_SIZE = 8 ** 3


@dataclass
class FlowParams:
    """Per-sample flow parameters, batch-last (B = batch, F = flows, D = latent dimension): with B innermost every
    per-sample operation runs over contiguous memory, however small D is."""
    mean: torch.Tensor        # [D, B]
    std: torch.Tensor         # [D, B]
    inner: torch.Tensor       # [F, D, D, B]  R2 Q^T
    outer: torch.Tensor       # [F, D, D, B]  Q R1
    bias: torch.Tensor        # [F, D, B]
    diag_product: torch.Tensor  # [F, D, B]  diag(R1) * diag(R2), in (-1, 1) so each step is invertible


@dataclass
class FlowSample:
    z: torch.Tensor           # [S, B, D]
    log_q: torch.Tensor       # [S, B]   log q(z|x), up to the truncation constant when e is clamped
    tanh_grad: torch.Tensor   # [S, F, D, B]  tanh'(R2 Q^T z + b) of every step, for the Jacobian


def matmul(a, b):
    """Batch-last matrix product: a [..., I, J, B] @ b [..., J, K, B] -> [..., I, K, B]."""
    if a.shape[-3] * a.shape[-2] * b.shape[-2] <= BROADCAST_MATMUL_MAX_SIZE:
        return (a.unsqueeze(-2) * b.unsqueeze(-4)).sum(-3)
    return torch.einsum("...ijb,...jkb->...ikb", a, b)


def eye_like(t, dim):
    """The identity [dim, dim, 1], broadcasting over a batch-last tensor like t."""
    return torch.eye(dim, dtype=t.dtype, device=t.device).unsqueeze(-1)


def householder_product(vectors):
    """Q = H_1 H_2 ... H_H with H_j = I - 2 u_j u_j^T / |u_j|^2; batch-last vectors [..., H, D, B] -> [..., D, D, B].

    Compact WY form (Schreiber & Van Loan 1989): with the vectors as the rows of U [H, D] and G = U U^T,
    Q = I - U^T A^{-1} U,  A = triu(G) - diag(G) / 2 (upper triangular, H x H): O(H D^2) per sample, where
    multiplying the H reflections as D x D matrices costs O(H D^3). A^{-1} U by back substitution over the H rows,
    batch-last (a batched triangular solve would loop over thousands of tiny matrices).
    """
    gram = matmul(vectors, vectors.transpose(-3, -2))  # [..., H, H, B]
    solved = []  # rows H-1, H-2, ... of A^{-1} U, each [..., D, B]
    for i in reversed(range(vectors.shape[-3])):
        row = vectors[..., i, :, :]
        if solved:
            later_rows = torch.stack(solved[::-1], dim=-3)  # rows i+1 .. H-1
            row = row - (gram[..., i, i + 1:, :].unsqueeze(-2) * later_rows).sum(-3)
        solved.append(row / (0.5 * gram[..., i, i, :]).unsqueeze(-2))
    a_inverse_u = torch.stack(solved[::-1], dim=-3)
    return eye_like(vectors, vectors.shape[-2]) - matmul(vectors.transpose(-3, -2), a_inverse_u)


def chain_matmul_tree(matrices, dim):
    """M_1 @ M_2 @ ... @ M_n of batch-last matrices along `dim`, in log2(n) products instead of n sequential ones."""
    m = matrices.movedim(dim, 0)
    while m.shape[0] > 1:
        if m.shape[0] % 2:
            m = torch.cat([m, eye_like(m, m.shape[-2]).expand_as(m[:1])])
        m = matmul(m[0::2], m[1::2])
    return m[0]


def flow_step(z, inner, outer, bias):
    """One step z + C tanh(A z + b) on z [D, S, B] (A = R2 Q^T, C = Q R1): returns it and tanh'(A z + b)."""
    h = torch.tanh(matmul(inner, z) + bias.unsqueeze(1))
    return z + matmul(outer, h), 1 - h * h


class HouseholderSylvesterEncoder(nn.Module):
    def __init__(self, body: nn.Module, body_dim: int, z_dim: int, n_flows: int, n_householder: int,
                 e_clamp: float | None = None):
        super().__init__()
        self.body, self.z_dim, self.n_flows, self.n_householder = body, z_dim, n_flows, n_householder
        self.e_clamp = e_clamp
        D, F, H = z_dim, n_flows, n_householder
        # Every flow parameter is a linear head on the body output; they are stacked as one layer so that flow_params
        # applies them in one product (assemble adds the activations: softplus for the variance, tanh for diagonals).
        # "triangular" holds F full D x D matrices: the strict upper part gives R1, its transpose's gives R2.
        self.head_sizes = dict(mean=D, var=D, triangular=F * D * D, diag1=F * D, diag2=F * D, householder=F * H * D,
                               bias=F * D)
        self.heads = nn.Linear(body_dim, sum(self.head_sizes.values()))
        self.register_buffer("strict_upper", torch.triu(torch.ones(D, D), diagonal=1), persistent=False)

    def flow_params(self, x) -> FlowParams:
        return self.assemble(self.apply_heads(self.body(x)))

    def head_outputs_with_tangent(self, x, x_t):
        """The head outputs at x (apply_heads) and their derivative along x_t, both [heads, B]."""
        body_output, body_tangent = linearize(self.body, x, x_t)
        return self.apply_heads(body_output), self.heads.weight @ body_tangent.T

    def apply_heads(self, body_output):
        """The heads as W h^T: [heads, B], batch-last and contiguous, and so is every row slice of it (h W^T would
        leave transposed views, whose elementwise ops crawl)."""
        return torch.addmm(self.heads.bias.unsqueeze(1), self.heads.weight, body_output.T)

    def assemble(self, head_outputs) -> FlowParams:
        """The flow parameters from the head outputs [heads, B] (the nonlinear part of flow_params)."""
        D, F, H, B = self.z_dim, self.n_flows, self.n_householder, head_outputs.shape[-1]
        mean, var, full, diag1, diag2, householder, bias = head_outputs.split(list(self.head_sizes.values()))
        full, householder = full.view(F, D, D, B), householder.view(F, H, D, B)
        diag1, diag2 = torch.tanh(diag1).view(F, D, B), torch.tanh(diag2).view(F, D, B)
        eye = eye_like(head_outputs, D)
        r1 = full * self.strict_upper.unsqueeze(-1) + eye * diag1.unsqueeze(-3)
        r2 = full.transpose(-3, -2) * self.strict_upper.unsqueeze(-1) + eye * diag2.unsqueeze(-3)
        q = householder_product(householder)
        return FlowParams(mean=mean, std=nn.functional.softplus(var).sqrt(), inner=matmul(r2, q.transpose(-3, -2)),
                          outer=matmul(q, r1), bias=bias.view(F, D, B), diag_product=diag1 * diag2)

    def sample_base(self, n_samples: int, batch_size: int, device=None):
        """e ~ N(0, I) of shape [n_samples, B, D], clamped elementwise when e_clamp is set (SVHN uses 0.1)."""
        weight = self.heads.weight
        e = torch.randn(n_samples, batch_size, self.z_dim, device=device or weight.device, dtype=weight.dtype)
        return e if self.e_clamp is None else e.clamp(-self.e_clamp, self.e_clamp)

    def transform(self, params: FlowParams, e) -> FlowSample:
        """z = T(e, x) and log q(z|x) for e of shape [S, B, D] (S samples per row of the batch)."""
        # [D, S, B], contiguous like every later step's z (a compiled step would recompile for the first one's strides)
        z = torch.addcmul(params.mean.unsqueeze(1), params.std.unsqueeze(1), e.permute(2, 0, 1)).contiguous()
        tanh_grads = []
        step = step_function(flow_step)
        # unbind once: indexing [k] in the loop would make every backward pass write F full-size gradients.
        for inner, outer, bias in zip(params.inner.unbind(0), params.outer.unbind(0), params.bias.unbind(0)):
            z, tanh_grad = step(z, inner, outer, bias)
            tanh_grads.append(tanh_grad)
        tanh_grad = torch.stack(tanh_grads).permute(2, 0, 1, 3)  # [S, F, D, B]
        # det(I + Q R1 diag(h') R2 Q^T) = prod_i (1 + h'_i R1_ii R2_ii): Sylvester's determinant identity.
        log_det = params.std.log().sum(0) + torch.log1p(tanh_grad * params.diag_product).sum((1, 2))
        log_base = -0.5 * (e * e).sum(-1) - 0.5 * self.z_dim * math.log(2 * math.pi)
        return FlowSample(z=z.permute(1, 2, 0), log_q=log_base - log_det, tanh_grad=tanh_grad)

    def jacobian(self, params: FlowParams, tanh_grad):
        """dz/de per sample, [S, B, D, D] (or [B, D, D] for tanh_grad [F, D, B]): J_F ... J_1 diag(sigma) with
        J_k = I + Q R1 diag(h'_k) R2 Q^T."""
        steps = eye_like(tanh_grad, self.z_dim) + matmul(params.outer, tanh_grad.unsqueeze(-2) * params.inner)
        # The product runs from the last flow to the first: reverse the flow axis before the tree product.
        product = chain_matmul_tree(steps.flip(-4), dim=-4) * params.std.unsqueeze(-3)
        return product.movedim(-1, -3)

    def forward(self, x, n_samples: int = 1) -> FlowSample:
        params = self.flow_params(x)
        return self.transform(params, self.sample_base(n_samples, x.shape[0], x.device))

    @torch.no_grad()
    def sample(self, x):
        """One z ~ q(z|x) per row, [B, D]."""
        return self.forward(x).z[0]
