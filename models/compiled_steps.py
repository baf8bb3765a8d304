"""Opt-in torch.compile of the small functions a flow runs once per step (main_toy.py --compile_flow true).

The toy flow runs 32 steps of 2x2 per-sample algebra, so eager PyTorch is bound by the number of ATen calls; each of
these functions has the same shapes at every step, so one compile serves all steps, and inductor fuses each call into
a few C++ loops, with the backward pass generated alongside. Compiled versions are handed out only where gradients
are recorded (training, the compatibility metric): no-grad calls (sampling, plots) stay eager rather than compile a
graph for every shape they use. Each new shape (an evaluation batch) compiles once, statically.

main_image.py --compile_flow true compiles more: its whole CyGen loss (encoder body with its x-tangent, flow
assembly, the probe's nested flow derivatives, the decoder's p-term and fit term) as one graph, from
objectives.cygen.cygen_loss_func (torch.func transforms where the eager path nests torch.autograd.grad), so that
the step launches a few hundred fused kernels instead of ~2,800 ATen ops (bench/counting.py).
"""
import contextlib
import shutil

import torch

_compiled = {}
_enabled = False


def compiler_available():
    """torch.compile needs a C/C++ compiler on PATH: inductor builds C++ kernels on CPU, Triton its launcher on GPU."""
    return bool(shutil.which("g++") or shutil.which("c++"))


def enable():
    """From now on (in this process) `step_function` hands out compiled versions."""
    global _enabled
    _enabled = True


@contextlib.contextmanager
def enabled(flag):
    """Inside, `step_function` hands out compiled versions or not, as `flag` says (the benches time both in turn)."""
    global _enabled
    before, _enabled = _enabled, flag
    try:
        yield
    finally:
        _enabled = before


def step_function(function):
    """`function`, or its torch.compile'd version once `enable()` was called (compiled on first use)."""
    if not (_enabled and torch.is_grad_enabled()):
        return function
    if function not in _compiled:
        _compiled[function] = torch.compile(function, dynamic=False)
    return _compiled[function]


_compiled_losses = {}


def compiled_cygen_loss(encoder, decoder, variant, w_cm):
    """(x, e_fit, e, eta) -> (loss, fit, compatibility) of objectives.cygen.cygen_loss_func with these modules, one
    torch.compile graph (fullgraph: a graph break would split the nested derivatives), built on first use per
    module pair, variant and weight; each new input shape compiles once, statically."""
    from objectives.cygen import cygen_loss_func
    key = (encoder, decoder, variant, float(w_cm))
    if key not in _compiled_losses:
        def loss(x, e_fit, e, eta):
            return cygen_loss_func(encoder, decoder, variant, w_cm, x, e_fit, e, eta)
        _compiled_losses[key] = torch.compile(loss, fullgraph=True, dynamic=False)
    return _compiled_losses[key]
