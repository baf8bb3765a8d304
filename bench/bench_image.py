"""Time one training step of main_image.py (forward, backward, Adamax) at the MNIST configuration.

    python bench/bench_image.py [--device cpu|cuda] [--threads 2] [--batch_size 100] [--repeats 5]
                                [--summary results/image_speed.json]

The CyGen step (d_z = 64, 4 flows x 8 reflections, jacnorm_x, M = 1) is reported beside the ELBO warm-up step of the
same networks measured in the same run, as ms per image, images/s and peak memory. The official code's CyGen step,
measured on this project's CPU with 2 threads and no other load, took ~1.9 s at batch 32, ~59 ms per image (spec).
"""
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401

import torch  # noqa: E402

from bench.timing import (bench_device, bench_parser, median_seconds, training_step,  # noqa: E402
                          write_bench_summary)
from models.image import image_decoder, image_encoder  # noqa: E402
from objectives.cygen import cygen_loss  # noqa: E402
from objectives.vae import elbo_loss  # noqa: E402

OFFICIAL_MS_PER_IMAGE = 1900 / 32
BASELINE, CYGEN = "elbo warm-up step (baseline)", "cygen jacnorm_x"


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def main():
    parser = bench_parser(__doc__, threads=2, summary_example="results/image_speed.json")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = bench_device(args)
    torch.manual_seed(0)
    encoder, decoder = image_encoder((1, 28, 28)).to(device), image_decoder((1, 28, 28)).to(device)
    parameters = list(encoder.parameters()) + list(decoder.parameters())
    x = torch.rand(args.batch_size, 1, 28, 28, device=device)
    cases = {BASELINE: lambda: elbo_loss(encoder, decoder, x)[0],
             CYGEN: lambda: cygen_loss(encoder, decoder, x, 1, "jacnorm_x", 1e-3)[0]}
    print(f"device {device}, threads {args.threads}, batch {args.batch_size}, d_z 64, 4 flows x 8 reflections")
    seconds, memory = {}, {}
    for name, loss in cases.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds[name] = median_seconds(training_step(loss, torch.optim.Adamax(parameters, lr=1e-4, eps=1e-7)),
                                       device, args.repeats, warmup=1)
        memory[name] = peak_memory_mb(device)
    scale = f"batch {args.batch_size}, {args.threads} threads, median of {args.repeats} steps"
    rows = []
    for name, s in seconds.items():
        per_image = s * 1e3 / args.batch_size
        print(f"{name:30s} {s:7.3f} s/step  {per_image:6.2f} ms/image  {args.batch_size / s:7.1f} images/s  "
              f"peak memory {memory[name]:.0f} MB  {s / seconds[BASELINE]:.2f}x the ELBO step")
        paper = f"official code ~{OFFICIAL_MS_PER_IMAGE:.0f} (CPU, unloaded)" if name == CYGEN else None
        rows += [dict(method=name, dataset="mnist", metric="ms per image", ours=round(per_image, 2),
                      paper=paper if device.type == "cpu" else None, scale=scale),
                 dict(method=name, dataset="mnist", metric="images per s", ours=round(args.batch_size / s, 1),
                      paper=None, scale=scale)]
    cygen_ms = seconds[CYGEN] * 1e3 / args.batch_size
    ratio = seconds[CYGEN] / seconds[BASELINE]
    rows.append(dict(method=CYGEN, dataset="mnist", metric="x the ELBO step", ours=round(ratio, 2), paper=None,
                     scale=scale))
    if device.type == "cpu":
        print(f"vs the official code's ~{OFFICIAL_MS_PER_IMAGE:.0f} ms per image: {OFFICIAL_MS_PER_IMAGE / cygen_ms:.1f}x")
        rows.append(dict(method=CYGEN, dataset="mnist", metric="speed-up per image over the official code",
                         ours=round(OFFICIAL_MS_PER_IMAGE / cygen_ms, 2), paper="5x (target)", scale=scale))
    if args.summary:
        write_bench_summary(args.summary, device, "Speed of one CyGen image training step (MNIST configuration)", rows)


if __name__ == "__main__":
    main()
