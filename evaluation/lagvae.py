"""InfoVAE / LagVAE evaluation: held-out consistency and mutual information, IWAE NLL, the sweep's Pareto figure
and its summary.

    python -m evaluation.lagvae elbo RUN_DIR            # the run's last training -ELBO (centre of the e1 grid)
    python -m evaluation.lagvae summarize ROOT --figure PNG --summary JSON --kind quick --command_line CMD
"""
import argparse
import csv
import json
import math
from pathlib import Path

import matplotlib
import torch

from models.lagvae import X_DIM, diagonal_gaussian_log_prob
from objectives.lagvae import consistency_terms
from objectives.vae import importance_weighted_log_px
from training import separate_rng_stream

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def aggregate_posterior_mutual_information(mean, log_std, z, chunk=1024):
    """I_q(x;z) for x uniform over the N given images: mean_i [log q(z_i|x_i) - log (1/N) sum_j q(z_i|x_j)],
    z_i ~ q(z|x_i). In float64, because the expanded square cancels large terms; at most log N."""
    mean, log_std, z = mean.double(), log_std.double(), z.double()
    log_q_own = diagonal_gaussian_log_prob(z, mean, log_std)
    log_aggregate = torch.cat([torch.logsumexp(pairwise_gaussian_log_prob(z_chunk, mean, log_std), dim=1)
                               for z_chunk in z.split(chunk)]) - math.log(len(z))
    return (log_q_own - log_aggregate).mean().item()


@torch.no_grad()
def heldout_metrics(encoder, decoder, heldout, batch_size, seed):
    """{split}_nll, _kl, _elbo (consistency), _mmd (1e4*MMD at batch_size) and _mi (aggregate-posterior estimate)
    on each fixed binary split of `heldout`."""
    metrics = {}
    for split, x in heldout.items():
        with separate_rng_stream(x.device, seed):
            sums = {}
            for batch in x.split(batch_size):
                for name, value in consistency_terms(encoder, decoder, batch).items():
                    sums[name] = sums.get(name, 0.0) + value.item() * len(batch)
            metrics.update({f"{split}_{name}": total / len(x) for name, total in sums.items()})
            metrics[f"{split}_elbo"] = metrics[f"{split}_nll"] + metrics[f"{split}_kl"]
            mean, log_std = encoder.posterior(x)
            z = mean + torch.exp(log_std) * torch.randn_like(mean)
            metrics[f"{split}_mi"] = aggregate_posterior_mutual_information(mean, log_std, z)
    return metrics


