"""Sample tensor files: the one format every `--save_samples` writes and compute_gen_fid.py reads.

A file holds a uint8 tensor [N, C, H, W] (C = 1 or 3) quantised exactly as torchvision's save_image quantises a PNG
(x * 255 + 0.5, clamped, truncated), so scoring the tensor equals scoring a folder of the same images saved as PNGs.
"""
from pathlib import Path

import torch


def quantize(images):
    """Float images in [0, 1] -> uint8, the save_image way."""
    return images.detach().mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


def save_sample_tensor(path, images):
    """images: float [N, C, H, W] in [0, 1] or uint8; written atomically-enough via a temp file + rename."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"samples must be [N, C, H, W] with C in (1, 3), got {tuple(images.shape)}")
    images = images if images.dtype == torch.uint8 else quantize(images)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(images.cpu().contiguous(), temporary)
    temporary.replace(path)
    return path


def load_sample_tensor(path):
    images = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4
            and images.shape[1] in (1, 3)):
        raise ValueError(f"{path} is not a sample tensor file (uint8 [N, C, H, W], C in 1 or 3); "
                         "write it with evaluation.samples.save_sample_tensor or a script's --save_samples")
    return images
