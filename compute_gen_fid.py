"""Score generated samples against a dataset split: one protocol for every method.

    python compute_gen_fid.py runs/main_x/samples/samples.pt --dataset mnist --split train --n_samples 2000
    python compute_gen_fid.py RUN_DIR IMAGE_DIR --metric all --summary results/fid_x.json --method CyGen VAE
    python compute_gen_fid.py dataset:mnist:test noise:uniform --split train --n_samples 2000 \\
        --summary results/fid_mnist_reference.json --method "MNIST test set" "uniform noise"

Each input is a sample tensor file written by a script's --save_samples (evaluation/samples.py), a run folder
holding one samples/*.pt, a folder of images, `dataset:NAME:SPLIT` (real images, the sanity reference) or
`noise:uniform`. The first --n_samples images of each input are scored against --n_reference images drawn with a
fixed seed from the reference split, whose Inception statistics are cached in --cache_dir.
  fid:    pytorch-fid's Fréchet Inception Distance (--dims 2048, the pool features; smaller dims for tests) and,
          from the same features, the unbiased Kernel Inception Distance (evaluation/kid.py: mean ± std over
          --kid_subsets subsets; --no-kid leaves it out). KID's estimate does not depend on the sample count.
  domain: the repo's MNIST / Fashion-MNIST classifier (evaluation/domain_classifier.py): Fréchet distance in its
          feature space, entropy of the predicted labels and class coverage; seconds on a CPU.
"""
import compat  # noqa: F401  (first: torchvision shim)

import argparse
import shlex
import sys
from pathlib import Path

import torch

from data.images import IMAGE_DATASETS
from evaluation.domain_classifier import domain_metrics, grayscale_if_gray, load_classifier
from evaluation.fid import (FID_DIMS, REFERENCE_SPLITS, Statistics, binarize, dataset_images, frechet_distance,
                            full_rank, inception_features, load_images, load_inception,
                            reference_statistics_and_features, reference_statistics_path)
from evaluation.kid import KID_SEED, KID_SUBSET_SIZE, KID_SUBSETS, kernel_inception_distance, subset_size_for
from evaluation.summary import hardware_description, write_summary
from training import ConfigError, add_device_arg, add_precision_arg, apply_precision, resolve_device, run_main

