"""Datasets stored as image files paired with mask files, and how their masks are decoded."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from seglab.data.dataset import SegmentationDataset
from seglab.data.files import DataError, Pair, read_image, read_mask


class ValueMask:
    """Stored values are class indices, optionally renamed through `mapping` (stored → class);
    values absent from the mapping are kept, so checks can report them."""

    def __init__(self, mapping: Mapping[int, int] | None = None) -> None:
        self.table = None
        if mapping:
            self.table = np.arange(256, dtype=np.int64)
            for stored, label in mapping.items():
                self.table[stored] = label

    def __call__(self, stored: np.ndarray, path: Path) -> np.ndarray:
        if stored.ndim != 2:
            raise DataError(f"{path}: expected a single-channel class-index mask, got an RGB "
                            "image (set the class colours to read colour masks)")
        if self.table is None or stored.max(initial=0) > 255:
            return stored.astype(np.int64)
        return self.table[stored]


class ColourMask:
    """RGB masks: each colour in `colours` is its class index; `ignore_colours` become
    `ignore_index`; any other colour is an error naming it."""

    def __init__(self, colours: Sequence[Sequence[int]], ignore_index: int = 255,
                 ignore_colours: Sequence[Sequence[int]] = ()) -> None:
        self.lookup = {self._pack(colour): label for label, colour in enumerate(colours)}
        self.lookup.update({self._pack(colour): ignore_index for colour in ignore_colours})

    @staticmethod
    def _pack(colour: Sequence[int]) -> int:
        red, green, blue = (int(value) for value in colour)
        return (red << 16) | (green << 8) | blue

    def __call__(self, stored: np.ndarray, path: Path) -> np.ndarray:
        if stored.ndim == 2:
            stored = np.repeat(stored[..., None], 3, axis=2)
        packed = (stored[..., 0].astype(np.int64) << 16) | (stored[..., 1].astype(np.int64) << 8) \
            | stored[..., 2].astype(np.int64)
        colours, inverse = np.unique(packed, return_inverse=True)
        unknown = [int(c) for c in colours if int(c) not in self.lookup]
        if unknown:
            shown = ", ".join(str(((c >> 16) & 255, (c >> 8) & 255, c & 255)) for c in unknown[:3])
            raise DataError(f"{path}: mask colour(s) {shown} are not class colours")
        labels = np.array([self.lookup[int(c)] for c in colours], dtype=np.int64)
        return labels[inverse.reshape(packed.shape)]


class PairedDataset(SegmentationDataset):
    """A split given as image/mask pairs. `problems` holds what listing found wrong (missing
    partners, duplicate stems); reading problems surface as DataError naming the file."""

    def __init__(self, pairs: Sequence[Pair], class_names: Sequence[str],
                 decode: Callable[[np.ndarray, Path], np.ndarray], problems: Sequence[str] = (),
                 transform: Callable[..., dict] | None = None,
                 palette: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__(transform)
        self.pairs = list(pairs)
        self.class_names = list(class_names)
        self.decode = decode
        self.problems = list(problems)
        self.palette = palette

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> dict:
        pair = self.pairs[index]
        image = read_image(pair.image)
        mask = self.decode(read_mask(pair.mask), pair.mask)
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(f"{pair.image}: image is {image.shape[0]}×{image.shape[1]} but its "
                            f"mask {pair.mask} is {mask.shape[0]}×{mask.shape[1]}")
        return {"image": image, "mask": mask, "id": pair.id}

    def without(self, ids: set[str]) -> None:
        """Drop the samples with these ids (bad files skipped under `on_error: skip`)."""
        self.pairs = [pair for pair in self.pairs if pair.id not in ids]
