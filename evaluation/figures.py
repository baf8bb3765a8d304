"""Sample grids a person can read: every row of images labelled at its left (data, reconstruction, prior sample,
SGLD step, chain step, quadrant input / NN / CVAE sample), optional column labels, and a title naming the method,
the dataset and the scale. The images keep their pixels (nearest-neighbour, one screen pixel per image pixel)."""
import compat  # noqa: F401  (before torchvision)

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

PADDING = 2
DPI = 100
LABEL_WIDTH_INCHES = 1.9
TITLE_LINE_INCHES = 0.2
TITLE_CHARACTERS_PER_INCH = 14  # at 9 pt


def rows_of(label, images, per_row):
    """(label, images) rows of `per_row` images each: a labelled block of a larger set (all prior samples, say)."""
    return [(label, images[start:start + per_row]) for start in range(0, len(images), per_row)]


@torch.no_grad()
def save_labelled_grid(path, rows, title, column_labels=None):
    """rows: [(label, images [N, C, H, W] in [0, 1])], one grid row each (a shorter row is padded white);
    column_labels: one per column, or None. Writes a PNG at `path`."""
    width = max(len(images) for _, images in rows)
    blank = torch.ones_like(rows[0][1][:1])
    padded = [torch.cat([images.float().clamp(0, 1).cpu(), blank.repeat(width - len(images), 1, 1, 1).cpu()])
              for _, images in rows]
    grid = make_grid(torch.cat(padded), nrow=width, padding=PADDING, pad_value=1.0)
    pixels = grid.permute(1, 2, 0).numpy()
    height_px, width_px = pixels.shape[:2]
    tile = rows[0][1].shape[-2] + PADDING
    figure_width = LABEL_WIDTH_INCHES + width_px / DPI + 0.1
    title = textwrap.fill(title, int(figure_width * TITLE_CHARACTERS_PER_INCH))
    top = TITLE_LINE_INCHES * (title.count("\n") + 1) + 0.15 + (0.25 if column_labels else 0)
    figure = plt.figure(figsize=(figure_width, top + height_px / DPI + 0.05), dpi=DPI)
    axis = figure.add_axes([LABEL_WIDTH_INCHES / figure.get_figwidth(), 0.05 / figure.get_figheight(),
                            width_px / DPI / figure.get_figwidth(), height_px / DPI / figure.get_figheight()])
    axis.imshow(pixels, interpolation="nearest")
    axis.set_yticks([PADDING + tile * index + tile / 2 - 1 for index in range(len(rows))],
                    [label for label, _ in rows], fontsize=8)
    if column_labels:
        axis.xaxis.tick_top()
        axis.set_xticks([PADDING + tile * index + tile / 2 - 1 for index in range(len(column_labels))],
                        column_labels, fontsize=7)
    else:
        axis.set_xticks([])
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    figure.suptitle(title, x=0.01, y=1 - 0.08 / figure.get_figheight(), ha="left", va="top", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
