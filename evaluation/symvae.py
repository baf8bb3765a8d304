"""Evaluation of binary HVAEs: per-bit mutual information, progress grids, the limiting chain, and the limiting-chain
Fréchet study (the paper's claim: symmetric learning keeps the limiting distribution close to the random-code
samples, the ELBO's drifts away).

    python -m evaluation.summarize sym runs/symvae_quick --kind quick --command "bash run_sym.sh --quick"

The Fréchet distance here is computed on PCA features of pixels fitted on the training set (not FID; FID comes with
compute_gen_fid.py), between model samples and the held-out test set.
"""
import compat  # noqa: F401  (pytorch_fid imports torchvision)

import shutil
from pathlib import Path

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from data.images import load_image_dataset
from evaluation.summary import FamilySummary, hardware_description, mean_std_over_seeds, runs_by_name
from models.binary_hvae import build_model
from objectives.symvae import clean_images
from training import ConfigError, load_checkpoint, resolve_device, separate_rng_stream

MODEL_FLAGS = ("dataset", "encoder", "arch", "nz0", "nz1", "conditional_width", "encoder_width", "conv_channels",
               "mlp_width")
CHAIN_STEPS = (1, 10, 100, 1000)
# README (official code, 200k iterations, FID-2048): random-code and limiting FID per setting and method
README_FID = {("mnist", "ladder", "elbo"): (3.2227, 36.6440), ("mnist", "ladder", "symmetric"): (1.6543, 4.1015),
              ("mnist", "reverse", "elbo"): (5.2889, 14.2256), ("mnist", "reverse", "symmetric"): (1.4746, 4.9559),
              ("fmnist", "ladder", "elbo"): (37.8115, 119.1699), ("fmnist", "ladder", "symmetric"): (43.6204, 42.3663)}
METHOD_NAMES = {"symmetric": "Symmetric", "elbo": "ELBO"}


# ---- statistics logged during training -------------------------------------------------------------------------

def binary_entropy(probability):
    return torch.special.entr(probability) + torch.special.entr(1 - probability)


def per_bit_mutual_information(probabilities):
    """I(condition; bit_i) = H(marginal_i) - E[H(bit_i | condition)], the marginal estimated by the batch mean."""
    return binary_entropy(probabilities.mean(0)) - binary_entropy(probabilities).mean(0)


@torch.no_grad()
def mutual_information(model, x, n_prior):
    """Per-bit MI of the spec: I(z0; z1_i) under p, I(x; z0_i) and I(x, z0; z1_i) under q (x a data batch)."""
    prior_probabilities = torch.sigmoid(model.p_z1_given_z0(model.sample_prior_z0(n_prior)))
    posterior = model.posterior(x)
    return {"p_z0_z1": per_bit_mutual_information(prior_probabilities),
            "q_x_z0": per_bit_mutual_information(torch.sigmoid(posterior.logits_z0)),
            "q_xz0_z1": per_bit_mutual_information(torch.sigmoid(posterior.logits_z1))}


def mean_squared_weight(model):
    parameters = list(model.parameters())
    return sum(p.detach().square().sum() for p in parameters) / sum(p.numel() for p in parameters)


@torch.no_grad()
def limiting_chain(model, x_start, record_at):
    """Advance all chains x -> z ~ q(z|x) -> x' ~ p(x|z) in one batch; yield (k, image) after k transitions for each
    k in record_at, the image being the decoder's mode at a code of x_k (as the official generate_data.py)."""
    x, done = x_start, 0
    for steps in sorted(record_at):
        for _ in range(steps - done):
            x = model.chain_step(x)
        done = steps
        yield steps, model.reconstruction(x)


@torch.no_grad()
def progress_grid(model, x, chain_steps, n=10):
    """Labelled rows of n images for evaluation.figures.save_labelled_grid: data, reconstructions, random-code
    samples, and limiting-chain states after chain_steps from n other random-code samples."""
    random_code = model.random_code_images(2 * n)
    (_, chain_state), = limiting_chain(model, random_code[n:], [chain_steps])
    return [("data", x[:n]), ("reconstruction", model.reconstruction(x[:n])), ("random code", random_code[:n]),
            (f"chain, {chain_steps} steps", chain_state)]


# ---- the limiting-chain Fréchet study --------------------------------------------------------------------------

class PcaFrechet:
    """Fréchet distance between image sets in the space of the top principal components of training pixels."""

    def __init__(self, train_images, n_components=64):
        pixels = train_images.flatten(1).double()
        self.mean = pixels.mean(0)
        centered = pixels - self.mean
        eigenvalues, eigenvectors = torch.linalg.eigh(centered.T @ centered)  # ascending order
        self.components = eigenvectors[:, -n_components:]
        self.name = f"PCA-{n_components}"

    def statistics(self, images):
        features = ((images.flatten(1).double().to(self.mean.device) - self.mean) @ self.components).cpu().numpy()
        return features.mean(0), np.cov(features, rowvar=False)

    def distance(self, images, reference_statistics):
        return float(calculate_frechet_distance(*self.statistics(images), *reference_statistics))


def load_trained_model(run_dir, device):
    """The model of a run folder's checkpoint, in eval mode, with the flags it was trained with."""
    advice = "Pass the --run_dir of a main_sym.py / main_elbo.py run (or train one there first)."
    state = load_checkpoint(Path(run_dir) / "checkpoint.pt", advice=advice)
    flags = state["config"]["flags"]
    if flags.get("method") not in ("symmetric", "elbo") or "model" not in state["models"]:
        raise ConfigError(f"{run_dir} is not a run of main_sym.py / main_elbo.py. {advice}")
    model = build_model(**{key: flags[key] for key in MODEL_FLAGS}).to(device)
    model.load_state_dict(state["models"]["model"])
    return model.eval(), flags, state["step"]


