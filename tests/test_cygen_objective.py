"""CyGen's compatibility estimator against the exact Frobenius norm from brute-force second derivatives."""
import math

import pytest
import torch
from torch.func import jacrev

from models import compiled_steps
from models.sylvester import flow_step
from models.toy import toy_decoder, toy_encoder
from objectives.cygen import (COMPATIBILITY_VARIANTS, compatibility_from_probe, compatibility_probe, compatibility_terms,
                              cygen_loss, directional_flow_params, exact_compatibility, harmonic_mean_log_px)
from objectives.vae import dae_loss, elbo_loss
from tests.scripts import needs_compiler


@pytest.fixture
def model():
    torch.manual_seed(0)
    encoder = toy_encoder(n_flows=4).double()
    decoder = toy_decoder(0.5).double()
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.mul_(3)
    return encoder, decoder


def brute_force_mixed_hessians(encoder, decoder, x, e):
    """M_b = d^2/dz dx log(p(x|z) / q(z|x)) at z_b = T(e_b, x_b), with log q(z|x) evaluated through a Newton
    inverse e(z, x) of the flow, differentiated by torch.func: nothing shared with the estimator's algebra."""
    def flow(e_row, x_row):
        return encoder.transform(encoder.flow_params(x_row[None]), e_row[None, None]).z[0, 0]

    def log_q(z_row, x_row, e_start):
        e_row = e_start
        for _ in range(8):
            e_row = e_row - torch.linalg.solve(jacrev(flow)(e_row, x_row), flow(e_row, x_row) - z_row)
        log_det = torch.linalg.slogdet(jacrev(flow)(e_row, x_row))[1]
        return -0.5 * (e_row * e_row).sum() - math.log(2 * math.pi) - log_det

    def log_ratio(x_row, z_row, e_start):
        return decoder.log_prob(x_row[None], z_row[None])[0] - log_q(z_row, x_row, e_start)

    with torch.no_grad():
        z = encoder.transform(encoder.flow_params(x), e[None]).z[0]
    hessians = [jacrev(jacrev(log_ratio, argnums=1), argnums=0)(x[b], z[b], e[b]) for b in range(x.shape[0])]
    return torch.stack(hessians)  # [B, dz, dx]


@pytest.mark.parametrize("variant", ["jacnorm_x", "jacnorm_lite_x"])
def test_estimator_over_the_probe_basis_is_exact(model, variant):
    encoder, decoder = model
    x, e = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    mixed = brute_force_mixed_hessians(encoder, decoder, x, e)
    if variant == "jacnorm_lite_x":  # eq. 23 measures J^T M^T instead of M^T
        params = encoder.flow_params(x)
        jacobian = encoder.jacobian(params, encoder.transform(params, e[None]).tanh_grad[0])
        mixed = jacobian.transpose(-1, -2) @ mixed
    exact = mixed.pow(2).sum((-1, -2))
    basis = torch.eye(2, dtype=torch.float64)
    swept = sum(compatibility_terms(encoder, decoder, x, variant, e=e, eta=d.expand(3, 2)) for d in basis)
    assert torch.allclose(swept, exact, rtol=1e-8)


@pytest.mark.parametrize("z_dim", [2, 3])
def test_jets_and_nested_autograd_give_the_same_probe_and_gradients(z_dim):
    """The explicit second-order jets (small d_z) and nested reverse-mode autograd (large d_z) are one estimator."""
    torch.manual_seed(1)
    encoder, decoder = toy_encoder(z_dim=z_dim, n_flows=5).double(), toy_decoder(0.5, z_dim=z_dim).double()
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.mul_(2)
    x, e = 2 * torch.randn(7, 2, dtype=torch.float64), torch.randn(7, z_dim, dtype=torch.float64)
    eta = torch.randn_like(x)
    params, tangent = directional_flow_params(encoder, x, eta)
    by_jets = compatibility_probe(encoder, decoder, x, params, tangent, e, eta, method="jets")
    by_autograd = compatibility_probe(encoder, decoder, x, params, tangent, e, eta, method="autograd")
    for jets_value, autograd_value in zip(by_jets, by_autograd):
        assert torch.allclose(jets_value, autograd_value, rtol=1e-10, atol=1e-10)
    weights = list(encoder.parameters()) + list(decoder.parameters())
    for variant in COMPATIBILITY_VARIANTS:
        jets_grads = torch.autograd.grad(compatibility_from_probe(*by_jets, variant).mean(), weights, retain_graph=True)
        autograd_grads = torch.autograd.grad(compatibility_from_probe(*by_autograd, variant).mean(), weights,
                                             retain_graph=True)
        for jets_grad, autograd_grad in zip(jets_grads, autograd_grads):
            assert torch.allclose(jets_grad, autograd_grad, rtol=1e-9, atol=1e-10)


