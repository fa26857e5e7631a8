"""The test split's confusion matrix as run-folder files: raw counts as CSV, the row-normalised
matrix and the IoU of each class as pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from seglab.engine.metrics import iou_per_class, segmentation_scores

CELL_TEXT_MAX_CLASSES = 30  # above this the cells are too small to hold their values


def row_normalised(confusion: Tensor | np.ndarray) -> np.ndarray:
    """Each row divided by its true-pixel count (so the diagonal is each class's recall); the
    row of a class with no pixels stays zero."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def write_confusion_csv(confusion: Tensor, class_names: Sequence[str], path: Path) -> None:
    """Raw pixel counts: rows are the true class, columns the predicted one."""
    frame = pd.DataFrame(confusion.numpy(), columns=list(class_names),
                         index=pd.Index(list(class_names), name="true \\ predicted"))
    frame.to_csv(path)


def plot_confusion_matrix(confusion: Tensor, class_names: Sequence[str], path: Path) -> None:
    """The row-normalised matrix as a heat map, with each cell's value when there is room."""
    count = len(class_names)
    fraction = row_normalised(confusion)
    scores = segmentation_scores(confusion, list(class_names))
    side = 2.5 + count * (0.5 if count <= CELL_TEXT_MAX_CLASSES else 0.2)
    fig = Figure(figsize=(max(side, 5.0) + 1.2, max(side, 5.0)))
    ax = fig.subplots()
    image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's pixels")
    ax.set_xticks(range(count), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(count), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if count <= CELL_TEXT_MAX_CLASSES:
        size = 10 if count <= 12 else 8
        for (row, col), value in np.ndenumerate(fraction):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")
    ax.set_title(f"test: pixel accuracy {scores['pixel_acc']:.3f}, mIoU {scores['mIoU']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_per_class_iou(confusion: Tensor, class_names: Sequence[str], path: Path) -> None:
    """A bar per class in class order, the mIoU as a dashed line; a class absent from both
    truth and prediction has no IoU and says "n/a"."""
    ious = iou_per_class(confusion).numpy()
    miou = segmentation_scores(confusion, list(class_names))["mIoU"]
    positions = np.arange(len(class_names))
    fig = Figure(figsize=(7.0, 1.2 + 0.3 * len(class_names)))
    ax = fig.subplots()
    ax.barh(positions, np.nan_to_num(ious), color="tab:blue")
    for position, iou in zip(positions, ious, strict=True):
        defined = not np.isnan(iou)
        ax.text(iou + 0.01 if defined else 0.01, position, f"{iou:.3f}" if defined else "n/a",
                va="center", fontsize=8, color="black" if defined else "grey")
    ax.axvline(miou, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(positions, class_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("IoU")
    ax.set_title(f"test IoU per class; mIoU {miou:.3f} (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_confusion_outputs(confusion: Tensor | np.ndarray, class_names: Sequence[str],
                            output_dir: Path) -> None:
    """`confusion_matrix.csv`, `confusion_matrix.png` and `per_class_iou.png` in `output_dir`
    from a [true, predicted] pixel-count matrix."""
    counts = torch.as_tensor(confusion).cpu().to(torch.int64)
    if counts.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix of shape {tuple(counts.shape)} does not match "
                         f"{len(class_names)} class names")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_confusion_csv(counts, class_names, output_dir / "confusion_matrix.csv")
    plot_confusion_matrix(counts, class_names, output_dir / "confusion_matrix.png")
    plot_per_class_iou(counts, class_names, output_dir / "per_class_iou.png")
