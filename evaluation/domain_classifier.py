"""A cheap sample-quality metric for CPU-scale runs: a small MNIST / Fashion-MNIST classifier trained once.

It is trained on the official training set on first use and cached with its test accuracy. Samples are scored by
(a) the Fréchet distance between its 128-d penultimate features of samples and of reference images (the FID formula
in a domain network's feature space, seconds on a CPU instead of minutes), and (b) the predicted labels: their
entropy (ln 10 = 2.303 nats when every digit is equally frequent) and the class coverage, the fraction of classes
predicted for at least half of their uniform share of the samples (a collapsed model covers few).
"""
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from data.images import BatchIterator, load_image_dataset, to_float
from evaluation.fid import Statistics, frechet_distance
from training import ConfigError, progress
from training.runs import json_plain, write_atomically

CLASSIFIER_CONFIG = dict(epochs=2, batch_size=128, lr=1e-3, seed=0, n_train=None)  # n_train None: all 60k
N_CLASSES = 10
FEATURE_DIM = 128


class DomainClassifier(nn.Module):
    """Two conv-pool stages and a 128-unit feature layer, ~98% on MNIST and ~88% on Fashion-MNIST after two epochs."""

    def __init__(self, image_shape=(1, 28, 28)):
        super().__init__()
        self.image_shape = tuple(image_shape)
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * (height // 4) * (width // 4), FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, N_CLASSES)

    def forward(self, x):
        """uint8 images -> (features, logits)."""
        features = self.body(to_float(x))
        return features, self.head(features)


@torch.no_grad()
def classify(model, images, batch_size=500, device="cpu"):
    """Features (float64 numpy [N, 128]) and predicted labels (int64 [N]) of uint8 images."""
    model.eval()
    outputs = [model(batch.to(device)) for batch in images.split(batch_size)]
    features = torch.cat([f for f, _ in outputs]).double().cpu().numpy()
    return features, torch.cat([logits.argmax(1) for _, logits in outputs]).cpu()


def train_classifier(dataset, data_root="datasets", device="cpu", config=CLASSIFIER_CONFIG, log=print):
    splits = load_image_dataset(dataset, data_root=data_root, device=device, n_valid=0)
    train_x, train_y = splits.train_x[:config["n_train"]], splits.train_y[:config["n_train"]]
    torch.manual_seed(config["seed"])
    model = DomainClassifier(splits.shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    batches = BatchIterator(train_x, train_y, config["batch_size"],
                            generator=torch.Generator(device).manual_seed(config["seed"]))
    start = time.time()
    for epoch in range(config["epochs"]):
        model.train()
        for x, y in progress(batches, total=len(batches), desc=f"{dataset} classifier, epoch {epoch + 1}"):
            loss = F.cross_entropy(model(x)[1], y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _, predicted = classify(model, splits.test_x, device=device)
    accuracy = (predicted == splits.test_y.cpu()).double().mean().item()
    log(f"{dataset} classifier: test accuracy {accuracy:.4f} after {time.time() - start:.0f} s")
    return model, accuracy


CACHE_KEYS = {"model", "config", "test_accuracy", "image_shape"}


def classifier_path(cache_dir, dataset) -> Path:
    return Path(cache_dir) / f"classifier_{dataset}.pt"


def read_cached_classifier(path, device):
    problem = None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch.load raises many types for a truncated or foreign file
        problem = type(error).__name__
    else:
        if not isinstance(saved, dict) or not CACHE_KEYS <= saved.keys():
            problem = "not a classifier saved by this module"
    if problem:
        raise ConfigError(f"{path} is not a readable classifier cache ({problem}); delete it and the classifier "
                          "is trained again.")
    return saved


def load_classifier(dataset, cache_dir, data_root="datasets", device="cpu", config=CLASSIFIER_CONFIG, log=print):
    """(model, test accuracy): the cached classifier, trained first when missing or built with another config."""
    path = classifier_path(cache_dir, dataset)
    if path.is_file():
        saved = read_cached_classifier(path, device)
        if saved["config"] == json_plain(config):
            model = DomainClassifier(tuple(saved["image_shape"])).to(device)
            model.load_state_dict(saved["model"])
            return model.eval(), saved["test_accuracy"]
        log(f"{path} was trained with {saved['config']}; retraining with {config}")
    model, accuracy = train_classifier(dataset, data_root, device, config, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "config": json_plain(config), "test_accuracy": accuracy,
             "image_shape": list(model.image_shape)}
    write_atomically(path, lambda file: torch.save(state, file))
    return model.eval(), accuracy


def label_statistics(labels: torch.Tensor):
    """Entropy (nats) of the predicted-label histogram and the fraction of classes given >= half a uniform share."""
    frequencies = torch.bincount(labels, minlength=N_CLASSES).double() / len(labels)
    present = frequencies[frequencies > 0]
    entropy = -(present * present.log()).sum().item()
    coverage = (frequencies >= 0.5 / N_CLASSES).double().mean().item()
    return entropy, coverage


def grayscale_if_gray(images, channels):
    """PNG folders come back as RGB; a grayscale image saved that way has three equal channels."""
    if images.shape[1] == 3 and channels == 1 and torch.equal(images[:, :1].expand_as(images), images):
        return images[:, :1]
    return images


def domain_metrics(model, samples, reference, device="cpu"):
    """Fréchet distance in the classifier's feature space, label entropy and class coverage of uint8 samples."""
    samples = grayscale_if_gray(samples, reference.shape[1])
    if samples.shape[1:] != reference.shape[1:]:
        raise ConfigError(f"samples of shape {tuple(samples.shape[1:])} but the classifier's dataset has "
                          f"{tuple(reference.shape[1:])}")
    sample_features, labels = classify(model, samples, device=device)
    reference_features, _ = classify(model, reference, device=device)
    entropy, coverage = label_statistics(labels)
    # ReLU features have dead units, so their covariance is singular whatever the sample count
    distance = frechet_distance(Statistics.of(sample_features), Statistics.of(reference_features), singular=True)
    return {"classifier_fd": distance, "label_entropy": entropy, "class_coverage": coverage}