def test_hutchinson_mean_converges_to_exact(model):
    encoder, decoder = model
    x, e = torch.randn(2, 2, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    exact = brute_force_mixed_hessians(encoder, decoder, x, e).pow(2).sum((-1, -2))
    n_probes = 4000
    x_many, e_many = x.repeat(n_probes, 1), e.repeat(n_probes, 1)
    terms = compatibility_terms(encoder, decoder, x_many, "jacnorm_x", e=e_many)
    estimate = terms.view(n_probes, 2).mean(0)
    assert torch.allclose(estimate, exact, rtol=0.1)


def test_p_term_is_a_partial_derivative(model):
    """Bug B2: with z = T(e, x) left attached to x, a decoder-only model would get a wrong p-term. With a
    flat decoder (p independent of z) the true mixed derivative of log p vanishes, so p's share must be zero."""
    encoder, decoder = model
    with torch.no_grad():
        for parameter in decoder.mean_net.parameters():
            parameter.zero_()
    x = torch.randn(3, 2, dtype=torch.float64)
    e = torch.randn(3, 2, dtype=torch.float64)
    mixed = brute_force_mixed_hessians(encoder, decoder, x, e)
    swept = sum(compatibility_terms(encoder, decoder, x, "jacnorm_x", e=e, eta=d.expand(3, 2))
                for d in torch.eye(2, dtype=torch.float64))
    assert torch.allclose(swept, mixed.pow(2).sum((-1, -2)), rtol=1e-8)


def test_exact_compatibility_and_losses_are_finite_and_differentiable(model):
    encoder, decoder = model
    x = torch.randn(5, 2, dtype=torch.float64)
    assert all(value > 0 for value in exact_compatibility(encoder, decoder, x).values())
    loss, fit, compatibility = cygen_loss(encoder, decoder, x, n_mc=4, variant="jacnorm_lite_x", w_cm=1e-3)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    assert torch.isclose(loss, fit + 1e-3 * compatibility)


def test_harmonic_mean_with_one_sample_is_the_reconstruction_log_likelihood():
    log_p = torch.randn(1, 7)
    assert torch.allclose(harmonic_mean_log_px(log_p), log_p[0])
    # and it never exceeds the arithmetic mean of p(x|z) (harmonic <= arithmetic)
    log_p = torch.randn(16, 7)
    assert (harmonic_mean_log_px(log_p) <= torch.logsumexp(log_p, 0) - math.log(16) + 1e-6).all()


def test_dae_trains_both_conditionals(model):
    """Bug B3: the official DAE loss was evaluated at a resample of p and had zero gradient."""
    encoder, decoder = model
    dae_loss(encoder, decoder, torch.randn(8, 2, dtype=torch.float64)).backward()
    for network in (encoder, decoder):
        assert sum(p.grad.abs().sum() for p in network.parameters() if p.grad is not None) > 0


def test_elbo_parts(model):
    encoder, decoder = model
    loss, reconstruction, kl = elbo_loss(encoder, decoder, torch.randn(8, 2, dtype=torch.float64), n_mc=3)
    assert torch.isclose(loss, reconstruction + kl)


def test_compatibility_gradient_matches_finite_differences(model):
    """The loss is differentiated backwards through a forward-mode tangent of the encoder: check the weight
    gradient along a random direction against a central difference of the estimator at fixed (e, eta).
    (jacnorm_x only: the lite variant's stop-gradient on J makes its gradient differ from the difference.)"""
    variant = "jacnorm_x"
    encoder, decoder = model
    x, e, eta = (torch.randn(3, 2, dtype=torch.float64) for _ in range(3))
    weights = list(encoder.parameters()) + list(decoder.parameters())
    directions = [torch.randn_like(w) for w in weights]

    def compatibility():
        return compatibility_terms(encoder, decoder, x, variant, e=e, eta=eta).sum()

    gradients = torch.autograd.grad(compatibility(), weights)
    analytic = sum((g * d).sum() for g, d in zip(gradients, directions))
    def shifted_compatibility(step):
        with torch.no_grad():
            for w, d in zip(weights, directions):
                w.add_(step * d)
        value = compatibility().detach()
        with torch.no_grad():
            for w, d in zip(weights, directions):
                w.sub_(step * d)
        return value

    step = 1e-6
    numeric = (shifted_compatibility(step) - shifted_compatibility(-step)) / (2 * step)
    assert torch.isclose(analytic, numeric, rtol=1e-5)


@needs_compiler
def test_compiled_flow_steps_equal_eager(monkeypatch):
    """main_toy.py --compile_flow true: with the flow's per-step functions compiled (sample step, parameter assembly
    with its tangent, jets), CyGen's loss and all weight gradients are those of eager mode."""
    monkeypatch.setattr(compiled_steps, "_enabled", False)  # enabling is per process: undo it after the test
    torch.manual_seed(2)
    encoder, decoder = toy_encoder(n_flows=3), toy_decoder(0.5)
    x = torch.randn(16, 2)
    weights = list(encoder.parameters()) + list(decoder.parameters())
    results = []
    for compiled in (False, True):
        if compiled:
            compiled_steps.enable()
        torch.manual_seed(3)
        loss = cygen_loss(encoder, decoder, x, n_mc=4, variant="jacnorm_lite_x", w_cm=1.0)[0]
        results.append((loss, *torch.autograd.grad(loss, weights)))
    assert compiled_steps.step_function(flow_step) is not flow_step
    for eager, compiled in zip(*results):
        assert torch.allclose(eager, compiled, rtol=1e-4, atol=1e-6)


# ---- main_image.py --compile_flow true: the CyGen loss through torch.func, compiled as one graph ------------------

def loss_and_gradients(encoder, decoder, x, compiled, variant="jacnorm_x", functional=False):
    from objectives.cygen import cygen_loss_func, cygen_noise
    weights = list(encoder.parameters()) + list(decoder.parameters())
    torch.manual_seed(5)
    if functional:
        terms = cygen_loss_func(encoder, decoder, variant, 0.5, x, *cygen_noise(encoder, x, 2, 0.5))
    else:
        terms = cygen_loss(encoder, decoder, x, n_mc=2, variant=variant, w_cm=0.5, compiled=compiled)
    return [t.detach() for t in terms] + list(torch.autograd.grad(terms[0], weights))


def test_cygen_loss_by_torch_func_equals_nested_autograd():
    """The formulation main_image.py --compile_flow true compiles (torch.func transforms), run eagerly: the same
    loss terms and weight gradients as cygen_loss's nested torch.autograd.grad, on the MNIST networks (gated convs
    and their double backward; d_z = 64 takes the nested path, and so does d_z = 5 here) in float64."""
    from models.image import image_decoder, image_encoder
    torch.manual_seed(0)
    encoder = image_encoder((1, 28, 28), z_dim=5, n_flows=2, n_householder=3).double()
    decoder = image_decoder((1, 28, 28), 5).double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    eager = loss_and_gradients(encoder, decoder, x, False)
    functional = loss_and_gradients(encoder, decoder, x, False, functional=True)
    for a, b in zip(eager, functional):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12 * a.abs().max())


