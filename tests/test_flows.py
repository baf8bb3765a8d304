"""The Householder-Sylvester flow against brute force (nflows / normflows style)."""
import math

import pytest
import torch
from torch.func import jacrev

from models.sylvester import BROADCAST_MATMUL_MAX_SIZE, chain_matmul_tree, householder_product
from models.toy import toy_encoder


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    enc = toy_encoder(z_dim=3, n_flows=5, n_householder=2, x_dim=2).double()
    with torch.no_grad():  # push the flow away from the identity so the checks have something to see
        for parameter in enc.parameters():
            parameter.mul_(3)
    return enc


def flow_one(encoder, e_row, x_row):
    return encoder.transform(encoder.flow_params(x_row[None]), e_row[None, None]).z[0, 0]


def test_householder_product_is_the_ordered_product_of_reflections():
    vectors = torch.randn(4, 3, 5, dtype=torch.float64)  # batch of 4, 3 reflections in 5 dimensions
    q = householder_product(vectors.permute(1, 2, 0)).permute(2, 0, 1)  # the flow's layout is batch-last
    eye = torch.eye(5, dtype=torch.float64)
    expected = eye.expand(4, 5, 5)
    for j in range(3):  # Q = H_1 H_2 H_3
        v = vectors[:, j] / vectors[:, j].norm(dim=-1, keepdim=True)
        expected = expected @ (eye - 2 * v.unsqueeze(-1) * v.unsqueeze(-2))
    assert torch.allclose(q, expected, atol=1e-12)
    assert torch.allclose(q @ q.transpose(-1, -2), eye.expand(4, 5, 5), atol=1e-12)


@pytest.mark.parametrize("dim", [3, 9])
def test_chain_matmul_tree_equals_sequential_product(dim):
    assert (dim ** 3 <= BROADCAST_MATMUL_MAX_SIZE) == (dim == 3)  # both ways of multiplying
    m = torch.randn(2, 7, dim, dim, dtype=torch.float64)
    expected = m[:, 0]
    for k in range(1, 7):
        expected = expected @ m[:, k]
    assert torch.allclose(chain_matmul_tree(m.permute(1, 2, 3, 0), dim=0).permute(2, 0, 1), expected, atol=1e-10)


def test_jacobian_and_log_q_match_brute_force(encoder):
    x, e = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    params = encoder.flow_params(x)
    sample = encoder.transform(params, e[None])
    jacobian = encoder.jacobian(params, sample.tanh_grad[0])
    brute = torch.stack([jacrev(flow_one, argnums=1)(encoder, e[b], x[b]) for b in range(4)])
    assert torch.allclose(jacobian, brute, atol=1e-10)
    log_base = -0.5 * (e * e).sum(-1) - 1.5 * math.log(2 * math.pi)
    assert torch.allclose(sample.log_q[0], log_base - torch.linalg.slogdet(brute)[1], atol=1e-10)
    assert (torch.linalg.det(brute) > 0).all()  # every step is invertible and orientation-preserving


def test_samples_do_not_depend_on_other_rows(encoder):
    """Bug B1 of the official code: Householder vectors were shared across the batch."""
    x, e = torch.randn(6, 2, dtype=torch.float64), torch.randn(1, 6, 3, dtype=torch.float64)
    z = encoder.transform(encoder.flow_params(x), e).z
    x_changed = x.clone()
    x_changed[1:] = torch.randn(5, 2, dtype=torch.float64)
    z_changed = encoder.transform(encoder.flow_params(x_changed), e).z
    assert torch.equal(z[:, 0], z_changed[:, 0])
    one_by_one = torch.cat([encoder.transform(encoder.flow_params(x[b:b + 1]), e[:, b:b + 1]).z for b in range(6)], 1)
    assert torch.allclose(z, one_by_one, atol=1e-12)
    dz0_dx = torch.autograd.functional.jacobian(lambda xx: encoder.transform(encoder.flow_params(xx), e).z[0, 0], x)
    assert dz0_dx[:, 1:].abs().max() == 0


def test_several_samples_per_row_equal_separate_calls(encoder):
    x, e = torch.randn(3, 2, dtype=torch.float64), torch.randn(4, 3, 3, dtype=torch.float64)
    params = encoder.flow_params(x)
    together = encoder.transform(params, e)
    for s in range(4):
        alone = encoder.transform(params, e[s:s + 1])
        assert torch.allclose(together.z[s], alone.z[0], atol=1e-12)
        assert torch.allclose(together.log_q[s], alone.log_q[0], atol=1e-12)


def test_base_clamp_bounds_e():
    enc = toy_encoder()
    enc.e_clamp = 0.1
    assert enc.sample_base(5, 7).abs().max() <= 0.1
