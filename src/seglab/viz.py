"""Plots a person would rather look at than read: curves, prediction grids, palettes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from seglab.data.dataset import SegmentationDataset  # noqa: E402

IGNORE_COLOUR = (255, 255, 255)


def class_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour palette extended to `num_classes` colours ([C, 3] uint8)."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for label in range(num_classes):
        value, bit = label, 7
        while value:
            for channel in range(3):
                palette[label, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
    return palette


def colorize(mask: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """An H×W class mask as an H×W×3 RGB image; ignored pixels are white."""
    rgb = palette[np.clip(mask, 0, len(palette) - 1)]
    rgb[mask == ignore_index] = IGNORE_COLOUR
    return rgb


def plot_curves(history: Sequence[dict], path: Path) -> None:
    """Loss and mIoU per epoch, train and val, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "mIoU"), strict=True):
        for stage, style in (("train", "-o"), ("val", "-s")):
            points = [(row["epoch"], row[f"{stage}/{metric}"]) for row in history
                      if row.get(f"{stage}/{metric}") is not None]
            if points:
                epochs, values = zip(*points, strict=True)
                ax.plot(epochs, values, style, label=stage, markersize=4)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def plot_predictions(net: torch.nn.Module, dataset: SegmentationDataset,
                     class_names: Sequence[str], path: Path, count: int = 6,
                     ignore_index: int = 255, palette: Sequence | None = None) -> None:
    """A grid of image | ground truth | prediction for the first `count` samples."""
    count = min(count, len(dataset))
    palette = np.asarray(palette if palette is not None else class_palette(len(class_names)),
                         dtype=np.uint8)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    fig, axes = plt.subplots(count, 3, figsize=(7.5, 2.5 * count + 0.6), squeeze=False)
    for row in range(count):
        raw = dataset.load(row)
        logits = net(dataset[row]["image"][None].to(device).float())
        pred = F.interpolate(logits.argmax(1, keepdim=True).float(), size=raw["mask"].shape,
                             mode="nearest")[0, 0].long().cpu().numpy()
        panels = (raw["image"], colorize(raw["mask"], palette, ignore_index),
                  colorize(pred, palette, ignore_index))
        for col, (panel, title) in enumerate(
                zip(panels, ("image", "ground truth", "prediction"), strict=True)):
            axes[row, col].imshow(panel, interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
        axes[row, 0].text(0, -2, raw["id"], fontsize=7)
    net.train(was_training)
    handles = [Patch(color=palette[i] / 255, label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(class_names), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.6 / (2.5 * count + 0.6), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
