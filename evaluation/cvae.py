"""Test-set conditional log-likelihoods of the quadrant task and the completion figure of Pyro's tutorial."""
from functools import partial

import torch

from evaluation.figures import save_labelled_grid
from objectives.cvae import (baseline_negative_cll, conditionals, log_likelihood, negative_cll_importance,
                             negative_cll_monte_carlo, negative_elbo_particles)

ELBO_PARTICLES = 10  # Pyro's table


@torch.no_grad()
def negative_clls(task, images, baseline, cvae=None, n_samples=100, batch_size=100, seed=0):
    """Mean negative CLL in nats per image over `images` (uint8): 'nn' for the baseline and, given a CVAE,
    'cvae_mc', 'cvae_is' (S = n_samples each) and 'cvae_elbo10'. Samples come from their own seeded generator."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    sums = {}
    for batch in images.split(batch_size):
        x, y = task.split(batch)
        values = {"nn": baseline_negative_cll(baseline, task, x, y)}
        if cvae is not None:
            parts, log_p_y_given_z = conditionals(cvae, baseline, task, x, y), partial(log_likelihood, cvae, task, x, y)
            values["cvae_mc"] = negative_cll_monte_carlo(log_p_y_given_z, parts, n_samples, generator)
            values["cvae_is"] = negative_cll_importance(log_p_y_given_z, parts, n_samples, generator)
            values["cvae_elbo10"] = negative_elbo_particles(log_p_y_given_z, parts, ELBO_PARTICLES, generator)
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value.sum()
    return {name: total.item() / len(images) for name, total in sums.items()}


@torch.no_grad()
def completion_figure(path, task, images, baseline, cvae=None, n_cvae_samples=5, seed=0, title="CVAE vs NN"):
    """One column per test digit; labelled rows: the true image, the input (missing pixels grey), the NN's
    completion and n_cvae_samples CVAE completions with z ~ p(z|x) (each the mean of p(y|x,z), as in the tutorial);
    title names the method, the quadrant setting and the scale."""
    x, y = task.split(images)
    grey = torch.full_like(y, 0.5)
    rows = [("truth", task.complete(x, y)), ("input (grey: missing)", task.complete(x, grey)),
            ("NN", task.complete(x, torch.sigmoid(task.output_logits(baseline(x)))))]
    if cvae is not None:
        generator = torch.Generator(device=images.device).manual_seed(seed)
        z = conditionals(cvae, baseline, task, x, y).prior.rsample(n_cvae_samples, generator)
        samples = torch.sigmoid(task.output_logits(cvae.generation_logits(x, z)))
        rows += [(f"CVAE sample {index + 1}", task.complete(x, sample)) for index, sample in enumerate(samples)]
    return save_labelled_grid(path, [(label, row.view(-1, 1, 28, 28)) for label, row in rows], title)
