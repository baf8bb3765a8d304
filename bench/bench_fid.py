"""Time FID feature extraction (images/s) on the current device, and show that cached reference statistics cost
a file read, not a pass over the reference images.

    python bench/bench_fid.py [--device auto|cpu|cuda|cuda:N] [--precision fp32|tf32] [--threads 1] [--dims 2048]
                              [--batch_size 50] [--n_images 100] [--summary results/fid_speed.json]

The environment spec measured ~10 images/s for the 2048-d features on 2 idle CPU cores. One Inception batch is
profiled (kernels, host syncs, peak memory: bench/counting.py), and the seconds to score the protocol's 10,000
samples and to compute the 60,000-image reference statistics once are extrapolated from the timed rate. The domain
classifier (evaluation/domain_classifier.py) is timed beside it, since CPU-scale runs lean on it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (before torchvision)

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from bench.timing import (bench_device, bench_parser, profile_line, profile_rows, profile_step,  # noqa: E402
                          synchronize, write_bench_summary)

from evaluation.domain_classifier import DomainClassifier, classify  # noqa: E402
from evaluation.fid import FID_DIMS, inception_features, load_inception, reference_statistics  # noqa: E402

PROTOCOL_SAMPLES, REFERENCE_IMAGES = 10000, 60000  # run_image.sh's samples; MNIST's official training set


def timed(function, device):
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def main(argv=None):
    parser = bench_parser(__doc__, threads=1, summary_example="results/fid_speed.json",
                          bf16_refused_because="FID is defined on float32 Inception features")
    parser.add_argument("--dims", type=int, choices=FID_DIMS, default=2048,
                        help="Inception feature size; 2048 are FID's pool features (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=50, help="images per Inception batch (default: %(default)s)")
    parser.add_argument("--n_images", type=int, default=100, help="random images timed (default: %(default)s)")
    args = parser.parse_args(argv)
    device, _ = bench_device(args, cudnn_benchmark=True)
    images = torch.randint(0, 256, (args.n_images, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    model = load_inception(args.dims, device)
    one_batch = images[:args.batch_size]
    inception_features(model, one_batch, args.batch_size, device, desc="warm-up")
    _, seconds = timed(lambda: inception_features(model, images, args.batch_size, device, desc="timed"), device)
    rate = args.n_images / seconds
    profile = profile_step(lambda: inception_features(model, one_batch, args.batch_size, device, desc="profiled"),
                           device)
    print(f"device {device}, threads {args.threads}, {args.dims}-d Inception features, batch {args.batch_size}: "
          f"{rate:.1f} images/s ({args.n_images} images in {seconds:.1f} s); one batch: {profile_line(profile)}")
    print(f"{PROTOCOL_SAMPLES} samples ~ {PROTOCOL_SAMPLES / rate:.0f} s; {REFERENCE_IMAGES}-image reference "
          f"statistics (once, then cached) ~ {REFERENCE_IMAGES / rate:.0f} s")

    with tempfile.TemporaryDirectory() as cache:
        path = Path(cache) / "reference.npz"
        _, computing = timed(lambda: reference_statistics(path, images, model, args.batch_size, device,
                                                          log=lambda message: None), device)
        _, cached = timed(lambda: reference_statistics(path, images, model, args.batch_size, device,
                                                       log=lambda message: None), device)
    print(f"reference statistics of {args.n_images} images: {computing:.1f} s computed, {cached * 1e3:.1f} ms cached")

    classifier = DomainClassifier().to(device)
    classify(classifier, images, device=device)
    _, classifier_seconds = timed(lambda: classify(classifier, images.repeat(10, 1, 1, 1), device=device), device)
    classifier_rate = 10 * args.n_images / classifier_seconds
    print(f"domain classifier features: {classifier_rate:.0f} images/s")
    if args.summary:
        scale = f"batch {args.batch_size}, {args.threads} thread(s), {args.n_images} images timed"
        inception = f"FID Inception, {args.dims}-d features"
        rows = [dict(method=inception, dataset="mnist", metric="images per s", ours=round(rate, 1), paper=None,
                     scale=scale),
                dict(method=inception, dataset="mnist", metric=f"estimated s for {PROTOCOL_SAMPLES} samples",
                     ours=round(PROTOCOL_SAMPLES / rate, 1), paper=None, scale=scale),
                dict(method=inception, dataset="mnist", metric="ms to read cached reference statistics",
                     ours=round(cached * 1e3, 1), paper=None, scale=scale),
                *profile_rows(inception, "mnist", f"batch {args.batch_size}, one batch", profile),
                dict(method="domain classifier", dataset="mnist", metric="images per s", ours=round(classifier_rate),
                     paper=None, scale=scale)]
        write_bench_summary(args.summary, device, "Speed of the FID features and the domain classifier", rows)


if __name__ == "__main__":
    main()