@torch.no_grad()
def chain_study(model, frechet, reference_statistics, n_samples, chain_steps=CHAIN_STEPS):
    """Fréchet distances of random-code samples and of the limiting chain started from them after each k steps,
    against two references: the test set, and a second, independent set of the model's own random-code samples
    (the claim itself: does the limiting distribution stay at the random-code distribution? its "random_code"
    entry is the finite-sample floor)."""
    random_code = model.random_code_images(n_samples)
    states = {"random_code": random_code, **{f"chain_{steps}": images
                                             for steps, images in limiting_chain(model, random_code, chain_steps)}}
    own_statistics = frechet.statistics(model.random_code_images(n_samples))
    return {reference: {key: frechet.distance(images, statistics) for key, images in states.items()}
            for reference, statistics in (("test", reference_statistics), ("own", own_statistics))}


REFERENCE_NAMES = {"test": "test set", "own": "its own random-code samples"}


def study_rows(flags, distances, scale, feature_name):
    method, dataset = METHOD_NAMES[flags["method"]], f"{flags['dataset']} ({flags['encoder']})"
    paper = README_FID.get((flags["dataset"], flags["encoder"], flags["method"]))
    rows = []
    for reference, by_state in distances.items():
        metric = f"Fréchet on {feature_name} pixel features vs {REFERENCE_NAMES[reference]}"
        floor = " (sampling floor)" if reference == "own" else ""
        rows += [{"method": method, "dataset": dataset,
                  "metric": f"{metric}, " + (f"random code{floor}" if key == "random_code"
                                             else f"limiting chain {key.split('_')[1]} steps"),
                  "ours": value, "paper": None, "scale": scale} for key, value in by_state.items()]
    test = distances["test"]
    last_steps = max(int(key.split("_")[1]) for key in test if key != "random_code")
    rows.append({"method": method, "dataset": dataset,
                 "metric": f"limiting ({last_steps} steps) / random-code ratio (paper: README FID ratio)",
                 "ours": test[f"chain_{last_steps}"] / test["random_code"],
                 "paper": paper[1] / paper[0] if paper else None, "scale": scale})
    return rows


def summarize(root, *, kind, device, results, n_samples=1000, n_components=64, chain_steps=CHAIN_STEPS, seed=0):
    """The limiting-chain study of every trained run folder under root (evaluation.summarize's contract): n_samples
    chains (all in one batch) and samples per set, Fréchet distances on n_components PCA features (mean ± std over
    a run's seed folders, launch.py --seeds); each run's last progress grid (its first seed's) is copied to
    results/figures/symvae_<kind>/<setting>-<method>.png."""
    runs = runs_by_name(root, marker="checkpoint.pt")
    if not runs:
        raise ValueError(f"{root} holds no trained run folder; run bash run_sym.sh first")
    device = resolve_device(device)
    features_by_dataset = {}

    def study_of(run_dir):
        model, flags, step = load_trained_model(run_dir, device)
        dataset = flags["dataset"]
        if dataset not in features_by_dataset:
            splits = load_image_dataset(dataset, data_root=flags["data_root"], device=device, n_valid=0)
            train, test = clean_images(splits.train_x, dataset), clean_images(splits.test_x, dataset)
            frechet = PcaFrechet(train, n_components)
            reference = frechet.statistics(test)
            # The floor: n_samples real training images against the same test statistics.
            with separate_rng_stream(device, seed):
                subset = train[torch.randperm(len(train), device=device)[:n_samples]]
            features_by_dataset[dataset] = (frechet, reference, frechet.distance(subset, reference))
        frechet, reference, floor = features_by_dataset[dataset]
        with separate_rng_stream(device, seed):
            distances = chain_study(model, frechet, reference, n_samples, chain_steps)
        for reference_name, by_state in distances.items():
            print(f"{run_dir} vs {REFERENCE_NAMES[reference_name]}: "
                  + "  ".join(f"{k} {v:.2f}" for k, v in by_state.items()) + f"  (data floor {floor:.2f})")
        scale = (f"{step} iterations, batch {flags['batch_size']}, lr {flags['lr']}, {flags['arch']} nets, "
                 f"{flags['nz0']}/{flags['nz1']} bits, {n_samples} samples")
        return study_rows(flags, distances, scale, frechet.name)

    rows = [row for seed_dirs in runs.values() for row in mean_std_over_seeds(list(map(study_of, seed_dirs)))]
    figures = Path(results) / "figures" / f"symvae_{kind}"
    figures.mkdir(parents=True, exist_ok=True)
    for run, seed_dirs in runs.items():
        grids = sorted((seed_dirs[0] / "samples").glob("step*.png"))
        if grids:
            shutil.copyfile(grids[-1], figures / f"{run.name}.png")
    floors = {dataset: round(floor, 3) for dataset, (_, _, floor) in features_by_dataset.items()}
    notes = (f"Fréchet distance on {n_components} PCA components of pixels fitted on the training set (not FID); "
             f"reference = the held-out test set; {n_samples} training images score {floors} (the floor). "
             "Chains start from the random-code samples; 'paper' holds the README's FID ratio limiting/random code.")
    return FamilySummary(name=f"symvae_{kind}", experiment="symvae limiting chain", rows=rows, notes=notes,
                         hardware=hardware_description(device))
