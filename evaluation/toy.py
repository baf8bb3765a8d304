"""Toy evaluation: compatibility value, harmonic-mean NLL, and the figure of data / samples / latent clusters."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from objectives.cygen import exact_compatibility, harmonic_mean_log_px  # noqa: E402
from sampling.chains import gibbs_chain, x_langevin, z_langevin  # noqa: E402

X_RANGE = (-4.0, 4.0)
Z_RANGE = (-8.0, 8.0)
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


@torch.no_grad()
def harmonic_mean_nll(encoder, decoder, x, n_mc):
    return -harmonic_mean_log_px(decoder.log_prob(x, encoder(x, n_mc).z))


def toy_metrics(encoder, decoder, x, n_mc):
    """The paper's two toy curves: the harmonic-mean NLL of the data and the compatibility value, exact over the
    two data dimensions at one z ~ q(z|x) per point: `compatibility` is the Frobenius norm itself (jacnorm_x),
    `compatibility_lite` the J-weighted norm that the toy default trains and the official code logged."""
    values = exact_compatibility(encoder, decoder, x)
    return {"nll_hm": harmonic_mean_nll(encoder, decoder, x, n_mc).mean().item(),
            "compatibility": values["jacnorm_x"].item(), "compatibility_lite": values["jacnorm_lite_x"].item()}


def _histogram(ax, points, title, side=X_RANGE):
    ax.hist2d(points[:, 0].cpu().numpy(), points[:, 1].cpu().numpy(), bins=100, range=[side, side], density=True)
    ax.set_title(title)


def _density(ax, encoder, decoder, n_mc, device, side=X_RANGE, n_points=100):
    grid = torch.linspace(*side, n_points, device=device)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], dim=-1)
    log_px = torch.cat([-harmonic_mean_nll(encoder, decoder, chunk, n_mc) for chunk in points.split(5000)])
    ax.imshow(log_px.exp().view(n_points, n_points).cpu().numpy(), origin="lower", extent=(*side, *side))
    ax.set_title("p(x), harmonic mean")


def toy_figure(path, encoder, decoder, x, labels, *, title, uses_prior, z_dim, n_mc, gen_steps, gen_step_size,
               gen_init, n_gibbs_prior=0):
    """Six panels: data, model density, Gibbs samples, z-SGLD (or prior) samples, x-SGLD samples, latents; title
    names the method, the data set and the scale."""
    device = x.device
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    _histogram(axes[0, 0], x, "data x ~ p*(x)")
    _density(axes[0, 1], encoder, decoder, n_mc, device)
    z0 = torch.randn(x.shape[0], z_dim, device=device) if gen_init == "prior" else None
    x_gibbs, _ = gibbs_chain(encoder, decoder, gen_steps, x0=x if z0 is None else None, z0=z0)
    _histogram(axes[0, 2], x_gibbs, f"Gibbs, {gen_steps} steps from {gen_init}")
    sgld_start = x if gen_init == "data" else x_gibbs  # from the prior, SGLD starts where the Gibbs chain ended
    if uses_prior:
        x_prior, _ = gibbs_chain(encoder, decoder, n_gibbs_prior, z0=torch.randn(x.shape[0], z_dim, device=device))
        _histogram(axes[1, 0], x_prior, "ancestral x ~ p(x|z), z ~ N(0, I)")
    else:
        x_zsgld, _ = z_langevin(encoder, decoder, sgld_start, gen_steps, gen_step_size)
        _histogram(axes[1, 0], x_zsgld, f"z-space SGLD, {gen_steps} steps")
    x_xsgld, _ = x_langevin(encoder, decoder, sgld_start, gen_steps, gen_step_size)
    _histogram(axes[1, 1], x_xsgld, f"x-space SGLD, {gen_steps} steps")
    z = encoder.sample(x).cpu().numpy()
    colours = [COLOURS[int(label) % len(COLOURS)] for label in labels.cpu()]
    axes[1, 2].scatter(z[:, 0], z[:, 1], s=2, c=colours)
    axes[1, 2].set(xlim=Z_RANGE, ylim=Z_RANGE, title="z ~ q(z|x), coloured by component")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
