"""Plots a person would rather look at than read, made while a run trains and tests: curves
and prediction grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import Tensor  # noqa: E402

from seglab.data.dataset import SegmentationDataset  # noqa: E402
from seglab.data.palette import class_palette, colorize  # noqa: E402


def plot_curves(history: Sequence[dict], path: Path) -> None:
    """Loss and mIoU per epoch (per validation's step, for rows with a `step`), train and val,
    side by side."""
    x_key = "step" if history and "step" in history[0] else "epoch"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "mIoU"), strict=True):
        for stage, style in (("train", "-o"), ("val", "-s")):
            points = [(row[x_key], row[f"{stage}/{metric}"]) for row in history
                      if row.get(f"{stage}/{metric}") is not None]
            if points:
                positions, values = zip(*points, strict=True)
                ax.plot(positions, values, style, label=stage, markersize=4)
        ax.set_xlabel(x_key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def predict_samples(net: torch.nn.Module, dataset: SegmentationDataset, count: int,
                    prepare: Callable[[Tensor], Tensor] | None = None) -> list[dict]:
    """The first `count` raw samples of `dataset`, each with the net's `prediction` (eval mode):
    a class mask resized to the raw mask's size (nearest). `prepare` makes network inputs of
    the dataset's images (the datamodule's `prepare_images`, for uint8 ones)."""
    parameter = next(net.parameters())
    was_training = net.training
    net.eval()
    samples = []
    for index in range(min(count, len(dataset))):
        raw = dataset.load(index)
        images = dataset[index]["image"][None].to(parameter.device)
        if prepare is not None:
            images = prepare(images)
        elif not images.is_floating_point():
            raise ValueError("predict_samples: the dataset gives uint8 images "
                             "(data.normalize_on_device); pass its datamodule's prepare_images")
        logits = net(images.to(parameter.dtype))
        raw["prediction"] = F.interpolate(logits.argmax(1, keepdim=True).float(),
                                          size=raw["mask"].shape,
                                          mode="nearest")[0, 0].long().cpu().numpy()
        samples.append(raw)
    net.train(was_training)
    return samples


def _display_size(panel: np.ndarray, min_height: int, max_height: int) -> np.ndarray:
    """`panel` scaled (nearest, aspect kept) to between `min_height` and `max_height` rows:
    small samples are enlarged by a whole factor, large ones shrunk."""
    height, width = panel.shape[:2]
    if height < min_height:
        factor = -(-min_height // height)
        return panel.repeat(factor, axis=0).repeat(factor, axis=1)
    if height <= max_height:
        return panel
    rows = np.linspace(0, height - 1, max_height).round().astype(int)
    cols = np.linspace(0, width - 1, round(width * max_height / height)).round().astype(int)
    return panel[rows][:, cols]


def prediction_grid(samples: Sequence[dict], palette: np.ndarray, ignore_index: int = 255,
                    min_height: int = 128, max_height: int = 256, gap: int = 2) -> np.ndarray:
    """One H×W×3 uint8 picture on white: a row of image | ground truth | prediction per
    sample (from `predict_samples`), scaled to `min_height`–`max_height` pixels tall."""
    rows = []
    for sample in samples:
        panels = [_display_size(panel, min_height, max_height) for panel in (
            sample["image"], colorize(sample["mask"], palette, ignore_index),
            colorize(sample["prediction"], palette, ignore_index))]
        space = np.full((panels[0].shape[0], gap, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([panels[0], space, panels[1], space, panels[2]], axis=1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=255)
            for row in rows]
    return np.concatenate(rows)[:-gap]


def plot_predictions(net: torch.nn.Module, dataset: SegmentationDataset,
                     class_names: Sequence[str], path: Path, count: int = 6,
                     ignore_index: int = 255, palette: Sequence | None = None,
                     prepare: Callable[[Tensor], Tensor] | None = None) -> None:
    """A grid of image | ground truth | prediction for the first `count` samples."""
    samples = predict_samples(net, dataset, count, prepare)
    count = len(samples)
    palette = np.asarray(palette if palette is not None else class_palette(len(class_names)),
                         dtype=np.uint8)
    fig, axes = plt.subplots(count, 3, figsize=(7.5, 2.5 * count + 0.6), squeeze=False)
    for row, sample in enumerate(samples):
        panels = (sample["image"], colorize(sample["mask"], palette, ignore_index),
                  colorize(sample["prediction"], palette, ignore_index))
        for col, (panel, title) in enumerate(
                zip(panels, ("image", "ground truth", "prediction"), strict=True)):
            axes[row, col].imshow(panel, interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
        axes[row, 0].text(0, -2, sample["id"], fontsize=7)
    handles = [Patch(color=palette[i] / 255, label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(class_names), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.6 / (2.5 * count + 0.6), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
