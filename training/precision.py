"""--precision, the one numerics flag of every script: how float32 matmuls and convolutions may round, and the
autocast of the loss.

  fp32 (default)  IEEE float32 everywhere. Set explicitly: PyTorch runs cuDNN convolutions in TF32 by default on
                  Ampere and later GPUs, which moved CyGen's compatibility term by 1.2% and its gradient by 5.5%
                  (emulated on the CPU; plain fp32 differs from float64 by 2.4e-5).
  tf32            CUDA matmuls and cuDNN convolutions with TF32 inputs (10-bit mantissa, float32 accumulation): an
                  explicit opt-in for speed on Ampere and later. No effect on a CPU.
  bf16            the loss under torch.autocast(bfloat16): matmuls and convolutions in bfloat16, parameters,
                  gradients and optimizer state in float32. Offered where it was tested against fp32 on the CPU
                  (tests/test_gpu_path.py): the symmetric HVAE and its ELBO, LagVAE / InfoVAE, the CVAE. Refused
                  for CyGen, whose compatibility term takes second derivatives.
"""
import argparse
import contextlib
import functools

import torch

PRECISIONS = ("fp32", "tf32", "bf16")
CYGEN_BF16_REFUSAL = ("CyGen's compatibility term takes second derivatives through the flow, which bfloat16 "
                      "(~3 significant digits) would swamp; the ELBO and DAE baselines of this script share its "
                      "networks and loop")


def precision_type(bf16_refused_because=None):
    """The argparse type of --precision; bf16_refused_because (a reason) makes bf16 an error naming it."""
    def parse(text):
        if text not in PRECISIONS:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(PRECISIONS)}")
        if text == "bf16" and bf16_refused_because:
            raise argparse.ArgumentTypeError(f"bf16 is refused here: {bf16_refused_because}. Use fp32 (the default) "
                                             "or tf32")
        return text
    return parse


def add_precision_arg(parser, bf16_refused_because=None):
    offered = "fp32 or tf32" if bf16_refused_because else "fp32, tf32 or bf16"
    parser.add_argument("--precision", type=precision_type(bf16_refused_because), default="fp32",
                        choices=PRECISIONS[:2] if bf16_refused_because else PRECISIONS,
                        help=f"{offered}: fp32 is IEEE float32 (cuDNN's TF32 default switched off), tf32 lets "
                             "CUDA matmuls and convolutions use TF32, bf16 computes the loss under bfloat16 "
                             "autocast (default: %(default)s)")


def apply_precision(precision, device, cudnn_benchmark=False):
    """Set this process's float32 math for `precision` and return the autocast of the loss, a factory of context
    managers: `with autocast(): loss = ...`. Every setting is written, so one process may run several scripts.

    cudnn_benchmark: let cuDNN time its convolution algorithms once per input shape and keep the fastest, for loops
    whose shapes are fixed (it re-times at every new shape)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    torch.set_float32_matmul_precision("highest")  # also keeps oneDNN's CPU matmuls in IEEE float32
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    if precision == "bf16":
        return functools.partial(torch.autocast, torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext
