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


class BatchedClassifiers(nn.Module):
    """n independent Linear(d_z, 100)-LeakyReLU-Linear(100, n_classes) classifiers run as one batched model: one
    batched matrix product per layer instead of n small ones (a GPU would otherwise idle between tiny kernels).
    Each is initialised as nn.Linear initialises itself: weights and biases uniform in +-1/sqrt(fan_in)."""

    def __init__(self, n, z_dim, n_classes=10, hidden=100):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.empty(n, z_dim, hidden)), nn.Parameter(torch.empty(n, 1, hidden))
        self.w2, self.b2 = nn.Parameter(torch.empty(n, hidden, n_classes)), nn.Parameter(torch.empty(n, 1, n_classes))
        for weight, bias in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = weight.shape[1] ** -0.5
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, z):
        """z [n, B, d_z] (classifier i sees z[i]) -> logits [n, B, n_classes]."""
        return torch.baddbmm(self.b2, nn.functional.leaky_relu(torch.baddbmm(self.b1, z, self.w1)), self.w2)


def batch_orders(n_trials, n_train, batch_size, device, generator=None):
    """One epoch's batches, each trial in its own random order: index tensors [n_trials, <= batch_size]."""
    order = torch.rand(n_trials, n_train, device=device, generator=generator).argsort(dim=1)
    return order.split(batch_size, dim=1)


def train_classifiers(classifiers, train_z, train_y, epochs, batch_size=100, lr=1e-3, generator=None):
    """Trains all classifiers at once: train_z [n_draws, N, D] (epoch k uses draw k mod n_draws). The loss is the
    sum of the trials' mean cross-entropies, so each trial gets exactly its own gradient, and Adamax's update is
    elementwise: the same as training each classifier alone with the same batches (tested)."""
    optimizer = torch.optim.Adamax(classifiers.parameters(), lr=lr, eps=1e-7, foreach=True)
    n_trials, n_train = classifiers.w1.shape[0], train_z.shape[1]
    for epoch in range(epochs):
        z = train_z[epoch % train_z.shape[0]]
        for indices in batch_orders(n_trials, n_train, batch_size, z.device, generator):
            logits = classifiers(z[indices])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), train_y[indices].flatten(), reduction="none")
            optimizer.zero_grad(set_to_none=True)
            loss.view(indices.shape).mean(dim=1).sum().backward()
            optimizer.step()
    return classifiers


def train_and_score(train_z, train_y, test_z, test_y, n_trials, epochs, batch_size=100, lr=1e-3):
    """n_trials fresh classifiers trained side by side; returns each one's test accuracy (fraction) as a list."""
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    classifiers = BatchedClassifiers(n_trials, train_z.shape[-1], n_classes).to(train_z.device)
    train_classifiers(classifiers, train_z, train_y, epochs, batch_size, lr)
    with torch.no_grad():
        predictions = classifiers(test_z.expand(n_trials, *test_z.shape)).argmax(-1)
        return (predictions == test_y).float().mean(dim=1).tolist()


def downstream_accuracy(encoder, train_x, train_y, test_x, test_y, n_trials=10, epochs=100, n_draws=10,
                        batch_size=100, lr=1e-3):
    """Mean and std (over n_trials fresh classifiers) of the test accuracy in percent. Trials differ in the
    classifier's initialisation and batch order and share one encoding of the data."""
    train_z = encode_draws(encoder, train_x, n_draws)
    test_z = encode_draws(encoder, test_x, 1)[0]
    accuracies = [100 * accuracy for accuracy in
                  train_and_score(train_z, train_y, test_z, test_y, n_trials, epochs, batch_size, lr)]
    values = torch.tensor(accuracies)
    std = values.std().item() if n_trials > 1 else 0.0
    return DownstreamResult(values.mean().item(), std, accuracies)
