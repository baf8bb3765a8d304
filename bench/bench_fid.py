"""Time FID feature extraction (images/s) on the current device, and show that cached reference statistics cost
a file read, not a pass over the reference images.

    python bench/bench_fid.py [--device cpu|cuda] [--threads 1] [--dims 2048] [--batch_size 50] [--n_images 100]

The environment spec measured ~10 images/s for the 2048-d features on 2 idle CPU cores; the domain classifier
(evaluation/domain_classifier.py) is timed beside it, since CPU-scale runs lean on it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401  (before torchvision)

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from bench.timing import bench_device, bench_parser  # noqa: E402

from evaluation.domain_classifier import DomainClassifier, classify  # noqa: E402
from evaluation.fid import FID_DIMS, inception_features, load_inception, reference_statistics  # noqa: E402


def timed(function, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main():
    parser = bench_parser(__doc__, threads=1)
    parser.add_argument("--dims", type=int, choices=FID_DIMS, default=2048)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--n_images", type=int, default=100)
    args = parser.parse_args()
    device = bench_device(args)
    images = torch.randint(0, 256, (args.n_images, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    model = load_inception(args.dims, device)
    inception_features(model, images[:args.batch_size], args.batch_size, device, desc="warm-up")
    _, seconds = timed(lambda: inception_features(model, images, args.batch_size, device, desc="timed"), device)
    print(f"device {device}, threads {args.threads}, {args.dims}-d Inception features, batch {args.batch_size}: "
          f"{args.n_images / seconds:.1f} images/s ({args.n_images} images in {seconds:.1f} s)")

    with tempfile.TemporaryDirectory() as cache:
        path = Path(cache) / "reference.npz"
        _, computing = timed(lambda: reference_statistics(path, images, model, args.batch_size, device,
                                                          log=lambda message: None), device)
        _, cached = timed(lambda: reference_statistics(path, images, model, args.batch_size, device,
                                                       log=lambda message: None), device)
    print(f"reference statistics of {args.n_images} images: {computing:.1f} s computed, {cached * 1e3:.1f} ms cached")

    classifier = DomainClassifier().to(device)
    classify(classifier, images, device=device)
    _, seconds = timed(lambda: classify(classifier, images.repeat(10, 1, 1, 1), device=device), device)
    print(f"domain classifier features: {10 * args.n_images / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
