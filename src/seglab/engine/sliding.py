"""Sliding-window logits: the network on overlapping tiles of a picture, their logits averaged
where tiles overlap (MMSegmentation's `mode='slide'`). Validation and test use it under
`data.eval_mode: slide`, seglab-predict under `predict.mode=slide`: one computation for both."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Net = Callable[[Tensor], Tensor]


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles along one side: every `stride`, the last one flush with the end
    (one tile at 0 when the side fits in a tile)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    return sorted({min(index * stride, length - tile) for index in range(count)})


def tile_window(height: int, width: int, kind: str, device: torch.device) -> Tensor:
    """Per-pixel weight of a tile's logits: flat, or a Hann window (never quite zero, so
    border pixels covered by one tile keep their prediction)."""
    if kind == "flat":
        return torch.ones(height, width, device=device)
    rows = torch.hann_window(height + 2, periodic=False, device=device)[1:-1]
    cols = torch.hann_window(width + 2, periodic=False, device=device)[1:-1]
    return torch.outer(rows, cols).clamp(min=1e-3)


def slide_logits(net: Net, images: Tensor, tile: Sequence[int], stride: Sequence[int],
                 window: str = "flat", batch_size: int = 8) -> Tensor:
    """Float logits [N, C, H, W] of images [N, 3, H, W]: tiles of `tile` [h, w] (cut to the
    image where it is smaller) every `stride` [h, w] pixels, `batch_size` tiles per forward
    pass, their logits weighted by the window and averaged where they overlap."""
    batch, _, height, width = images.shape
    tile_h, tile_w = min(tile[0], height), min(tile[1], width)
    boxes = [(top, left) for top in tile_starts(height, tile_h, stride[0])
             for left in tile_starts(width, tile_w, stride[1])]
    weight = tile_window(tile_h, tile_w, window, images.device)
    total = count = None
    for image_index in range(batch):
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start:start + batch_size]
            tiles = torch.stack([images[image_index, :, top:top + tile_h, left:left + tile_w]
                                 for top, left in chunk])
            logits = net(tiles).float()
            if total is None:
                total = logits.new_zeros(batch, logits.shape[1], height, width)
                count = logits.new_zeros(batch, 1, height, width)
            for (top, left), tile_logits in zip(chunk, logits, strict=True):
                total[image_index, :, top:top + tile_h, left:left + tile_w] += tile_logits * weight
                count[image_index, :, top:top + tile_h, left:left + tile_w] += weight
    return total / count
