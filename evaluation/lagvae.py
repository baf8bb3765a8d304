"""InfoVAE / LagVAE evaluation: held-out consistency and mutual information, IWAE NLL, the sweep's Pareto figure
and its summary.

    python -m evaluation.lagvae elbo RUN_DIR            # the run's last training -ELBO (centre of the e1 grid)
    python -m evaluation.summarize lagvae ROOT --kind quick --command CMD   # the sweep's summary (summarize())
"""
import argparse
import csv
import json
import math
from pathlib import Path

import matplotlib
import torch

from data.images import load_image_dataset
from models.lagvae import (X_DIM, BernoulliMLPDecoder, GaussianMLPEncoder, binarize,
                           diagonal_gaussian_log_prob)
from objectives.lagvae import consistency_terms
from objectives.vae import importance_weighted_log_px
from training import ConfigError, load_checkpoint, resolve_device, separate_rng_stream, write_json_atomic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

# The paper's figure (train) read off in the spec: e1 runs from ~84 to 96 in 1-nat steps around its VAE's ~83; the
# KL of the first and last e1 of each branch.
PAPER_TRAIN_KL = {(1.0, "first"): "24-29 at -ELBO 83", (-1.0, "first"): "24-29 at -ELBO 83",
                  (1.0, "last"): "52.5 at -ELBO 95", (-1.0, "last"): "11.5 at -ELBO 95"}


