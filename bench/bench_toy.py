"""Time one training step of main_toy.py (forward, backward, Adam) at the paper's configuration.

    python bench/bench_toy.py [--device cpu|cuda] [--threads 1] [--batch_size 1000] [--repeats 20]

CyGen's step (harmonic-mean fit with M=16 + compatibility term, F=32 flows) is reported beside the ELBO step of
the same networks measured in the same run, so the ratio survives a noisy, shared machine. The official code's
step, measured on this project's 2-core CPU with one thread and no other load, took ~0.47 s (spec).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from models.toy import toy_decoder, toy_encoder  # noqa: E402
from objectives.cygen import cygen_loss  # noqa: E402
from objectives.vae import elbo_loss  # noqa: E402

OFFICIAL_SECONDS_PER_STEP = 0.47


def time_step(loss_fn, parameters, device, repeats, warmup=3):
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]  # the median resists the machine's other load


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=1000)
    parser.add_argument("--n_mc_px", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder, decoder = toy_encoder().to(device), toy_decoder(0.01).to(device)
    parameters = list(encoder.parameters()) + list(decoder.parameters())
    x = torch.randn(args.batch_size, 2, device=device)

    cases = {
        "elbo (baseline)": lambda: elbo_loss(encoder, decoder, x, args.n_mc_px)[0],
        "cygen fit only (w_cm=0)": lambda: cygen_loss(encoder, decoder, x, args.n_mc_px, "jacnorm_lite_x", 0.0)[0],
        "cygen jacnorm_lite_x": lambda: cygen_loss(encoder, decoder, x, args.n_mc_px, "jacnorm_lite_x", 1e-5)[0],
        "cygen jacnorm_x": lambda: cygen_loss(encoder, decoder, x, args.n_mc_px, "jacnorm_x", 1e-5)[0],
    }
    print(f"device {device}, threads {args.threads}, batch {args.batch_size}, F=32 flows, M={args.n_mc_px}")
    seconds = {name: time_step(fn, parameters, device, args.repeats) for name, fn in cases.items()}
    baseline = seconds["elbo (baseline)"]
    for name, s in seconds.items():
        print(f"{name:26s} {s * 1e3:8.1f} ms/step  {1 / s:7.1f} steps/s  {s / baseline:5.2f}x the ELBO step")
    lite = seconds["cygen jacnorm_lite_x"]
    if device.type == "cpu":
        print(f"vs the official code's {OFFICIAL_SECONDS_PER_STEP} s/step (1 thread, spec): "
              f"{OFFICIAL_SECONDS_PER_STEP / lite:.1f}x faster; 30000 iterations ~ {30000 * lite / 60:.0f} min")


if __name__ == "__main__":
    main()
