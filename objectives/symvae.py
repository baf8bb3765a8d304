"""Learning rules of the binary HVAE (models/binary_hvae.py): the two steps of symmetric equilibrium learning and the
ELBO with the ZGR gradient; and the data as each dataset's model sees it."""
import math

import torch
import torch.nn.functional as F

from models.binary_hvae import N_PIXELS, bernoulli_log_prob, bernoulli_sample

MNIST_THRESHOLD = 0.4375  # the official binarisation: pixel/255 > 0.4375
MNIST_FLIP_PROBABILITY = 0.001
FMNIST_NOISE_STD = 0.01


# ---- data ------------------------------------------------------------------------------------------------------

def clean_images(x_uint8, dataset):
    """Dataset images as the model's pixel space: binarised MNIST, or FMNIST in [0, 1]."""
    x = x_uint8.to(torch.float32) / 255
    return (x > MNIST_THRESHOLD).float() if dataset == "mnist" else x


def training_noise(x, dataset):
    """The official training-time corruption: 0.1% pixel flips on MNIST, N(0, 0.01^2) on FMNIST."""
    if dataset == "mnist":
        flips = torch.rand_like(x) < MNIST_FLIP_PROBABILITY
        return torch.where(flips, 1 - x, x)
    return x + FMNIST_NOISE_STD * torch.randn_like(x)


# ---- symmetric equilibrium learning --------------------------------------------------------------------------

def decoder_step_loss(model, x):
    """Step 1: maximum likelihood of the decoder on complete samples (z0, z1) ~ q(z|x_data), no gradient into q.
    Returns the loss and the per-bit / per-pixel terms that the official code logs (ploss1, plossx)."""
    with torch.no_grad():
        posterior = model.posterior(x)
    log_p_z1, log_p_x = model.log_p(posterior.z0, posterior.z1, x)
    loss = -(log_p_z1 + log_p_x).mean()
    return loss, {"ploss1": -log_p_z1.mean().detach() / posterior.z1.shape[1],
                  "plossx": -log_p_x.mean().detach() / N_PIXELS}


def encoder_step_loss(model, batch_size):
    """Step 2: maximum likelihood of the encoder on ancestral samples (z0, z1, x) ~ p of the (updated) decoder.
    The ladder encoder's shared p(z1|z0) logits are detached: this step must not move the decoder."""
    with torch.no_grad():
        z0, z1, x = model.sample_p(batch_size)
    log_q_z0, log_q_z1 = model.log_q(x, z0, z1)
    loss = -(log_q_z0 + log_q_z1).mean()
    return loss, {"qloss0": -log_q_z0.mean().detach() / z0.shape[1], "qloss1": -log_q_z1.mean().detach() / z1.shape[1]}


# ---- ELBO baseline -------------------------------------------------------------------------------------------

def zgr_binary(logits):
    """A Bernoulli sample with the ZGR (= DARN(1/2)) gradient: the forward value is the hard bit z, the backward
    derivative d z / d logits is (z (1 - p) + (1 - z) p) / 2 with p = sigmoid(logits) (Shekhovtsov 2023)."""
    probability = torch.sigmoid(logits)
    z = bernoulli_sample(probability.detach())
    jacobian = (z * (1 - probability) + (1 - z) * probability).detach() / 2
    return z + jacobian * (logits - logits.detach())


def bernoulli_kl(logits_q, logits_p):
    """KL(Bern(sigmoid(logits_q)) || Bern(sigmoid(logits_p))) per bit, in log-sigmoids (no 1e-6 clamping needed)."""
    q = torch.sigmoid(logits_q)
    return (q * (F.logsigmoid(logits_q) - F.logsigmoid(logits_p))
            + (1 - q) * (F.logsigmoid(-logits_q) - F.logsigmoid(-logits_p)))


def elbo_loss(model, x):
    """Negative ELBO, latents drawn with ZGR gradients. Ladder: analytic per-bit KLs at the sampled z0 (the
    uniform p(z0) has zero logits). Reverse: the one-sample KL log q(z1|x) + log q(z0|z1) + nz0 log 2 - log p(z1|z0).
    Returns the loss and its terms per pixel / per bit (dloss, kl0, kl1 or kl)."""
    posterior = model.posterior(x, draw=zgr_binary)
    log_p_x = model.p_x_given_z1.log_prob(x, posterior.z1)
    nz0, nz1 = posterior.z0.shape[1], posterior.z1.shape[1]
    terms = {"dloss": -log_p_x.mean().detach() / N_PIXELS}
    if model.encoder.order == "ladder":
        # float32 sums, as bernoulli_log_prob's
        kl0 = bernoulli_kl(posterior.logits_z0, torch.zeros_like(posterior.logits_z0)).sum(1, dtype=torch.float32)
        kl1 = bernoulli_kl(posterior.logits_z1, posterior.prior_logits_z1).sum(1, dtype=torch.float32)
        kl = kl0 + kl1
        terms.update(kl0=kl0.mean().detach() / nz0, kl1=kl1.mean().detach() / nz1)
    else:
        kl = (bernoulli_log_prob(posterior.logits_z1, posterior.z1)
              + bernoulli_log_prob(posterior.logits_z0, posterior.z0) + nz0 * math.log(2)
              - bernoulli_log_prob(model.p_z1_given_z0(posterior.z0), posterior.z1))
        terms["kl"] = kl.mean().detach() / (nz0 + nz1)
    return (kl - log_p_x).mean(), terms
