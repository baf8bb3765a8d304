"""Import-first compatibility shim.

The PyPI torchvision wheel is a CUDA build; next to a CPU-only torch its import fails with
`operator torchvision::nms does not exist`. Declaring the two missing operator schemas before the import lets
datasets, transforms, utils and the Inception model work (torchvision.ops and .io stay unusable; nothing here
uses them). On a matching torch/torchvision pair the operators exist and nothing is declared.
"""
import torch


def _declare_missing_torchvision_ops():
    try:
        torch.ops.torchvision.nms
        return
    except (AttributeError, RuntimeError):
        pass
    for name in ("nms", "qnms"):
        torch.library.define(f"torchvision::{name}",
                             "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


_declare_missing_torchvision_ops()
