"""The sample contract every seglab dataset follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch.utils.data import Dataset


class SegmentationDataset(Dataset, ABC):
    """Base class: `load(i)` gives the raw sample, indexing gives the transformed one.

    A raw sample is a dict with `image` (H×W×3 uint8 RGB), `mask` (H×W int64, ignore as 255)
    and `id` (file stem or scene name). With a transform, `image` becomes a float tensor
    [3, H, W] and `mask` a long tensor [H, W], and `index` says which sample it is (so
    per-image test scores gathered from DDP processes are put back in the split's order).
    """

    def __init__(self, transform: Callable[..., dict] | None = None) -> None:
        self.transform = transform

    @abstractmethod
    def load(self, index: int) -> dict:
        """The raw sample `index`."""

    def __getitem__(self, index: int) -> dict:
        sample = self.load(index)
        if self.transform is None:
            return sample
        out = self.transform(image=sample["image"], mask=sample["mask"])
        return {"image": out["image"], "mask": torch.as_tensor(out["mask"]).long(),
                "id": sample["id"], "index": index}
