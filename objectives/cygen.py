"""CyGen's objective (Liu et al., NeurIPS 2021): L_fit(x) + w_cm * C(x), no prior on z.

The encoder is a flow z = T(e, x) without a tractable inverse, so derivatives of log q(z|x) at fixed z are
obtained from derivatives in (e, x) and the closed-form Jacobian J = dz/de (all per sample, batched):
    grad_z log q = J^{-T} grad_e log q~(e, x)
    grad_x log q = grad_x log q~(e, x) - (dT/dx)^T grad_z log q             (paper eqs. 21-22)
where log q~(e, x) = log q(T(e, x)|x). Samples never interact, so gradients of batch sums are per-sample gradients.
"""
import math
from dataclasses import dataclass, fields

import torch
from torch.autograd import grad

from models.compiled_steps import step_function
from models.sylvester import FlowParams, eye_like, matmul

COMPATIBILITY_VARIANTS = ("jacnorm_x", "jacnorm_lite_x")


@dataclass
class PosteriorScores:
    """Derivatives of log q(z|x) at one sample z = T(e, x) per row."""
    z: torch.Tensor             # [B, D], still a function of (e, x, encoder parameters)
    jacobian: torch.Tensor      # [B, D, D]  dz/de
    grad_z_log_q: torch.Tensor  # [B, D]
    grad_x_log_q: torch.Tensor  # [B, *x_shape], partial derivative at fixed z


def solve(matrix, vector):
    """Batched solve that never raises or syncs: a singular row (a collapsed q, e.g. after adversarial training)
    yields non-finite values, which training reports at its next log point and plots leave out."""
    return torch.linalg.solve_ex(matrix, vector.unsqueeze(-1))[0].squeeze(-1)


def posterior_scores(encoder, x, params, e, create_graph=True) -> PosteriorScores:
    """`x` and `e` ([B, D]) must require grad and `params` must be `encoder.flow_params(x)`."""
    sample = encoder.transform(params, e.unsqueeze(0))
    z = sample.z[0]
    jacobian = encoder.jacobian(params, sample.tanh_grad[0])
    grad_e, grad_x = grad(sample.log_q.sum(), (e, x), retain_graph=True, create_graph=create_graph)
    grad_z_log_q = solve(jacobian.transpose(-1, -2), grad_e)
    (chain_term,) = grad(z, x, grad_outputs=grad_z_log_q, create_graph=create_graph)
    return PosteriorScores(z, jacobian, grad_z_log_q, grad_x - chain_term)


def grad_x_log_p(decoder, x, z, create_graph=True):
    """Partial x-derivative of log p(x|z) at fixed z. The official code let z = T(e, x) move with x (bug B2)."""
    x_free = x.detach().requires_grad_()
    (gradient,) = grad(decoder.log_prob(x_free, z).sum(), x_free, create_graph=create_graph)
    return gradient


def decoder_mixed_score(decoder, x, z, eta):
    """g_p = grad_z[eta^T grad_x log p(x|z)], [B, D], differentiable (a decoder pass, a backward pass, and their
    double backward in the final loss.backward())."""
    (p_term,) = grad((grad_x_log_p(decoder, x, z) * eta).sum(), z, create_graph=True)
    return p_term


def directional_flow_params(encoder, x, eta):
    """The flow parameters theta(x) and their derivative along eta, d/dt theta(x + t eta) at t = 0, by forward-mode
    differentiation: through the body and the linear heads layer by layer (models.tangents), through the heads'
    nonlinear assembly with torch.func.jvp (compiled with --compile_flow). The tangent stays differentiable w.r.t.
    the weights."""
    heads, heads_tangent = encoder.head_outputs_with_tangent(x, eta)
    params, tangent = step_function(assemble_with_tangent)(encoder, heads, heads_tangent)
    return FlowParams(*params), FlowParams(*tangent)


def assemble_with_tangent(encoder, head_outputs, head_tangent):
    """encoder.assemble(head_outputs) and its derivative along head_tangent, as tuples in FlowParams' field order."""
    def assemble(heads):
        params = encoder.assemble(heads)
        return tuple(getattr(params, field.name) for field in fields(params))
    return torch.func.jvp(assemble, (head_outputs,), (head_tangent,))


