"""Opt-in torch.compile of the small functions a flow runs once per step (main_toy.py --compile_flow true).

The toy flow runs 32 steps of 2x2 per-sample algebra, so eager PyTorch is bound by the number of ATen calls; each of
these functions has the same shapes at every step, so one compile serves all steps, and inductor fuses each call into
a few C++ loops, with the backward pass generated alongside. Compiled versions are handed out only where gradients
are recorded (training, the compatibility metric): no-grad calls (sampling, plots) stay eager rather than compile a
graph for every shape they use. Each new shape (an evaluation batch) compiles once, statically.
"""
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


def step_function(function):
    """`function`, or its torch.compile'd version once `enable()` was called (compiled on first use)."""
    if not (_enabled and torch.is_grad_enabled()):
        return function
    if function not in _compiled:
        _compiled[function] = torch.compile(function, dynamic=False)
    return _compiled[function]
