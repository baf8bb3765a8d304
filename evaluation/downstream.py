"""Downstream accuracy of a frozen encoder (CyGen paper, Table 7): a fresh Linear(d_z, 100)-LeakyReLU-Linear(100, 10)
classifier trained on z ~ q(z|x) of the training set, scored on the whole test set, mean and std over trials.

The encoder runs once per image: each pass over the data draws several z per image from the same flow parameters,
and the classifier's epochs cycle through those draws instead of re-encoding the training set every epoch.
"""
from dataclasses import dataclass

import torch
from torch import nn

from data.images import to_float


@dataclass
class DownstreamResult:
    mean: float
    std: float
    accuracies: list


@torch.no_grad()
def encode_draws(encoder, images, n_draws, batch_size=500):
    """z ~ q(z|x) for uint8 images [N, C, H, W]: n_draws samples per image from one encoder pass, [n_draws, N, D]."""
    was_training = encoder.training
    encoder.eval()
    draws = []
    for start in range(0, images.shape[0], batch_size):
        x = to_float(images[start:start + batch_size])
        params = encoder.flow_params(x)
        draws.append(encoder.transform(params, encoder.sample_base(n_draws, x.shape[0], x.device)).z)
    encoder.train(was_training)
    return torch.cat(draws, dim=1)


def latent_classifier(z_dim, n_classes=10):
    return nn.Sequential(nn.Linear(z_dim, 100), nn.LeakyReLU(), nn.Linear(100, n_classes))


def train_and_score(train_z, train_y, test_z, test_y, epochs, batch_size=100, lr=1e-3):
    """One trial: train_z [n_draws, N, D] (epoch k uses draw k mod n_draws), test_z [N_test, D]; returns accuracy."""
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    classifier = latent_classifier(train_z.shape[-1], n_classes).to(train_z.device)
    optimizer = torch.optim.Adamax(classifier.parameters(), lr=lr, eps=1e-7)
    n_train = train_z.shape[1]
    for epoch in range(epochs):
        z = train_z[epoch % train_z.shape[0]]
        for indices in torch.randperm(n_train, device=z.device).split(batch_size):
            loss = nn.functional.cross_entropy(classifier(z[indices]), train_y[indices])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return (classifier(test_z).argmax(-1) == test_y).float().mean().item()


def downstream_accuracy(encoder, train_x, train_y, test_x, test_y, n_trials=10, epochs=100, n_draws=10,
                        batch_size=100, lr=1e-3):
    """Mean and std (over n_trials fresh classifiers) of the test accuracy in percent. Trials differ in the
    classifier's initialisation and batch order and share one encoding of the data."""
    train_z = encode_draws(encoder, train_x, n_draws)
    test_z = encode_draws(encoder, test_x, 1)[0]
    accuracies = [100 * train_and_score(train_z, train_y, test_z, test_y, epochs, batch_size, lr)
                  for _ in range(n_trials)]
    values = torch.tensor(accuracies)
    std = values.std().item() if n_trials > 1 else 0.0
    return DownstreamResult(values.mean().item(), std, accuracies)