@pytest.fixture(scope="module")
def compiled_tiny_image_step():
    """cygen_loss(compiled=True) of main_image.py --compile_flow true on the smallest models that take its path
    (d_z = 5: nested reverse mode, as at d_z = 64; one flow of two reflections; the toy's MLPs, whose graph compiles
    ~3x faster than gated convs'), compiled once for this module's tests: models, input, eager and compiled
    results. The compile (~40-130 s on 2 cores from an empty inductor cache, seconds from a warm one) is the cost."""
    torch.manual_seed(4)
    encoder = toy_encoder(z_dim=5, n_flows=1, n_householder=2).double()
    decoder = toy_decoder(0.5, z_dim=5).double()
    x = torch.randn(3, 2, dtype=torch.float64)
    eager = loss_and_gradients(encoder, decoder, x, compiled=False)
    compiled = loss_and_gradients(encoder, decoder, x, compiled=True)  # compiles forward and backward
    return encoder, decoder, x, eager, compiled


@needs_compiler
def test_compiled_image_loss_equals_eager(compiled_tiny_image_step):
    """main_image.py --compile_flow true: the whole CyGen loss as one torch.compile graph gives eager mode's loss
    terms and weight gradients (float64, from the same draws; measured agreement ~2e-15)."""
    *_, eager, compiled = compiled_tiny_image_step
    for a, b in zip(eager, compiled):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11 * a.abs().max())


@needs_compiler
def test_compiled_image_step_launches_fewer_kernels(compiled_tiny_image_step):
    """bench/counting.py counts inside compiled graphs (generated kernels and extern calls, forward and backward),
    and the compiled step launches far fewer than the eager one, without a host sync."""
    from bench.counting import count_dispatches
    encoder, decoder, x, *_ = compiled_tiny_image_step
    counts = {compiled: count_dispatches(lambda: loss_and_gradients(encoder, decoder, x, compiled))
              for compiled in (False, True)}
    assert counts[False].generated == 0 and counts[True].generated > 0
    assert counts[True].syncs == 0 == counts[False].syncs
    assert counts[True].kernels < counts[False].kernels / 4, (counts[True].kernels, counts[False].kernels)