# Up to this latent size the mixed derivative grad_e[eta^T grad_x log q] is pushed forward through the flow as
# explicit second-order jets (cost ~D^4 per step, one backward pass in the end); above it, nested autograd.
JET_MAX_DIM = 4


def compatibility_probe(encoder, decoder, x, params, tangent, e, eta, method=None):
    """One Hutchinson probe eta ~ N(0, I_dx) at z = T(e, x): returns (g_p, grad_e[eta^T grad_x log q], J) with
    g_p = grad_z[eta^T grad_x log p(x|z)]; (params, tangent) = directional_flow_params(encoder, x, eta).

    The directional x-derivative of log q at fixed z is taken in the flow's parameter space,
        eta^T grad_x log q = d/dt log q~(e, theta_t) - (d/dt T(e, theta_t))^T grad_z log q,   theta_t = theta + t theta',
    so the higher-order derivatives never run backwards through the encoder body: the body is passed once forward
    (with its tangent) and once backward, in the final loss.backward(). `method` ("jets" or "autograd") overrides
    the choice by latent size; both give the same values and gradients.
    """
    method = method or ("jets" if encoder.z_dim <= JET_MAX_DIM else "autograd")
    if method == "jets":
        z, q_term, jacobian = mixed_score_by_jets(params, tangent, e)
    else:
        z, q_term, jacobian = mixed_score_by_autograd(encoder, params, tangent, e)
    return decoder_mixed_score(decoder, x, z, eta), q_term, jacobian


def mixed_score_by_autograd(encoder, params, tangent, e):
    """(z, grad_e[eta^T grad_x log q], J) by nested reverse-mode derivatives of the flow."""
    e = e.detach().requires_grad_()
    t = torch.zeros(e.shape[0], dtype=e.dtype, device=e.device, requires_grad=True)
    # the parameters are batch-last, so the per-row t broadcasts over them as is
    moved = FlowParams(**{field.name: getattr(params, field.name) + t * getattr(tangent, field.name)
                          for field in fields(params)})
    sample = encoder.transform(moved, e.unsqueeze(0))
    z, log_q = sample.z[0], sample.log_q[0]
    jacobian = encoder.jacobian(moved, sample.tanh_grad[0])
    (grad_e,) = grad(log_q.sum(), e, create_graph=True)
    grad_z_log_q = solve(jacobian.transpose(-1, -2), grad_e)
    # d/dt of log q~ - z . grad_z log q with grad_z log q held fixed in t (it enters as a cotangent); rows are
    # independent, so the gradient of the batch sum w.r.t. t is the per-row derivative.
    (directional,) = grad((log_q, z), t, grad_outputs=(torch.ones_like(log_q), -grad_z_log_q), create_graph=True)
    (q_term,) = grad(directional.sum(), e, create_graph=True)
    return z, q_term, jacobian


@dataclass
class FlowJets:
    """Derivatives of z = T(e, theta_t) and of log q~ = log q(T(e, theta_t)|x) in e (indices a, b) and t at t = 0,
    batch-last: z [D, B], z_e [D, D, B] (= J), z_ee [D, D, D, B], z_t [D, B], z_et [D, D, B];
    log q~: l_e [D, B], l_ee [D, D, B], l_et [D, B] (its value and l_t are not needed)."""
    z: torch.Tensor
    z_e: torch.Tensor
    z_ee: torch.Tensor
    z_t: torch.Tensor
    z_et: torch.Tensor
    l_e: torch.Tensor
    l_ee: torch.Tensor
    l_et: torch.Tensor


def apply(matrix, t):
    """A batch-last matrix [D, D, B] applied to the first axis of t [D, ..., B]."""
    return matmul(matrix, t.reshape(t.shape[0], -1, t.shape[-1])).view(-1, *t.shape[1:])


