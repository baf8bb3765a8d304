"""BiGAN and GibbsNet baselines: a discriminator on (x, z) pairs, real = (x, z ~ q(z|x)), fake = generated.

BiGAN is GibbsNet with zero unrolled Gibbs steps. The fake pair starts from the N(0, I) prior and the chain stays
differentiable (reparameterised), so the generator loss reaches both conditionals.
"""
import torch
import torch.nn.functional as F


def fake_pair(encoder, decoder, batch_size, z_dim, n_gibbs, device):
    z = torch.randn(batch_size, z_dim, device=device)
    x = decoder.sample(z)
    for _ in range(n_gibbs):
        z = encoder(x).z[0]
        x = decoder.sample(z)
    return x, z


def discriminator_loss(discriminator, real, fake):
    """Binary cross-entropy: real pairs -> 1, fake pairs -> 0; the pairs are detached."""
    logits_real = discriminator(*(t.detach() for t in real))
    logits_fake = discriminator(*(t.detach() for t in fake))
    return (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))


def generator_loss(discriminator, real, fake):
    """The swapped labels: fool the discriminator on both sides of the pair."""
    logits_real = discriminator(*real)
    logits_fake = discriminator(*fake)
    return (F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))
            + F.binary_cross_entropy_with_logits(logits_real, torch.zeros_like(logits_real)))
