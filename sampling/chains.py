"""Sampling from the joint that two compatible conditionals define: Gibbs chains and Langevin dynamics (SGLD).

No prior is needed: for any fixed x0, p(z) is proportional to q(z|x0) / p(x0|z), and for any fixed z, p(x) is
proportional to p(x|z) / q(z|x). The Langevin drifts below are gradients of these log-ratios.
"""
import math

import torch
from torch.autograd import grad

from objectives.cygen import grad_x_log_p, posterior_scores, solve


def langevin_factors(step, n_steps, anneal, freeze):
    """Drift factor a_t = 1 - exp(-(anneal/n)(t+1)) and noise factor f_t = exp(-(freeze/n)(t+1)); 0 turns either off."""
    drift = 1 - math.exp(-(anneal / n_steps) * (step + 1)) if anneal > 0 else 1.0
    noise = math.exp(-(freeze / n_steps) * (step + 1)) if freeze > 0 else 1.0
    return drift, noise


@torch.no_grad()
def gibbs_chain(encoder, decoder, n_steps, x0=None, z0=None):
    """Alternate z ~ q(z|x), x ~ p(x|z) starting from x0 (data) or z0; returns the final (x, z)."""
    z = encoder.sample(x0) if z0 is None else z0
    x = decoder.sample(z)
    for _ in range(n_steps):
        z = encoder.sample(x)
        x = decoder.sample(z)
    return x, z


def z_langevin(encoder, decoder, x0, n_steps, step_size, anneal=0.0, freeze=0.0):
    """SGLD on p(z) at fixed x0 (paper eq. 25), run in e-space because the flow has no inverse.

    dz = eps (grad_z log q(z|x0) - grad_z log p(x0|z)) + sqrt(2 eps) xi, then e += J^{-1} dz (first order, dz = J de).
    The official code moved e by J^{-T} dz. Returns (x ~ p(x|z_T), z_T).
    """
    with torch.no_grad():
        params = encoder.flow_params(x0)
        e = encoder.sample_base(1, x0.shape[0], x0.device)[0]
    for step in range(n_steps):
        with torch.enable_grad():
            e = e.detach().requires_grad_()
            sample = encoder.transform(params, e.unsqueeze(0))
            (grad_e,) = grad(sample.log_q.sum(), e)
            jacobian = encoder.jacobian(params, sample.tanh_grad[0]).detach()
            z = sample.z[0].detach().requires_grad_()
            (grad_z_log_p,) = grad(decoder.log_prob(x0, z).sum(), z)
        drift, noise = langevin_factors(step, n_steps, anneal, freeze)
        grad_z_log_q = solve(jacobian.transpose(-1, -2), grad_e)
        dz = drift * step_size * (grad_z_log_q - grad_z_log_p) + math.sqrt(2 * step_size * noise) * torch.randn_like(z)
        e = e.detach() + solve(jacobian, dz)
    with torch.no_grad():
        z = encoder.transform(params, e.unsqueeze(0)).z[0]
        return decoder.sample(z), z


def x_langevin(encoder, decoder, x0, n_steps, step_size, anneal=0.0, freeze=0.0, x_range=None):
    """SGLD on p(x) with a fresh z ~ q(z|x_t) each step:
    x <- clip(x + a_t eps (grad_x log p(x|z) - grad_x log q(z|x)) + sqrt(2 eps f_t) xi). Returns (x_T, z ~ q(z|x_T)).
    Both x-gradients are partial derivatives at fixed z (the official code's log p term was a total derivative, B2).
    """
    x = x0.detach()
    for step in range(n_steps):
        with torch.enable_grad():
            x_var = x.detach().requires_grad_()
            params = encoder.flow_params(x_var)
            e = encoder.sample_base(1, x.shape[0], x.device)[0].requires_grad_()
            scores = posterior_scores(encoder, x_var, params, e, create_graph=False)
            score = grad_x_log_p(decoder, x_var, scores.z.detach(), create_graph=False) - scores.grad_x_log_q
        drift, noise = langevin_factors(step, n_steps, anneal, freeze)
        x = x + drift * step_size * score + math.sqrt(2 * step_size * noise) * torch.randn_like(x)
        if x_range is not None:
            x = x.clamp(*x_range)
    return x, encoder.sample(x)