def jet_step(j: FlowJets, inner, outer, bias, diag_product, inner_t, outer_t, bias_t, diag_product_t) -> FlowJets:
    """One flow step z + C tanh(A z + b) (A = R2 Q^T, C = Q R1) and its log-det term sum_i log(1 + h'_i d_i), pushed
    forward through the jets; *_t are the parameters' t-derivatives."""
    u_e, u_ee = apply(inner, j.z_e), apply(inner, j.z_ee)
    u_t = apply(inner_t, j.z) + apply(inner, j.z_t) + bias_t
    u_et = apply(inner_t, j.z_e) + apply(inner, j.z_et)
    h = torch.tanh(apply(inner, j.z) + bias)
    h1 = 1 - h * h  # first, second and third derivatives of tanh at u
    h2 = -2 * h * h1
    h3 = -2 * h1 * (1 - 3 * h * h)
    u_e_u_e = u_e.unsqueeze(2) * u_e.unsqueeze(1)  # [D, D, D, B]: u_e[i, a] u_e[i, b]
    hidden_e = h1.unsqueeze(1) * u_e
    hidden_ee = h2[:, None, None] * u_e_u_e + h1[:, None, None] * u_ee
    hidden_t = h1 * u_t
    hidden_et = (h2 * u_t).unsqueeze(1) * u_e + h1.unsqueeze(1) * u_et
    # log(1 + h1 d): derivatives in e and t through h1(u) and d(t)
    ratio = 1 + h1 * diag_product
    alpha, gamma = diag_product * h2 / ratio, diag_product * h3 / ratio
    curvature = gamma - alpha * alpha
    l_e = j.l_e - (alpha.unsqueeze(1) * u_e).sum(0)
    l_ee = j.l_ee - (curvature[:, None, None] * u_e_u_e + alpha[:, None, None] * u_ee).sum(0)
    l_et = j.l_et - ((curvature * u_t + diag_product_t / ratio * (h2 - alpha * h1)).unsqueeze(1) * u_e
                     + alpha.unsqueeze(1) * u_et).sum(0)
    return FlowJets(z=j.z + apply(outer, h), z_e=j.z_e + apply(outer, hidden_e), z_ee=j.z_ee + apply(outer, hidden_ee),
                    z_t=j.z_t + apply(outer_t, h) + apply(outer, hidden_t),
                    z_et=j.z_et + apply(outer_t, hidden_e) + apply(outer, hidden_et), l_e=l_e, l_ee=l_ee, l_et=l_et)


def mixed_score_by_jets(params: FlowParams, tangent: FlowParams, e):
    """(z, grad_e[eta^T grad_x log q], J) from second-order jets pushed forward through the flow: only first-order
    graphs, so the final backward pass is the only reverse pass. With g_z = J^{-T} l_e (= grad_z log q) and
    w = J^{-1} z_t, differentiating eta^T grad_x log q = l_t - z_t . g_z in e gives
        q_j = l_et[j] - sum_i g_z[i] z_et[i, j] - sum_m w[m] l_ee[m, j] + sum_im g_z[i] z_ee[i, m, j] w[m]."""
    D, B = params.mean.shape
    e = e.T
    eye = eye_like(e, D)
    jets = FlowJets(z=torch.addcmul(params.mean, params.std, e), z_e=eye * params.std, z_ee=e.new_zeros(D, D, D, B),
                    z_t=torch.addcmul(tangent.mean, tangent.std, e), z_et=eye * tangent.std,
                    l_e=-e, l_ee=-eye.expand(D, D, B), l_et=e.new_zeros(D, B))
    names = ("inner", "outer", "bias", "diag_product")
    step_fn = step_function(jet_step)
    for step in zip(*(getattr(params, n).unbind(0) for n in names), *(getattr(tangent, n).unbind(0) for n in names)):
        jets = step_fn(jets, *step)
    jacobian = jets.z_e.permute(2, 0, 1)
    g_z = solve(jacobian.transpose(-1, -2), jets.l_e.T).T
    w = solve(jacobian, jets.z_t.T).T
    q_term = (jets.l_et - (g_z.unsqueeze(1) * jets.z_et).sum(0) - (w.unsqueeze(1) * jets.l_ee).sum(0)
              + (g_z[:, None, None] * jets.z_ee * w.unsqueeze(1)).sum((0, 1)))
    return jets.z.T, q_term.T, jacobian


