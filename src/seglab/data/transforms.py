"""Albumentations pipelines for training and evaluation; masks are always resized nearest."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transform(train: bool, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, resize: Sequence[int] | None = None,
                    hflip: float = 0.0, vflip: float = 0.0, seed: int | None = None) -> A.Compose:
    """Resize (optional), flips when `train`, normalise, and convert the image to a tensor.

    `resize` is (height, width); `hflip`/`vflip` are flip probabilities used only in training.
    """
    steps: list[A.BasicTransform] = []
    if resize is not None:
        height, width = resize
        steps.append(A.Resize(height, width, interpolation=cv2.INTER_LINEAR,
                              mask_interpolation=cv2.INTER_NEAREST))
    if train and hflip > 0:
        steps.append(A.HorizontalFlip(p=hflip))
    if train and vflip > 0:
        steps.append(A.VerticalFlip(p=vflip))
    steps += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(steps, seed=seed)
