"""Segmentation metrics derived from one accumulated confusion matrix.

The matrix is indexed [target, prediction] (the torchmetrics convention) and already excludes
ignored pixels. A class absent from both target and prediction has an undefined IoU and Dice
(NaN); means are taken over the classes where they are defined, as MMSegmentation does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor
from torchmetrics import Metric


def predicted_classes(logits: Tensor, dim: int = 1) -> Tensor:
    """The class of highest logit along `dim` (the first on ties, as `argmax`): `max`'s
    indices, which on a CPU are 6-16x faster than `argmax` across the class dimension of
    [N, C, H, W] logits (torch 2.14, measured) and equal to it."""
    return logits.max(dim).indices


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


def confusion_counts(preds: Tensor, target: Tensor, num_classes: int,
                     ignore_index: int | None = None, per_image: bool = False) -> Tensor:
    """The [target, prediction] pixel counts of class maps [N, H, W]: one [C, C] matrix, or
    with `per_image` one per image, [N, C, C]. Pixels whose target is ignored or out of range
    are counted in one extra bin that is never read; one scatter, no host synchronisation
    (boolean indexing and bincount, as torchmetrics' own uses, both wait for the GPU)."""
    classes, images = num_classes, preds.shape[0] if per_image else 1
    target, preds = target.reshape(images, -1).long(), preds.reshape(images, -1).long()
    counted = (target >= 0) & (target < classes)
    if ignore_index is not None:
        counted &= target != ignore_index
    first_bin = torch.arange(images, device=preds.device).unsqueeze(1) * classes * classes
    unused = images * classes * classes
    bins = torch.where(counted, first_bin + target * classes + preds, unused).flatten()
    counts = torch.zeros(unused + 1, dtype=torch.long, device=bins.device)
    with _integer_scatter():
        counts.scatter_add_(0, bins, torch.ones_like(bins))
    matrices = counts[:-1].view(images, classes, classes)
    return matrices if per_image else matrices[0]


def per_image_counts(matrices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each image's intersection and union pixel counts per class ([N, C] each) and its counted
    pixels ([N]), from its own confusion matrix ([N, C, C]): the summed matrix's diagonal and
    unions, image by image (new tensors: keeping them does not keep the matrices)."""
    intersection = matrices.diagonal(dim1=1, dim2=2).clone()
    union = matrices.sum(1) + matrices.sum(2) - intersection
    return intersection, union, matrices.sum((1, 2))


class ConfusionMatrix(Metric):
    """The [target, prediction] pixel-count matrix of a stage, accumulated on the device.

    One update per step and no host synchronisation in it (`confusion_counts`). Summed over
    DDP processes. An update given `each_image` counts every image on its own matrix, hands
    those ([N, C, C]) to it, and adds their sum: the test's per-image counts for the price
    of about one more reduction.
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor,
               each_image: Callable[[Tensor], None] | None = None) -> None:
        if each_image is None:
            self.confmat += confusion_counts(preds, target, self.num_classes, self.ignore_index)
            return
        matrices = confusion_counts(preds, target, self.num_classes, self.ignore_index,
                                    per_image=True)
        each_image(matrices)
        self.confmat += matrices.sum(0)

    def compute(self) -> Tensor:
        return self.confmat


@contextmanager
def _integer_scatter() -> Iterator[None]:
    """Integer additions give the same sum in any order, so CUDA's atomic scatter is exact
    even where deterministic algorithms are required (which would otherwise refuse it)."""
    strict = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(strict, warn_only=warn_only)