@torch.no_grad()
def iwae_nll(encoder, decoder, x, k, batch_size, seed):
    """-log p(x) by importance weighting with k samples of q(z|x), averaged over binary images x."""
    chunk = max(1, min(batch_size, 2 ** 25 // (k * X_DIM)))  # bounds the [k, chunk, 784] logits
    with separate_rng_stream(x.device, seed):
        total = sum(importance_weighted_log_px(encoder, decoder, batch, k).sum().item() for batch in x.split(chunk))
    return -total / len(x)


@torch.no_grad()
def reconstruction_figure(path, encoder, decoder, x, seed, n=16):
    """Rows: binary test images, the Bernoulli means at their posterior means, decoded samples of the prior."""
    from torchvision.utils import save_image  # here: the entry script has imported the torchvision shim
    mean, _ = encoder.posterior(x[:n])
    with separate_rng_stream(x.device, seed):
        prior = torch.randn(n, mean.shape[1], device=x.device)
    rows = [x[:n].flatten(1), torch.sigmoid(decoder.logits(mean)), torch.sigmoid(decoder.logits(prior))]
    save_image(torch.cat(rows).view(-1, 1, 28, 28), path, nrow=n, pad_value=1.0)


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


def consistency(point, split):
    """-ELBO: on "train" the mean over the training batches since the previous row (what the e1 constraint sees),
    on "test" the fixed test subset."""
    return point["elbo"] if split == "train" else point[f"{split}_elbo"]


def information(point, split, column="kl"):
    """The KL upper bound on I_q(x;z) (column "kl") or the aggregate-posterior estimate (column "mi")."""
    return point[column] if split == "train" and column == "kl" else point[f"{split}_{column}"]


def is_plain_vae(point):
    return point["method"] == "infovae" and point["mi"] == 0 and point["e1"] == 1 and point["e2"] == 0


def label(point):
    if is_plain_vae(point):
        return "VAE, continued" if point["flags"]["init_from"] else "VAE"
    name = "LagVAE" if point["method"] == "lagvae" else "InfoVAE"
    return f"{name} mi={point['mi']:+g} e1={point['e1']:g} e2={point['e2']:g}"


def lagvae_branch(points, mi):
    return sorted((p for p in points if p["method"] == "lagvae" and p["mi"] == mi), key=lambda p: p["e1"])


def interpolate(branch, at_consistency, split):
    """The branch's KL at the given -ELBO, linearly between its points; None outside their range."""
    curve = sorted((consistency(p, split), information(p, split)) for p in branch)
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= at_consistency <= x1:
            return y0 + (y1 - y0) * (at_consistency - x0) / (x1 - x0) if x1 > x0 else max(y0, y1)
    return None


def pareto_figure(path, points):
    """Mutual information (the KL bound; and the aggregate-posterior estimate) against consistency (-ELBO)."""
    panels = [("train", "kl", "train batches: KL = upper bound on I_q(x;z)"), ("test", "kl", "test: KL bound"),
              ("test", "mi", "test: aggregate-posterior estimate of I_q (<= log n_eval)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4))
    for axis, (split, column, title) in zip(axes, panels):
        for mi, color in ((1.0, "tab:red"), (-1.0, "tab:blue")):
            branch = lagvae_branch(points, mi)
            if branch:
                axis.plot([consistency(p, split) for p in branch], [information(p, split, column) for p in branch],
                          "o-", color=color, label=f"LagVAE mi={mi:+g} (e1 sweep)")
        for point in points:
            if point["method"] == "infovae":
                marker, color = ("*", "black") if is_plain_vae(point) else ("s", "tab:green")
                xy = (consistency(point, split), information(point, split, column))
                axis.plot(*xy, marker, color=color, markersize=9)
                axis.annotate(label(point).replace("InfoVAE ", ""), xy, fontsize=6, xytext=(3, 3),
                              textcoords="offset points")
        axis.plot([], [], "s", color="tab:green", label="InfoVAE (fixed weights)")
        axis.plot([], [], "*", color="black", label="VAE")
        axis.set(title=title, xlabel="consistency: -ELBO (nats)", ylabel="mutual information (nats)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def frontier_comparison(points, split="train"):
    """For each non-VAE InfoVAE point inside a LagVAE branch's -ELBO range: is the mi=+1 branch above it and the
    mi=-1 branch below it (at the same consistency)? Returns (n_above, n_compared_up, n_below, n_compared_down)."""
    infovae = [p for p in points if p["method"] == "infovae" and not is_plain_vae(p)]
    up = [interpolate(lagvae_branch(points, 1.0), consistency(p, split), split) for p in infovae]
    down = [interpolate(lagvae_branch(points, -1.0), consistency(p, split), split) for p in infovae]
    above = [kl > information(p, split) for kl, p in zip(up, infovae) if kl is not None]
    below = [kl < information(p, split) for kl, p in zip(down, infovae) if kl is not None]
    return sum(above), len(above), sum(below), len(below)


def scale_description(points):
    vae = next((p["flags"] for p in points if is_plain_vae(p) and not p["flags"]["init_from"]), points[0]["flags"])
    point = next((p["flags"] for p in points if p["method"] == "lagvae"), vae)
    images = vae["n_train"] or 55000
    steps_per_epoch = images // vae["batch_size"]
    start = " from it" if point["init_from"] else ""
    return (f"widths {vae['width']}, {images} images, VAE {vae['epochs'] * steps_per_epoch} steps, "
            f"{point['epochs'] * steps_per_epoch} per point{start}")


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
    for point in points:
        if point["method"] == "infovae":
            rows.append({"method": label(point), "dataset": "binarised MNIST", "scale": scale,
                         "metric": "(-ELBO, KL) of training batches",
                         "ours": f"({point['elbo']:.2f}, {point['kl']:.2f})",
                         "paper": None if is_plain_vae(point) else "inside the LagVAE envelope"})
    above, n_up, below, n_down = frontier_comparison(points)
    rows.append({"method": "LagVAE vs InfoVAE", "dataset": "binarised MNIST", "scale": scale,
                 "metric": "InfoVAE points under the mi=+1 branch / over the mi=-1 branch at equal -ELBO (train)",
                 "ours": f"{above}/{n_up} under, {below}/{n_down} over", "paper": "all"})
    return rows


def markdown_table(points):
    columns = ["run", "-ELBO batches (e1)", "KL batches", "train -ELBO", "train MI est.", "test -ELBO", "test KL",
               "test MI est.", "test IWAE NLL", "1e4 MMD batches (e2)", "l1", "l2"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for p in sorted(points, key=lambda p: (p["method"], -p["mi"], p["e1"])):
        e1 = f" ({p['e1']:g})" if p["method"] == "lagvae" else ""
        e2 = f" ({p['e2']:g})" if p["method"] == "lagvae" else ""
        iwae = f"{p['test_iwae_nll']:.2f}" if p.get("test_iwae_nll") is not None else "-"
        lines.append(f"| {label(p)} | {p['elbo']:.2f}{e1} | {p['kl']:.2f} | {p['train_elbo']:.2f} | "
                     f"{p['train_mi']:.2f} | {p['test_elbo']:.2f} | {p['test_kl']:.2f} | {p['test_mi']:.2f} | "
                     f"{iwae} | {p['mmd']:.2f}{e2} | {p['l1']:.3g} | {p['l2']:.3g} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    elbo = commands.add_parser("elbo", help="print the run's last training -ELBO")
    elbo.add_argument("run_dir", type=Path)
    summarize = commands.add_parser("summarize", help="table, Pareto figure and results JSON of a sweep folder")
    summarize.add_argument("root", type=Path)
    summarize.add_argument("--figure", type=Path, required=True)
    summarize.add_argument("--summary", type=Path, required=True)
    summarize.add_argument("--kind", choices=("quick", "full"), required=True)
    summarize.add_argument("--command_line", required=True, help="the command that produced the sweep")
    summarize.add_argument("--device", default="cpu", help="the device the runs trained on, for the hardware note")
    args = parser.parse_args()
    if args.command == "elbo":
        point = read_run(args.run_dir)
        if point is None:
            raise SystemExit(f"error: {args.run_dir} has no metrics yet")
        print(f"{point['elbo']:.2f}")
        return
    from evaluation.summary import hardware_description, write_summary
    run_dirs = sorted(p for p in args.root.iterdir() if (p / "metrics.csv").exists())
    points = [point for point in map(read_run, run_dirs) if point is not None]
    if not points:
        raise SystemExit(f"error: no finished runs under {args.root}")
    pareto_figure(args.figure, points)
    table = markdown_table(points)
    print(table)
    write_summary(args.summary, experiment="InfoVAE / LagVAE Pareto sweep on binarised MNIST (Zhao et al. 2018)",
                  rows=summary_rows(points), command=args.command_line, kind=args.kind,
                  hardware=hardware_description(args.device),
                  notes=f"Figure {args.figure.as_posix()}; each run's command is in {args.root}/<run>/config.json.")


if __name__ == "__main__":
    main()