def compatibility_from_probe(p_term, q_term, jacobian, variant):
    """Per-sample squared norm, [B]:
    jacnorm_x:      ||g_p - J^{-T} grad_e[eta^T grad_x log q]||^2   (= ||M^T eta||^2, M the mixed Hessian)
    jacnorm_lite_x: ||stopgrad(J)^T g_p - grad_e[eta^T grad_x log q]||^2   (paper eq. 23: no second solve)
    """
    if variant == "jacnorm_x":
        difference = p_term - solve(jacobian.transpose(-1, -2), q_term)
    elif variant == "jacnorm_lite_x":
        difference = (jacobian.detach().transpose(-1, -2) @ p_term.unsqueeze(-1)).squeeze(-1) - q_term
    else:
        raise ValueError(f"unknown compatibility variant {variant!r}; choose one of {COMPATIBILITY_VARIANTS}")
    return difference.pow(2).sum(-1)


def compatibility_terms(encoder, decoder, x, variant, e=None, eta=None, directional=None):
    """Per-sample Hutchinson estimate of ||grad_x grad_z^T log(p(x|z) / q(z|x))||_F^2 at z ~ q(z|x), [B]
    (for jacnorm_lite_x, of the same norm with J^T applied); e and eta are drawn when not given. `directional`
    reuses a directional_flow_params(encoder, x, eta) pass."""
    if e is None:
        e = encoder.sample_base(1, x.shape[0], x.device)[0]
    eta = torch.randn_like(x) if eta is None else eta
    params, tangent = directional_flow_params(encoder, x, eta) if directional is None else directional
    return compatibility_from_probe(*compatibility_probe(encoder, decoder, x, params, tangent, e, eta), variant)


def exact_compatibility(encoder, decoder, x):
    """Both variants' values without probe noise (batch mean at one z per row): the probe swept over the basis of
    x. Costs one probe pass per data dimension, so it is meant for low-dimensional x (toys, tests)."""
    with torch.enable_grad():
        e = encoder.sample_base(1, x.shape[0], x.device)[0]
        totals = dict.fromkeys(COMPATIBILITY_VARIANTS, 0.0)
        for direction in torch.eye(x[0].numel(), dtype=x.dtype, device=x.device):
            eta = direction.view_as(x[0]).expand_as(x)
            params, tangent = directional_flow_params(encoder, x, eta)
            probe = [t.detach() for t in compatibility_probe(encoder, decoder, x, params, tangent, e, eta)]
            for variant in COMPATIBILITY_VARIANTS:
                totals[variant] = totals[variant] + compatibility_from_probe(*probe, variant)
    return {variant: total.mean() for variant, total in totals.items()}


def harmonic_mean_log_px(log_p_x_given_z):
    """log p(x) from p(x) = 1 / E_q[1 / p(x|z)] with M samples: log_p_x_given_z [M, B] -> [B]."""
    n_samples = log_p_x_given_z.shape[0]
    return -torch.logsumexp(-log_p_x_given_z, dim=0) + math.log(n_samples)


def cygen_noise(encoder, x, n_mc, w_cm):
    """The random draws of one cygen_loss call, in its order: (e_fit [n_mc, B, D], e [B, D], eta like x), the last
    two None when w_cm = 0."""
    e_fit = encoder.sample_base(n_mc, x.shape[0], x.device)
    if w_cm == 0:
        return e_fit, None, None
    return e_fit, encoder.sample_base(1, x.shape[0], x.device)[0], torch.randn_like(x)