METRICS = {"fid": ("fid",), "domain": ("domain",), "all": ("fid", "domain")}
DOMAIN_METRIC_NAMES = {"classifier_fd": "Fréchet distance, classifier features",
                       "label_entropy": "label entropy (nats, max 2.303)", "class_coverage": "class coverage"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="sample files, run folders, image folders, dataset:NAME:SPLIT, "
                                                  "noise:uniform")
    parser.add_argument("--dataset", choices=IMAGE_DATASETS, required=True,
                        help="the reference dataset: the one the samples' model was trained on")
    parser.add_argument("--split", choices=REFERENCE_SPLITS, default="train",
                        help="reference split; train = the official 60k training set, all = train + test (70k for MNIST, "
                             "the symmetric-HVAE seed code's reference) (default: %(default)s)")
    parser.add_argument("--n_samples", type=int, default=2000, help="images scored per input (default: %(default)s)")
    parser.add_argument("--n_reference", type=int, default=None, help="reference images (default: --n_samples)")
    parser.add_argument("--binarize_reference", type=float, default=None, metavar="THRESHOLD",
                        help="binarise the reference at this level in [0, 1] (binary-pixel models, e.g. 0.4375)")
    parser.add_argument("--metric", choices=tuple(METRICS), default="fid",
                        help="fid (FID and KID), domain (the classifier metrics) or all (default: %(default)s)")
    parser.add_argument("--dims", type=int, choices=FID_DIMS, default=2048,
                        help="Inception feature size; 2048 are the standard pool features (default: %(default)s)")
    parser.add_argument("--kid", action=argparse.BooleanOptionalAction, default=True,
                        help="KID beside every FID, from the same features (default: %(default)s)")
    parser.add_argument("--kid_subsets", type=int, default=KID_SUBSETS,
                        help="KID subsets, its mean and std are over them (default: %(default)s)")
    parser.add_argument("--kid_subset_size", type=int, default=None,
                        help=f"KID subset size, capped by --n_samples and --n_reference (default: {KID_SUBSET_SIZE}, "
                             "at most half of the smaller)")
    parser.add_argument("--batch_size", type=int, default=50, help="images per Inception batch (default: %(default)s)")
    add_device_arg(parser)
    add_precision_arg(parser, bf16_refused_because="FID is defined on float32 Inception features")
    parser.add_argument("--data_root", default="datasets",
                        help="folder of the datasets (torchvision layout; downloaded there when online) "
                             "(default: %(default)s)")
    parser.add_argument("--cache_dir", default="runs/evaluation_cache",
                        help="reference statistics and classifiers (default: %(default)s)")
    parser.add_argument("--summary", type=Path, help="write the scores as a results/*.json summary")
    parser.add_argument("--method", nargs="+", help="one label per input for the summary (default: the inputs)")
    parser.add_argument("--paper", nargs="+", help="one paper value per input (default: -)")
    parser.add_argument("--kind", choices=("quick", "full"), default="quick",
                        help="the summary's kind: quick (CPU scale) or full (default: %(default)s)")
    parser.add_argument("--experiment", help="summary name (default: the summary file's stem)")
    args = parser.parse_args(argv)
    args.n_reference = args.n_reference or args.n_samples
    if min(args.n_samples, args.n_reference) < 2 or args.batch_size < 1:
        parser.error("--n_samples and --n_reference must be at least 2 (a covariance), --batch_size positive")
    if args.kid_subsets < 1 or (args.kid_subset_size is not None and args.kid_subset_size < 2):
        parser.error("--kid_subsets must be positive and --kid_subset_size at least 2")
    for flag in ("method", "paper"):
        if getattr(args, flag) and len(getattr(args, flag)) != len(args.inputs):
            parser.error(f"--{flag} needs one value per input ({len(args.inputs)}), got {len(getattr(args, flag))}")
    if args.binarize_reference is not None and not 0 < args.binarize_reference < 1:
        parser.error("--binarize_reference must lie in (0, 1)")
    if f"dataset:{args.dataset}:{args.split}" in args.inputs:
        parser.error(f"input dataset:{args.dataset}:{args.split} is the reference split itself; score the other "
                     "split (e.g. dataset:mnist:test against --split train)")
    return args