def pairwise_gaussian_log_prob(z, mean, log_std):
    """log q(z_i | x_j) = log N(z_i; mean_j, diag(std_j^2)) as an [n, N] matrix through matmuls (no [n, N, D]
    tensor): the squared standardised distance expands into z^2 / std^2 - 2 z mean / std^2 + mean^2 / std^2."""
    precision = torch.exp(-2 * log_std)
    squared = (z.pow(2) @ precision.T - 2 * z @ (mean * precision).T
               + (mean.pow(2) * precision).sum(-1))
    return -0.5 * squared - log_std.sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def mutual_information_bounds(mean, log_std, z, chunk=None):
    """A bracket on I_q(x;z) from N images x_i and one z_i ~ q(z|x_i) each, both valid because q(z|x) is known
    (Poole et al. 2019, "On variational bounds of mutual information"), in expectation over images and z:
      lower, InfoNCE with critic q(z|x):  mean_i [log q(z_i|x_i) - log 1/N     sum_j      q(z_i|x_j)]  <= log N
      upper, leave-one-out (L1Out):       mean_i [log q(z_i|x_i) - log 1/(N-1) sum_{j!=i} q(z_i|x_j)]
    The lower one is also the aggregate-posterior estimate of I_q for x uniform over the N images. The upper one is
    not capped at log N and is usually far tighter than E KL(q(z|x) || p(z)). Float64, because the expanded
    square of pairwise_gaussian_log_prob cancels large terms; rows in chunks bound the [chunk, N] matrix."""
    mean, log_std, z = mean.double(), log_std.double(), z.double()
    n = len(z)
    chunk = chunk or max(1, 2 ** 24 // n)
    log_q_own = diagonal_gaussian_log_prob(z, mean, log_std)
    log_sum_all, log_sum_others = [], []
    for start in range(0, n, chunk):
        log_q_pairs = pairwise_gaussian_log_prob(z[start:start + chunk], mean, log_std)
        log_sum_all.append(torch.logsumexp(log_q_pairs, dim=1))
        rows = torch.arange(len(log_q_pairs))
        log_q_pairs[rows, start + rows] = -math.inf  # leave the own image out
        log_sum_others.append(torch.logsumexp(log_q_pairs, dim=1))
    lower = log_q_own - torch.cat(log_sum_all) + math.log(n)
    upper = log_q_own - torch.cat(log_sum_others) + math.log(n - 1)
    return lower.mean().item(), upper.mean().item()


def paper_mnist_split(data_root, n_train, device):
    """(training images, test images) as uint8: the paper's 55k training images (the first 55k of the official 60k)
    or their first n_train (0: all), and the 10k test images."""
    splits = load_image_dataset("mnist", data_root, device=device, n_valid=5000)
    if n_train > len(splits.train_x):
        raise ConfigError(f"--n_train {n_train} exceeds the {len(splits.train_x)} training images; "
                          "use 0 for all of them")
    return (splits.train_x[:n_train] if n_train else splits.train_x), splits.test_x


def fixed_binarisations(images, seed):
    """Each split of {split: uint8 images} binarised once by a generator seeded with `seed`, in the dict's order,
    so every evaluation of every run sees the same binary images."""
    generator = torch.Generator(device=next(iter(images.values())).device).manual_seed(seed)
    return {split: binarize(x, generator) for split, x in images.items()}


@torch.no_grad()
def heldout_metrics(encoder, decoder, heldout, batch_size, seed, n_z_samples=1):
    """On each fixed binary split of `heldout`: {split}_nll, _kl, _elbo (consistency), _mmd (1e4*MMD at batch_size)
    and the bracket on I_q(x;z) over the split's images, averaged over n_z_samples draws of z per image:
    _mi_lower_infonce (<= log n) and _mi_upper_l1out (the KL is the other upper bound)."""
    metrics = {}
    for split, x in heldout.items():
        with separate_rng_stream(x.device, seed):
            sums = {}
            for batch in x.split(batch_size):
                for name, value in consistency_terms(encoder, decoder, batch).items():
                    sums[name] = sums.get(name, 0.0) + value.item() * len(batch)
            metrics.update({f"{split}_{name}": total / len(x) for name, total in sums.items()})
            metrics[f"{split}_elbo"] = metrics[f"{split}_nll"] + metrics[f"{split}_kl"]
            mean, log_std = (torch.cat(parts) for parts in zip(*map(encoder.posterior, x.split(batch_size))))
            bounds = [mutual_information_bounds(mean, log_std, mean + torch.exp(log_std) * torch.randn_like(mean))
                      for _ in range(n_z_samples)]
            lower, upper = (sum(values) / n_z_samples for values in zip(*bounds))
            metrics[f"{split}_mi_lower_infonce"], metrics[f"{split}_mi_upper_l1out"] = lower, upper
    return metrics


@torch.no_grad()
def iwae_nll(encoder, decoder, x, k, batch_size, seed):
    """-log p(x) by importance weighting with k samples of q(z|x), averaged over binary images x."""
    chunk = max(1, min(batch_size, 2 ** 25 // (k * X_DIM)))  # bounds the [k, chunk, 784] logits
    with separate_rng_stream(x.device, seed):
        total = sum(importance_weighted_log_px(encoder, decoder, batch, k).sum().item() for batch in x.split(chunk))
    return -total / len(x)


@torch.no_grad()
def reconstruction_figure(path, encoder, decoder, x, seed, title, n=16):
    """Labelled rows: binary test images, the Bernoulli means at their posterior means, decoded prior samples."""
    from evaluation.figures import save_labelled_grid  # here: the entry script has imported the torchvision shim
    mean, _ = encoder.posterior(x[:n])
    with separate_rng_stream(x.device, seed):
        prior = torch.randn(n, mean.shape[1], device=x.device)
    rows = [("data (binary)", x[:n]), ("reconstruction", torch.sigmoid(decoder.logits(mean))),
            ("prior sample", torch.sigmoid(decoder.logits(prior)))]
    save_labelled_grid(path, [(label, images.view(-1, 1, 28, 28)) for label, images in rows], title)


# ---- the sweep --------------------------------------------------------------------------------------------------

def read_run(run_dir):
    """A finished run's flags and last metrics row (numbers as floats), or None while it has no rows."""
    flags = json.loads((run_dir / "config.json").read_text())["flags"]
    with open(run_dir / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        return None
    last = {key: float(value) if value not in ("", None) else None for key, value in rows[-1].items()}
    return {"name": run_dir.name, "flags": flags, "method": flags["method"], "mi": flags["mi"], "e1": flags["e1"],
            "e2": flags["e2"], **last}


def evaluate_checkpoint(run_dir, images, device, n_z_samples, batch_size=1000):
    """heldout_metrics of the run's final networks on all the training images it used and the whole test set
    (each binarised once with the run's seed), plus the image counts. Cached in run_dir/final_evaluation.json and
    recomputed when the checkpoint's step or n_z_samples differ."""
    cache = run_dir / "final_evaluation.json"
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if cache.exists():
        cached = json.loads(cache.read_text())
        if (cached["step"], cached["n_z_samples"]) == (state["step"], n_z_samples):
            return cached["metrics"]
    flags = json.loads((run_dir / "config.json").read_text())["flags"]
    encoder = GaussianMLPEncoder(flags["z_dim"], flags["width"]).to(device)
    decoder = BernoulliMLPDecoder(flags["z_dim"], flags["width"]).to(device)
    encoder.load_state_dict(state["models"]["encoder"])
    decoder.load_state_dict(state["models"]["decoder"])
    train_x, test_x = images(flags["data_root"], flags["n_train"])
    binary = fixed_binarisations({"train": train_x, "test": test_x}, flags["seed"])
    metrics = heldout_metrics(encoder, decoder, binary, batch_size, seed=flags["seed"], n_z_samples=n_z_samples)
    metrics.update({f"{split}_images": len(x) for split, x in binary.items()})
    write_json_atomic(cache, {"step": state["step"], "n_z_samples": n_z_samples, "metrics": metrics})
    return metrics


# Where a point's consistency and information are measured: "batches" = the training batches since the last metrics
# row (what the e1 constraint sees; only the KL bound is logged there), "train" / "test" = every training / test image
# with the final networks (the bracket on I_q).
SPLITS = ("batches", "train", "test")


def consistency(point, split):
    """-ELBO in nats."""
    return point["elbo"] if split == "batches" else point[f"{split}_elbo"]


def mi_upper_bound(point, split):
    """The tighter of the KL and the leave-one-out bound (the batches have only the KL)."""
    if split == "batches":
        return point["kl"]
    return min(point[f"{split}_kl"], point[f"{split}_mi_upper_l1out"])


def mi_lower_bound(point, split):
    """The InfoNCE bound (at most log of the number of images)."""
    return point[f"{split}_mi_lower_infonce"]


def is_plain_vae(point):
    return point["method"] == "infovae" and point["mi"] == 0 and point["e1"] == 1 and point["e2"] == 0


def label(point):
    if is_plain_vae(point):
        return "VAE, continued" if point["flags"]["init_from"] else "VAE"
    name = "LagVAE" if point["method"] == "lagvae" else "InfoVAE"
    return f"{name} mi={point['mi']:+g} e1={point['e1']:g} e2={point['e2']:g}"


def lagvae_branch(points, mi):
    return sorted((p for p in points if p["method"] == "lagvae" and p["mi"] == mi), key=lambda p: p["e1"])


def fixed_weight_points(points):
    return [p for p in points if p["method"] == "infovae" and not is_plain_vae(p)]


def interpolate(branch, at_consistency, split, bound):
    """The branch's `bound` (mi_lower_bound / mi_upper_bound) at the given -ELBO, linearly between its points;
    None outside their range."""
    curve = sorted((consistency(p, split), bound(p, split)) for p in branch)
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= at_consistency <= x1:
            return y0 + (y1 - y0) * (at_consistency - x0) / (x1 - x0) if x1 > x0 else max(y0, y1)
    return None


# The claim "at equal consistency the mi=+1 branch has higher MI than every InfoVAE point and the mi=-1 branch
# lower", judged three ways: (bound of the mi=+1 branch, bound of the InfoVAE point compared), same for mi=-1.
# "brackets" only counts a point when the two brackets do not overlap; "brackets not reversed" counts the points
# where they overlap or are in the claimed order, so its complement is the number of brackets in the reverse order.
COMPARISONS = {"upper bounds": ((mi_upper_bound, mi_upper_bound), (mi_upper_bound, mi_upper_bound)),
               "lower bounds": ((mi_lower_bound, mi_lower_bound), (mi_lower_bound, mi_lower_bound)),
               "brackets": ((mi_lower_bound, mi_upper_bound), (mi_upper_bound, mi_lower_bound)),
               "brackets not reversed": ((mi_upper_bound, mi_lower_bound), (mi_lower_bound, mi_upper_bound))}


def frontier_comparison(points, split, comparison):
    """For each fixed-weight InfoVAE point inside a LagVAE branch's -ELBO range: is the mi=+1 branch above it and
    the mi=-1 branch below it? Returns (n_above, n_compared_up, n_below, n_compared_down)."""
    (up_branch_bound, up_point_bound), (down_branch_bound, down_point_bound) = COMPARISONS[comparison]
    above, below = [], []
    for point in fixed_weight_points(points):
        at = consistency(point, split)
        up = interpolate(lagvae_branch(points, 1.0), at, split, up_branch_bound)
        down = interpolate(lagvae_branch(points, -1.0), at, split, down_branch_bound)
        if up is not None:
            above.append(up > up_point_bound(point, split))
        if down is not None:
            below.append(down < down_point_bound(point, split))
    return sum(above), len(above), sum(below), len(below)


def split_title(points, split):
    if split == "batches":
        return "training batches: KL = upper bound on I_q(x;z)"
    return (f"all {int(points[0][f'{split}_images'])} {split} images: I_q(x;z) in "
            "[InfoNCE, min(L1Out, KL)]")


def plot_branches(axis, points, split):
    for mi, color in ((1.0, "tab:red"), (-1.0, "tab:blue")):
        branch = lagvae_branch(points, mi)
        if not branch:
            continue
        x = [consistency(p, split) for p in branch]
        upper = [mi_upper_bound(p, split) for p in branch]
        if split == "batches":
            axis.plot(x, upper, "o-", color=color, label=f"LagVAE mi={mi:+g} (e1 sweep)")
            continue
        lower = [mi_lower_bound(p, split) for p in branch]
        axis.fill_between(x, lower, upper, color=color, alpha=0.15)
        axis.plot(x, upper, "v--", color=color, markersize=4)
        axis.plot(x, lower, "^-", color=color, markersize=4, label=f"LagVAE mi={mi:+g} (e1 sweep)")


def plot_fixed_weight_points(axis, points, split):
    for point in points:
        if point["method"] != "infovae":
            continue
        marker, color = ("*", "black") if is_plain_vae(point) else ("s", "tab:green")
        x, upper = consistency(point, split), mi_upper_bound(point, split)
        if split != "batches":
            lower = mi_lower_bound(point, split)
            axis.plot([x, x], [lower, upper], "-", color=color, linewidth=1.5)
            axis.plot(x, lower, marker, color=color, markersize=6)
        axis.plot(x, upper, marker, color=color, markersize=8)
        axis.annotate(label(point).replace("InfoVAE ", ""), (x, upper), fontsize=6, xytext=(3, 3),
                      textcoords="offset points")


def pareto_figure(path, points, title):
    """Mutual information against consistency (-ELBO): the KL bound on the training batches (the paper's plot), and
    the bracket [InfoNCE, min(L1Out, KL)] on all training and all test images (bands for the LagVAE branches,
    vertical bars for the fixed-weight points); title names the method, data and scale."""
    figure, axes = plt.subplots(1, len(SPLITS), figsize=(5.6 * len(SPLITS), 4.6))
    for axis, split in zip(axes, SPLITS):
        plot_branches(axis, points, split)
        plot_fixed_weight_points(axis, points, split)
        if split != "batches":
            axis.axhline(math.log(points[0][f"{split}_images"]), color="gray", linestyle=":", linewidth=1,
                         label="log N: cap of the InfoNCE bound")
            axis.plot([], [], "v--", color="gray", label="upper: min(L1Out, KL)")
            axis.plot([], [], "^-", color="gray", label="lower: InfoNCE")
            axis.set_yscale("log")  # spreads the mi=-1 brackets near log N apart from the wide mi=+1 ones
            for ticks in (axis.yaxis.set_major_formatter, axis.yaxis.set_minor_formatter):
                ticks(ScalarFormatter())
        axis.plot([], [], "s", color="tab:green", label="InfoVAE (fixed weights)")
        axis.plot([], [], "*", color="black", label="VAE")
        axis.set(title=split_title(points, split), xlabel="consistency: -ELBO (nats)",
                 ylabel="mutual information (nats)")
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[-1].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def scale_description(points):
    vae = next((p["flags"] for p in points if is_plain_vae(p) and not p["flags"]["init_from"]), points[0]["flags"])
    point = next((p["flags"] for p in points if p["method"] == "lagvae"), vae)
    images = vae["n_train"] or 55000
    steps_per_epoch = images // vae["batch_size"]
    start = " from it" if point["init_from"] else ""
    return (f"widths {vae['width']}, {images} images, VAE {vae['epochs'] * steps_per_epoch} steps, "
            f"{point['epochs'] * steps_per_epoch} per point{start}")


def bracket_rows(point, method, prefix, scale):
    """'-ELBO, [lower, upper]' of the point on all training and all test images."""
    return [{"method": method, "dataset": "binarised MNIST", "scale": scale,
             "metric": f"{prefix}-ELBO, I_q(x;z) in [InfoNCE, min(L1Out, KL)] on all {int(point[f'{split}_images'])} "
                       f"{split} images",
             "ours": f"{point[f'{split}_elbo']:.2f}, [{mi_lower_bound(point, split):.2f}, "
                     f"{mi_upper_bound(point, split):.2f}]",
             "paper": None} for split in ("train", "test")]


def summary_rows(points):
    scale = scale_description(points)
    rows = []
    for mi in (1.0, -1.0):
        branch = lagvae_branch(points, mi)
        for position, point in enumerate(branch):
            end = "first" if position == 0 else "last" if position == len(branch) - 1 else None
            method = f"LagVAE mi={mi:+g}"
            rows.append({"method": method, "dataset": "binarised MNIST", "scale": scale,
                         "metric": f"e1={point['e1']:g}: -ELBO of training batches (paper: converges to e1)",
                         "ours": round(point["elbo"], 2), "paper": point["e1"]})
            rows.append({"method": method, "dataset": "binarised MNIST", "scale": scale,
                         "metric": f"e1={point['e1']:g}: KL of training batches (MI upper bound)",
                         "ours": round(point["kl"], 2), "paper": PAPER_TRAIN_KL.get((mi, end))})
            rows += bracket_rows(point, method, f"e1={point['e1']:g}: ", scale)
    for point in points:
        if point["method"] == "infovae":
            rows.append({"method": label(point), "dataset": "binarised MNIST", "scale": scale,
                         "metric": "(-ELBO, KL) of training batches",
                         "ours": f"({point['elbo']:.2f}, {point['kl']:.2f})",
                         "paper": None if is_plain_vae(point) else "inside the LagVAE envelope"})
            rows += bracket_rows(point, label(point), "", scale)
    for split in SPLITS:
        for comparison in (("upper bounds",) if split == "batches" else ("upper bounds", "lower bounds", "brackets")):
            above, n_up, below, n_down = frontier_comparison(points, split, comparison)
            ours = f"{above}/{n_up} under, {below}/{n_down} over"
            if comparison == "brackets":
                not_reversed_up, _, not_reversed_down, _ = frontier_comparison(points, split, "brackets not reversed")
                ours += (f" (reversed: {n_up - not_reversed_up} under, {n_down - not_reversed_down} over; "
                         "the rest overlap: undecided)")
            where = "training batches" if split == "batches" else f"all {split} images"
            rows.append({"method": "LagVAE vs InfoVAE", "dataset": "binarised MNIST", "scale": scale,
                         "metric": f"InfoVAE points under the mi=+1 branch / over the mi=-1 branch at equal -ELBO, "
                                   f"{where}, {comparison}",
                         "ours": ours, "paper": "all"})
    return rows


def markdown_table(points):
    columns = ["run", "-ELBO batches (e1)", "KL batches", "train -ELBO", "train I_q bracket", "test -ELBO",
               "test I_q bracket", "test KL", "test L1Out", "test IWAE NLL", "1e4 MMD batches (e2)", "l1", "l2"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for p in sorted(points, key=lambda p: (p["method"], -p["mi"], p["e1"])):
        e1 = f" ({p['e1']:g})" if p["method"] == "lagvae" else ""
        e2 = f" ({p['e2']:g})" if p["method"] == "lagvae" else ""
        iwae = f"{p['test_iwae_nll']:.2f}" if p.get("test_iwae_nll") is not None else "-"
        train, test = ([mi_lower_bound(p, split), mi_upper_bound(p, split)] for split in ("train", "test"))
        lines.append(f"| {label(p)} | {p['elbo']:.2f}{e1} | {p['kl']:.2f} | {p['train_elbo']:.2f} | "
                     f"[{train[0]:.2f}, {train[1]:.2f}] | {p['test_elbo']:.2f} | [{test[0]:.2f}, {test[1]:.2f}] | "
                     f"{p['test_kl']:.2f} | {p['test_mi_upper_l1out']:.2f} | {iwae} | {p['mmd']:.2f}{e2} | "
                     f"{p['l1']:.3g} | {p['l2']:.3g} |")
    return "\n".join(lines)


def summarize(root, *, kind, device, results, n_z_samples=2):
    """The sweep's rows (evaluation.summarize's contract): each run's final checkpoint evaluated on all its training
    images and the whole test set (n_z_samples draws of z per image for the I_q bounds), the table printed and the
    Pareto figure drawn to results/figures/lagvae/pareto_<kind>.png."""
    from evaluation.summary import FamilySummary, hardware_description
    root = Path(root)
    run_dirs = sorted(p for p in root.iterdir() if (p / "metrics.csv").exists())
    points = [point for point in map(read_run, run_dirs) if point is not None]
    if not points:
        raise ValueError(f"no finished runs under {root}; run bash sweep_lagvae.sh first")
    device = resolve_device(device)
    loaded = {}

    def images(data_root, n_train):  # MNIST loaded once for all runs
        if data_root not in loaded:
            loaded[data_root] = paper_mnist_split(data_root, 0, device)
        train_x, test_x = loaded[data_root]
        return (train_x[:n_train] if n_train else train_x), test_x

    for point in points:
        print(f"evaluating {point['name']}", flush=True)
        point.update(evaluate_checkpoint(root / point["name"], images, device, n_z_samples))
    figure = Path(results) / "figures" / "lagvae" / f"pareto_{kind}.png"
    pareto_figure(figure, points, title=f"InfoVAE / LagVAE, binarised MNIST, {scale_description(points)} ({kind})")
    print(markdown_table(points))
    return FamilySummary(
        name=f"lagvae_{kind}", experiment="InfoVAE / LagVAE Pareto sweep on binarised MNIST (Zhao et al. 2018)",
        rows=summary_rows(points), hardware=hardware_description(device),
        notes=f"Figure {figure.as_posix()}; each run's command is in {root.as_posix()}/<run>/config.json. "
              f"Columns on training batches are the last metrics.csv row of each run; those on all "
              f"training / test images are the final checkpoint re-evaluated ({n_z_samples} z per "
              f"image, cached in <run>/final_evaluation.json); the test IWAE NLL is from the run's own "
              f"final row (its --n_eval test images).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    elbo = commands.add_parser("elbo", help="print the run's last training -ELBO")
    elbo.add_argument("run_dir", type=Path, help="a main_lagvae.py run folder")
    args = parser.parse_args(argv)
    point = read_run(args.run_dir)
    if point is None:
        raise SystemExit(f"error: {args.run_dir} has no metrics yet")
    print(f"{point['elbo']:.2f}")


if __name__ == "__main__":
    main()