def cygen_loss(encoder, decoder, x, n_mc, variant, w_cm, compiled=False):
    """Returns (loss, fit, compatibility). One body pass of the encoder serves both terms. `compiled`: the same
    loss through torch.func transforms as one torch.compile graph (models.compiled_steps.compiled_cygen_loss, the
    --compile_flow path of main_image.py), from the same random draws."""
    x = x.detach()
    e_fit, e, eta = cygen_noise(encoder, x, n_mc, w_cm)
    if compiled:
        from models.compiled_steps import compiled_cygen_loss
        return compiled_cygen_loss(encoder, decoder, variant, w_cm)(x, e_fit, e, eta)
    if w_cm == 0:  # the no-compatibility ablation: skip the third-order graph entirely
        params, compatibility = encoder.flow_params(x), torch.zeros((), device=x.device)
    else:
        params, tangent = directional_flow_params(encoder, x, eta)
        compatibility = compatibility_terms(encoder, decoder, x, variant, e=e, eta=eta,
                                            directional=(params, tangent)).mean()
    fit = -harmonic_mean_log_px(decoder.log_prob(x, encoder.transform(params, e_fit).z)).mean()
    return fit + w_cm * compatibility, fit, compatibility


# ---- the same loss through torch.func, traceable as one torch.compile graph ---------------------------------------
# torch.compile cannot trace torch.autograd.grad(create_graph=True): the nested derivatives are written with
# torch.func transforms instead (grad for reverse mode at one level, jvp for the t-derivative), which dynamo traces
# into one graph whose backward AOTAutograd derives. Same quantities as the autograd path above, term by term.

def decoder_mixed_score_func(decoder, x, z, eta):
    """decoder_mixed_score by torch.func: g_p = grad_z[eta^T grad_x log p(x|z)], differentiable."""
    def directional_x_score(z):
        grad_x = torch.func.grad(lambda x_free: decoder.log_prob(x_free, z).sum())(x)
        return (grad_x * eta).sum()
    return torch.func.grad(directional_x_score)(z)


def mixed_score_by_func(encoder, params: FlowParams, tangent: FlowParams, e):
    """mixed_score_by_autograd by torch.func: (z, grad_e[eta^T grad_x log q], J). The t-derivative of
    (log q~, z) along the parameters' tangent is a jvp; grad_z log q = J^{-T} grad_e log q~ depends on e and is
    differentiated with it, as the autograd path's cotangent is."""
    names = [field.name for field in fields(params)]
    primal, tangent = tuple(getattr(params, n) for n in names), tuple(getattr(tangent, n) for n in names)

    def flow(e, flow_params):
        sample = encoder.transform(FlowParams(*flow_params), e.unsqueeze(0))
        return sample.log_q[0], sample.z[0], sample.tanh_grad[0]

    def log_q_sum(e):
        log_q, z, tanh_grad = flow(e, primal)
        return log_q.sum(), (z, tanh_grad)

    def directional_score(e):
        grad_e, (z, tanh_grad) = torch.func.grad(log_q_sum, has_aux=True)(e)
        jacobian = encoder.jacobian(params, tanh_grad)
        grad_z_log_q = solve(jacobian.transpose(-1, -2), grad_e)
        _, (log_q_t, z_t) = torch.func.jvp(lambda p: flow(e, p)[:2], (primal,), (tangent,))
        return (log_q_t - (z_t * grad_z_log_q).sum(-1)).sum(), (z, jacobian)

    q_term, (z, jacobian) = torch.func.grad(directional_score, has_aux=True)(e)
    return z, q_term, jacobian


def cygen_loss_func(encoder, decoder, variant, w_cm, x, e_fit, e, eta):
    """cygen_loss's value at given draws (cygen_noise), every derivative by torch.func: the function that
    models.compiled_steps compiles. The probe's flow derivatives by nested reverse mode at every latent size."""
    if w_cm == 0:
        params, compatibility = encoder.flow_params(x), torch.zeros((), device=x.device)
    else:
        params, tangent = directional_flow_params(encoder, x, eta)
        z, q_term, jacobian = mixed_score_by_func(encoder, params, tangent, e)
        p_term = decoder_mixed_score_func(decoder, x, z, eta)
        compatibility = compatibility_from_probe(p_term, q_term, jacobian, variant).mean()
    fit = -harmonic_mean_log_px(decoder.log_prob(x, encoder.transform(params, e_fit).z)).mean()
    return fit + w_cm * compatibility, fit, compatibility
