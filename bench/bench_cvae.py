"""Time a CVAE training epoch and the 100-sample CLL evaluation of main_cvae.py at the paper's configuration.

    python bench/bench_cvae.py [--device auto|cpu|cuda|cuda:N] [--precision fp32|tf32|bf16] [--threads 1]
                               [--steps 30] [--eval_images 500] [--summary results/cvae_speed.json]

An epoch is 50000 / 128 = 391 steps (forward through the frozen baseline, -ELBO, backward, Adam); the median step is
timed after a warm-up and scaled to an epoch, with its kernels, host syncs and peak memory (bench/counting.py), images
per second and the hours of the longest protocol run (101 epochs, the early-stopping cap, plus the evaluation). The
evaluation (Monte Carlo and importance sampling with S = 100, plus the 10-particle -ELBO) is timed on --eval_images
test images and scaled to the 10000-image test set. The anchor is
Pyro's examples/cvae epoch on the same machine (Trace_ELBO, 1 particle, DataLoader with per-item transforms),
measured with `pip install pyro-ppl` in a throwaway venv; see results/cvae_notes.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (before torchvision)


import torch  # noqa: E402

from data.images import load_image_dataset  # noqa: E402
from evaluation.cvae import negative_clls  # noqa: E402
from models.cvae import CVAE, BaselineNet  # noqa: E402
from bench.timing import (bench_device, bench_parser, median_seconds, profile_line, profile_rows,  # noqa: E402
                          profile_step, write_bench_summary)
from objectives.cvae import QUADRANT_SETTINGS, QuadrantTask, negative_elbo  # noqa: E402

TRAIN_IMAGES, TEST_IMAGES, BATCH, MAX_EPOCHS = 50000, 10000, 128, 101


def main(argv=None):
    parser = bench_parser(__doc__, threads=1, summary_example="results/cvae_speed.json")
    parser.add_argument("--quadrants", type=int, choices=QUADRANT_SETTINGS, default=1,
                        help="quadrants given as input x, as main_cvae.py --quadrants (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--eval_images", type=int, default=500, help="timed test images (S = 100)")
    parser.add_argument("--data_root", default="datasets", help="MNIST in torchvision's layout (default: %(default)s)")
    args = parser.parse_args(argv)
    device, autocast = bench_device(args)
    torch.manual_seed(0)
    data = load_image_dataset("mnist", args.data_root, device=device)
    task = QuadrantTask(args.quadrants, device)
    baseline = BaselineNet().to(device).eval().requires_grad_(False)
    cvae = CVAE().to(device)
    optimizer = torch.optim.Adam(cvae.parameters(), lr=1e-3, foreach=True)
    index = torch.randint(len(data.train_x), (BATCH,), device=device)

    def train_step():
        with autocast():
            loss = negative_elbo(cvae, baseline, task, *task.split(data.train_x[index]))[0].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step = median_seconds(train_step, device, args.steps)
    profile = profile_step(train_step, device, [optimizer])
    cvae.eval()
    images = data.test_x[:args.eval_images]
    evaluation = median_seconds(lambda: negative_clls(task, images, baseline, cvae, n_samples=100), device,
                                repeats=1, warmup=1)
    steps_per_epoch = -(-TRAIN_IMAGES // BATCH)
    print(f"device {device}, threads {args.threads}, {args.quadrants} quadrant(s), batch {BATCH}")
    evaluation_s = evaluation / len(images) * TEST_IMAGES
    protocol_hours = (MAX_EPOCHS * step * steps_per_epoch + evaluation_s) / 3600
    print(f"CVAE training step {step * 1e3:.1f} ms ({BATCH / step:.0f} images/s) -> epoch of {steps_per_epoch} steps "
          f"{step * steps_per_epoch:.1f} s;  {profile_line(profile)}")
    print(f"CLL evaluation (MC + IS at S=100, -ELBO at 10) {evaluation / len(images) * 1e3:.2f} ms/image -> "
          f"{TEST_IMAGES}-image test set {evaluation_s:.1f} s")
    print(f"one CVAE run of at most {MAX_EPOCHS} epochs + the evaluation ~ {protocol_hours:.2f} h")
    if args.summary:
        scale = f"batch {BATCH}, {args.threads} thread(s), median of {args.steps} steps; {len(images)} test images"
        rows = [dict(method="CVAE", dataset="mnist", metric="s per training epoch (50k images)",
                     ours=round(step * steps_per_epoch, 1), paper=None, scale=scale),
                dict(method="CVAE", dataset="mnist", metric="images per s (training)", ours=round(BATCH / step),
                     paper=None, scale=scale),
                dict(method="CVAE", dataset="mnist", metric="s per 10k-image CLL evaluation (S = 100)",
                     ours=round(evaluation_s, 1), paper=None, scale=scale),
                dict(method="CVAE", dataset="mnist",
                     metric=f"estimated hours of a {MAX_EPOCHS}-epoch run with its evaluation",
                     ours=round(protocol_hours, 3), paper=None, scale=scale),
                *profile_rows("CVAE", "mnist", f"batch {BATCH}, one training step", profile)]
        write_bench_summary(args.summary, device, "Speed of the CVAE (training epoch, CLL evaluation)", rows,
                            note="The Pyro example's epoch (the anchor) was not measured: pyro-ppl is not "
                                 "installed here.")


if __name__ == "__main__":
    main()
