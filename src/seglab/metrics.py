"""Segmentation metrics derived from one accumulated confusion matrix.

The matrix is indexed [target, prediction] (the torchmetrics convention) and already excludes
ignored pixels. A class absent from both target and prediction has an undefined IoU and Dice
(NaN); means are taken over the classes where they are defined, as MMSegmentation does.
"""

from __future__ import annotations

import torch
from torch import Tensor


def iou_per_class(confmat: Tensor) -> Tensor:
    """IoU of each class: TP / (TP + FP + FN), NaN where the class never occurs."""
    confmat = confmat.double()
    true_positive = confmat.diag()
    union = confmat.sum(0) + confmat.sum(1) - true_positive
    return torch.where(union > 0, true_positive / union.clamp(min=1), torch.nan)


def dice_per_class(confmat: Tensor) -> Tensor:
    """Dice (F1) of each class: 2TP / (2TP + FP + FN), NaN where the class never occurs."""
    confmat = confmat.double()
    true_positive = confmat.diag()
    total = confmat.sum(0) + confmat.sum(1)
    return torch.where(total > 0, 2 * true_positive / total.clamp(min=1), torch.nan)


def pixel_accuracy(confmat: Tensor) -> float:
    """Share of counted pixels whose predicted class is right (NaN if none were counted)."""
    confmat = confmat.double()
    total = confmat.sum()
    return float(confmat.diag().sum() / total) if total > 0 else float("nan")


def segmentation_scores(confmat: Tensor, class_names: list[str]) -> dict[str, float]:
    """The logged metric set: mIoU, pixel_acc, dice and iou_<class> for every class."""
    if confmat.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix of shape {tuple(confmat.shape)} does not match "
                         f"{len(class_names)} class names")
    ious = iou_per_class(confmat)
    scores = {
        "mIoU": float(ious.nanmean()),
        "pixel_acc": pixel_accuracy(confmat),
        "dice": float(dice_per_class(confmat).nanmean()),
    }
    scores.update({f"iou_{name}": float(iou) for name, iou in zip(class_names, ious, strict=True)})
    return scores
