"""What predicts a step's speed on a GPU, counted on any device (the CPU included).

A GPU launches about one kernel per ATen op that is not a view, and each launch costs ~10 us of host time, so a step
of many tiny ops is bound by launches; a host sync (reading a device value on the host: .item(), bool(tensor),
float(tensor), or an op whose output shape depends on the data) stalls the host until the GPU has drained its queue.
Both are counted here with a TorchDispatchMode, which sees every op below autograd, the backward pass included.
"""
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

# Ops that read device memory on the host, or whose output size depends on the values (so the host must wait).
SYNC_OPS = frozenset({"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten._unique2",
                      "aten.unique_consecutive", "aten.unique_dim", "aten.repeat_interleave"})


@dataclass
class DispatchCounts:
    kernels: int = 0  # ops that write memory: ~ kernel launches on a GPU
    no_launch: int = 0  # ops that only alias or describe (view, expand, detach, no-op .to, size checks): no launch
    syncs: int = 0  # host syncs
    by_op: Counter = field(default_factory=Counter)  # every op by name

    def per_call(self, calls):
        """The counts divided by `calls` (the counter saw that many steps)."""
        return {"kernels": self.kernels / calls, "no_launch": self.no_launch / calls, "syncs": self.syncs / calls}


class DispatchCounter(TorchDispatchMode):
    """with DispatchCounter(optimizers) as counter: ...; then counter.counts holds what was dispatched inside.

    The step counters of torch.optim optimizers stay on the host on every device (unless capturable), so reading
    them is no sync on a GPU either: reads of the given optimizers' counters are not counted as syncs."""

    def __init__(self, optimizers=()):
        super().__init__()
        self.counts = DispatchCounts()
        self.optimizers = optimizers

    def reads_a_host_counter(self, args):
        return any(args[0] is state.get("step") for optimizer in self.optimizers for state in optimizer.state.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = func.overloadpacket._qualified_op_name.replace("::", ".")
        self.counts.by_op[name] += 1
        if name in SYNC_OPS and not (name == "aten._local_scalar_dense" and self.reads_a_host_counter(args)):
            self.counts.syncs += 1
        if launches_a_kernel(func, (args, kwargs), result):
            self.counts.kernels += 1
        else:
            self.counts.no_launch += 1
        return result


def tensors_in(tree):
    return [leaf for leaf in pytree.tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


def launches_a_kernel(func, inputs, result):
    """An op writes memory when it mutates an input (add_, copy_, out=) or returns a tensor in new memory; views,
    no-op conversions (.to of the same dtype) and shape queries only return aliases or numbers."""
    if func._schema.is_mutable:
        return True
    outputs = [tensor for tensor in tensors_in(result) if tensor.numel()]
    try:
        input_storages = {tensor.untyped_storage().data_ptr() for tensor in tensors_in(inputs)}
        return any(tensor.untyped_storage().data_ptr() not in input_storages for tensor in outputs)
    except RuntimeError:  # tensors without storage (inside torch.func transforms): the schema decides
        return bool(outputs) and not func.is_view


def count_dispatches(function, calls=1, optimizers=()):
    """Call function() `calls` times under one DispatchCounter(optimizers); returns its DispatchCounts (totals)."""
    with DispatchCounter(optimizers) as counter:
        for _ in range(calls):
            function()
    return counter.counts
