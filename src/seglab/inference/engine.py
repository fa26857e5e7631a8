"""Logits for whole pictures: the network on the whole image, or on overlapping tiles
(sliding window), optionally averaged over flips and scales (test-time augmentation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.core.errors import ConfigError
from seglab.engine.sliding import Net, slide_logits

WINDOWS = ("flat", "hann")


@dataclass(frozen=True)
class InferenceOptions:
    """How logits are computed: `mode` whole or slide (tiles of `tile` [h, w] overlapping by
    the fraction `overlap`, weighted by a `window`); `flip` and `scales` for test-time
    augmentation; `batch_size` tiles run at once."""

    mode: str = "whole"
    tile: tuple[int, int] = (512, 512)
    overlap: float = 0.25
    window: str = "flat"
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ConfigError(f"predict.mode must be whole or slide, got {self.mode!r}")
        if len(self.tile) != 2 or min(self.tile) < 1:
            raise ConfigError(f"predict.tile must be [height, width] in pixels, got {self.tile}")
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"predict.overlap must be in [0, 1), got {self.overlap}")
        if self.window not in WINDOWS:
            raise ConfigError(f"predict.window must be one of {WINDOWS}, got {self.window!r}")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"predict.scales must be positive factors, got {self.scales}")


def forward_logits(net: Net, images: Tensor, options: InferenceOptions) -> Tensor:
    """Logits at the images' size, by the chosen mode, without augmentation."""
    if options.mode == "slide":
        stride = [max(1, round(side * (1 - options.overlap))) for side in options.tile]
        return slide_logits(net, images, options.tile, stride, options.window,
                            options.batch_size)
    return net(images).float()


def scaled(images: Tensor, scale: float) -> Tensor:
    if scale == 1.0:
        return images
    size = [max(1, round(side * scale)) for side in images.shape[-2:]]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def predict_logits(net: Net, images: Tensor, options: InferenceOptions) -> Tensor:
    """Logits [N, C, H, W] of normalised images [N, 3, H, W], averaged over every scale in
    `options.scales` and, with `options.flip`, over the horizontally flipped images."""
    height, width = images.shape[-2:]
    total, views = None, 0
    for scale in options.scales:
        resized = scaled(images, scale)
        for flipped in (False, True) if options.flip else (False,):
            view = resized.flip(-1) if flipped else resized
            logits = forward_logits(net, view, options)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear",
                                       align_corners=False)
            total = logits if total is None else total + logits
            views += 1
    return total / views if views > 1 else total


def options_from_config(predict: dict, input_size: Sequence[int]) -> InferenceOptions:
    """InferenceOptions from the `predict` config section; the tile defaults to the size the
    model was trained at, and `tta: false` turns flips and scales off."""
    tta = bool(predict.get("tta", False))
    tile = predict.get("tile") or input_size
    tile = [tile, tile] if isinstance(tile, int) else tile
    scales = predict.get("scales", [1.0])
    if not isinstance(scales, list) or not all(isinstance(s, int | float) for s in scales):
        raise ConfigError(f"predict.scales={scales!r}: expected a list of factors such as "
                          "[0.75,1.0,1.25]")
    if not isinstance(tile, list) or not all(isinstance(side, int) for side in tile):
        raise ConfigError(f"predict.tile={tile!r}: expected [height, width] in pixels")
    return InferenceOptions(
        mode=predict.get("mode", "whole"), tile=tuple(tile),
        overlap=float(predict.get("overlap", 0.25)), window=predict.get("window", "flat"),
        flip=tta and bool(predict.get("flip", True)),
        scales=tuple(float(s) for s in scales) if tta else (1.0,),
        batch_size=int(predict.get("batch_size", 8)))
