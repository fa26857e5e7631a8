"""Albumentations pipelines for training and evaluation; masks are always resized nearest and
padded with the ignore index."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import torch
from albumentations.pytorch import ToTensorV2
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_SIZING = ("resize", "pad", "shorter_side", None)


def build_transform(train: bool, input_size: Sequence[int], mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, eval_sizing: str | None = None,
                    scale: Sequence[float] | None = None, crop: bool = False,
                    hflip: float = 0.0, vflip: float = 0.0, color_jitter: float = 0.0,
                    ignore_index: int = 255, seed: int | None = None,
                    normalize: bool = True) -> A.Compose:
    """Training: random rescale by a factor in `scale`, a random `input_size` crop (padded with
    zeros / `ignore_index` where the image is smaller) when `crop`, flips with probabilities
    `hflip`/`vflip`, colour jitter of strength `color_jitter`. Evaluation (and training without
    `crop`): `eval_sizing` "resize" to `input_size`, "pad" (shrink the longer side to fit, then
    pad at the bottom/right), "shorter_side" (scale the shorter side to the smaller of
    `input_size`, as torchvision's published weights are evaluated), or None to keep the size.
    Then normalise (unless not `normalize`: the image stays uint8, to be normalised on the
    device by `normalize_images`) and make tensors."""
    if eval_sizing not in EVAL_SIZING:
        raise ValueError(f"data.eval_sizing must be one of {EVAL_SIZING}, got {eval_sizing!r}")
    height, width = input_size
    pad = A.PadIfNeeded(height, width, position="top_left", border_mode=cv2.BORDER_CONSTANT,
                        fill=0, fill_mask=ignore_index)
    steps: list[A.BasicTransform] = []
    if train and scale is not None and tuple(scale) != (1.0, 1.0):
        low, high = scale
        steps.append(A.RandomScale(scale_limit=(low - 1, high - 1), interpolation=cv2.INTER_LINEAR,
                                   mask_interpolation=cv2.INTER_NEAREST, p=1.0))
    if train and crop:
        steps += [pad, A.RandomCrop(height, width)]
    elif eval_sizing == "resize":
        steps.append(A.Resize(height, width, interpolation=cv2.INTER_LINEAR,
                              mask_interpolation=cv2.INTER_NEAREST))
    elif eval_sizing == "shorter_side":
        steps.append(A.SmallestMaxSize(max_size=min(height, width),
                                       interpolation=cv2.INTER_LINEAR,
                                       mask_interpolation=cv2.INTER_NEAREST))
    elif eval_sizing == "pad":
        steps += [A.LongestMaxSize(max_size=max(height, width), interpolation=cv2.INTER_LINEAR,
                                   mask_interpolation=cv2.INTER_NEAREST), pad,
                  A.CenterCrop(height, width)]
    if train and hflip > 0:
        steps.append(A.HorizontalFlip(p=hflip))
    if train and vflip > 0:
        steps.append(A.VerticalFlip(p=vflip))
    if train and color_jitter > 0:
        steps.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter,
                                   saturation=color_jitter, hue=min(color_jitter / 4, 0.5), p=0.8))
    if normalize:
        steps.append(A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0))
    return A.Compose([*steps, ToTensorV2()], seed=seed)


def normalization_tensors(mean: Sequence[float], std: Sequence[float],
                          device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(255 mean, 255 std) as [3, 1, 1] float32 tensors on `device`, for `normalize_images`."""
    shift = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255.0
    scale = torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255.0
    return shift.to(device), scale.to(device)


def normalize_images(images: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """uint8 images [N, 3, H, W] (or [3, H, W]) as float32 normalised like A.Normalize:
    (x - 255 mean) / (255 std), computed where the tensor is (the GPU, for batches that
    travelled as uint8: a quarter of the bytes of float32)."""
    return (images.float() - shift) / scale