def input_images(spec, n, reference_shape, data_root):
    """The first n images of one input, uint8 [n, C, H, W]."""
    if spec.startswith("dataset:"):
        _, name, split = (spec.split(":") + ["", ""])[:3]
        if name not in IMAGE_DATASETS:
            raise ConfigError(f"{spec}: write dataset:NAME:SPLIT with NAME in {IMAGE_DATASETS}")
        return dataset_images(name, split, n, data_root, seed=1)
    if spec == "noise:uniform":
        return torch.randint(0, 256, (n, *reference_shape), generator=torch.Generator().manual_seed(0),
                             dtype=torch.uint8)
    images = load_images(spec)
    shape = tuple(grayscale_if_gray(images[:1], reference_shape[0]).shape[1:])  # PNGs of gray images load as RGB
    if shape != tuple(reference_shape):
        raise ConfigError(f"{spec} holds images of shape {shape}, the reference's are {tuple(reference_shape)}: "
                          "score samples against the --dataset their model was trained on")
    if len(images) < n:
        raise ConfigError(f"{spec} holds {len(images)} images, fewer than --n_samples {n}: lower --n_samples or "
                          "save more samples")
    return images[:n]


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    apply_precision(args.precision, device, cudnn_benchmark=True)  # batches of one shape
    reference = dataset_images(args.dataset, args.split, args.n_reference, args.data_root)
    if args.binarize_reference is not None:
        reference = binarize(reference, args.binarize_reference)
    # every input is read before the slow part, so a bad path fails at once
    samples = {spec: input_images(spec, args.n_samples, reference.shape[1:], args.data_root) for spec in args.inputs}
    labels = dict(zip(args.inputs, args.method or args.inputs))
    papers = dict(zip(args.inputs, args.paper or ["-"] * len(args.inputs)))
    binarized = "" if args.binarize_reference is None else f", binarised at {args.binarize_reference:g}"
    against = f"vs {args.dataset} {args.split} ({args.n_reference} images{binarized})"
    rows, notes = [], []

    def add_row(spec, metric, value):
        ours = value if isinstance(value, str) else round(value, 4)
        rows.append({"method": labels[spec], "dataset": args.dataset, "metric": metric, "ours": ours,
                     "paper": papers[spec], "scale": f"{args.n_samples} samples"})
        print(f"{labels[spec]:28s} {metric:70s} {ours if isinstance(ours, str) else format(ours, '10.4f')}")

    if "fid" in METRICS[args.metric]:
        model = load_inception(args.dims, device)
        path = reference_statistics_path(args.cache_dir, args.dataset, args.split, args.n_reference, args.dims,
                                         args.binarize_reference)
        reference_stats, reference_features = reference_statistics_and_features(
            path, reference, model, args.batch_size, device, with_features=args.kid)
        kid_size = subset_size_for(args.n_samples, args.n_reference, args.kid_subset_size)
        kid_rows = []
        for spec, images in samples.items():
            features = inception_features(model, images, args.batch_size, device, desc=labels[spec])
            stats = Statistics.of(features)
            add_row(spec, f"FID ({args.dims}-d Inception) {against}", frechet_distance(stats, reference_stats))
            if args.kid:
                kid = kernel_inception_distance(features, reference_features, args.kid_subsets, kid_size)
                kid_rows.append((spec, kid))
            if not full_rank(stats, reference_stats) and not notes:
                notes.append(f"FID from {min(stats.n, reference_stats.n)} <= {args.dims} samples: the covariances "
                             "are singular, so the trace term uses the eigen-decomposition of evaluation/fid.py "
                             "(real by construction) instead of scipy's sqrtm; FID grows as samples shrink, so "
                             "compare values at equal sample counts only.")
        for spec, kid in kid_rows:  # after the FID rows, so the FID rows keep their place in the summary
            add_row(spec, f"KID ({args.dims}-d Inception, {kid.subsets} subsets of {kid.subset_size}) {against}",
                    kid.text())
        if kid_rows:
            notes.append(f"KID: unbiased MMD^2 of the {args.dims}-d Inception features under the kernel "
                         f"(x.y/{args.dims} + 1)^3, mean ± std over {args.kid_subsets} random subset pairs of "
                         f"{kid_size} (evaluation/kid.py, torch-fidelity's estimator, seed {KID_SEED}).")
    if "domain" in METRICS[args.metric]:
        classifier, accuracy = load_classifier(args.dataset, args.cache_dir, args.data_root, device)
        notes.append(f"domain classifier: {args.dataset} test accuracy {accuracy:.4f}")
        for spec, images in samples.items():
            for name, value in domain_metrics(classifier, images, reference, device).items():
                suffix = f" {against}" if name == "classifier_fd" else ""
                add_row(spec, f"{DOMAIN_METRIC_NAMES[name]}{suffix}", value)
    for note in notes:
        print(note)
    if args.summary:
        write_summary(args.summary, experiment=args.experiment or args.summary.stem, rows=rows,
                      command=shlex.join(["python", "compute_gen_fid.py", *sys.argv[1:]]), kind=args.kind,
                      hardware=hardware_description(device), notes=" ".join(notes))
        print(f"summary written to {args.summary}")


if __name__ == "__main__":
    run_main(main)
