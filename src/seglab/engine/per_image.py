"""The test stage's per-image counts: each test image's intersection and union pixels per
class, kept beside the summed confusion matrix so that reports can bootstrap over images.

Counted on the device with no host synchronisation per step, from each image's own confusion
matrix, which the stage's `ConfusionMatrix` computes anyway when asked (`each_image`); at the
stage's end moved to the host once, and under DDP gathered from every process in one
collective and put back in the split's order by each sample's `index`: exact whatever the
split between processes (seglab's evaluation sampler gives each image to one process).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from lightning import Trainer
from torch import Tensor

from seglab.engine.metrics import per_image_counts
from seglab.runs.per_image import PerImageCounts

log = logging.getLogger(__name__)


class PerImageScores:
    """Accumulates one stage's per-image counts, batch by batch, on the batches' device."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self._parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self._ids: list[str] = []
        self.kept = True

    def update(self, matrices: Tensor, batch: dict) -> None:
        """Keep a batch's per-image counts, from its images' confusion matrices [N, C, C];
        `batch` brings their `index` and `id` (samples of a dataset that does not give them,
        one not built on `SegmentationDataset`, are not kept: said once, in one line)."""
        if "index" not in batch or "id" not in batch:
            if self.kept:
                log.warning("per-image test counts not kept: the test samples have no 'index' "
                            "and 'id' (a SegmentationDataset gives both); no test intervals")
            self.kept = False
            return
        counts = per_image_counts(matrices)
        self._parts.append((torch.as_tensor(batch["index"]).reshape(-1), *counts))
        self._ids += [str(name) for name in batch["id"]]

    def _local(self) -> dict[str, np.ndarray | list[str]]:
        """This process's counts on the host (one transfer per array)."""
        if not self._parts:
            empty = np.zeros((0, self.num_classes), np.int64)
            return {"index": np.zeros(0, np.int64), "ids": [], "intersection": empty,
                    "union": empty, "pixels": np.zeros(0, np.int64)}
        index, intersection, union, pixels = (torch.cat(column).cpu().numpy()
                                              for column in zip(*self._parts, strict=True))
        return {"index": index, "ids": list(self._ids), "intersection": intersection,
                "union": union, "pixels": pixels}

    def gathered(self, trainer: Trainer | None,
                 class_names: list[str]) -> PerImageCounts | None:
        """Every process's counts, in the split's order (under DDP a collective: every
        process calls it at the same point); None when they were not kept."""
        if not self.kept:  # the same on every process: their samples come from one dataset
            return None
        parts = [self._local()]
        if trainer is not None and trainer.world_size > 1:
            parts = [None] * trainer.world_size
            torch.distributed.all_gather_object(parts, self._local())
        index = np.concatenate([part["index"] for part in parts])
        order = np.argsort(index, kind="stable")
        ids = [name for part in parts for name in part["ids"]]
        return PerImageCounts(
            ids=[ids[position] for position in order], class_names=list(class_names),
            intersection=np.concatenate([part["intersection"] for part in parts])[order],
            union=np.concatenate([part["union"] for part in parts])[order],
            pixels=np.concatenate([part["pixels"] for part in parts])[order])
