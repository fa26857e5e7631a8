"""What a prediction leaves on disk: palette masks, colour overlays, side-by-side views,
class shares, and pseudo-label datasets in the `folder` layout."""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.palette import colorize
from seglab.inference.card import ModelCard

# pictures waiting for the writer thread hold at most this many pixels (besides the one being
# written): a batch of photos is encoded while the next computes, a 12-megapixel one at a time
PENDING_PIXELS = 2**24


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float) -> np.ndarray:
    """The picture with each pixel's class colour blended in at opacity `alpha`."""
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colorize(mask, palette)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def palette_mask(mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A class-index mask as a palette PNG image: the pixel values are the class indices, the
    palette shows them in the classes' colours."""
    if len(palette) > 256:
        return Image.fromarray(mask.astype(np.uint16))
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[:len(palette)] = palette
    image.putpalette(flat.flatten().tolist())
    return image


def class_shares(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """The share of the picture's pixels given to each class."""
    counts = np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(mask.size, 1)


def unique_names(relatives: Sequence[Path]) -> list[Path]:
    """Output names (without suffix) for the inputs' relative paths, never two alike (nor
    alike once case is ignored or sub-folders are flattened): inputs that differ only by
    suffix (a.jpg, a.png) keep it in the name, any other clash gets a number."""
    stems = [relative.with_suffix("") for relative in relatives]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[str(stem).lower()] = counts.get(str(stem).lower(), 0) + 1
    names, taken = [], set()
    for stem, relative in zip(stems, relatives, strict=True):
        name = stem.with_name(f"{stem.name}_{relative.suffix.lstrip('.').lower()}") \
            if counts[str(stem).lower()] > 1 else stem
        candidate, number = name, 1
        while "__".join(candidate.parts).lower() in taken:
            number += 1
            candidate = name.with_name(f"{name.name}_{number}")
        taken.add("__".join(candidate.parts).lower())
        names.append(candidate)
    return names


class PictureWriter:
    """Writes each prediction under `output_dir`: masks/<name>.png (palette PNG at the
    input's size), with `overlays` overlays/<name>.jpg, with `side_by_side`
    side_by_side/<name>.jpg, and one row of class shares per picture in class_shares.csv.
    With `dataset`, also the pseudo-label dataset dataset/{images,masks}/ in the `folder`
    layout. The files are encoded by one thread of their own, in the order given, while the
    caller computes the next batch; a write that fails is raised by a later `write` or by
    `close`."""

    def __init__(self, output_dir: Path, card: ModelCard, alpha: float = 0.5,
                 side_by_side: bool = False, dataset: bool = False,
                 overlays: bool = True) -> None:
        self.output_dir = output_dir
        self.card = card
        self.palette = np.asarray(card.palette, dtype=np.uint8)
        self.alpha = alpha
        self.side_by_side = side_by_side
        self.dataset = dataset
        self.overlays = overlays
        output_dir.mkdir(parents=True, exist_ok=True)
        self._shares = open(output_dir / "class_shares.csv", "w", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._shares)
        self._csv.writerow(["name", "height", "width", *card.class_names])
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seglab-writer")
        self._pending: deque[tuple[Future, int]] = deque()

    def _path(self, folder: str, name: Path, suffix: str) -> Path:
        path = self.output_dir / folder / name.parent / f"{name.name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, name: Path, image: np.ndarray, mask: np.ndarray) -> None:
        """Queue the picture's files, waiting while the queue is full."""
        while self._pending and (self._pending[0][0].done() or sum(
                pixels for _, pixels in self._pending) > PENDING_PIXELS):
            self._pending.popleft()[0].result()
        self._pending.append((self._thread.submit(self._write, name, image, mask), mask.size))

    def _write(self, name: Path, image: np.ndarray, mask: np.ndarray) -> None:
        palette_mask(mask, self.palette).save(self._path("masks", name, ".png"))
        if self.overlays or self.side_by_side:
            blended = overlay(image, mask, self.palette, self.alpha)
            if self.overlays:
                Image.fromarray(blended).save(self._path("overlays", name, ".jpg"), quality=92)
            if self.side_by_side:
                Image.fromarray(np.concatenate([image, blended], axis=1)).save(
                    self._path("side_by_side", name, ".jpg"), quality=92)
        if self.dataset:
            self._write_pseudo_label(name, image, mask)
        shares = class_shares(mask, self.card.num_classes)
        self._csv.writerow([str(name), *mask.shape, *(f"{share:.6f}" for share in shares)])

    def _write_pseudo_label(self, name: Path, image: np.ndarray, mask: np.ndarray) -> None:
        """images/<flat>.png as read (EXIF rotation applied, so it stays aligned with its
        mask) and masks/<flat>.png: class indices, or the class colours when the model was
        trained on colour masks. Sub-folders are flattened into the name (a__b)."""
        flat = "__".join(name.parts)
        folder = self.output_dir / "dataset"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / "images" / f"{flat}.png")
        stored = self.palette[mask] if self.card.colour_masks else mask.astype(np.uint8)
        Image.fromarray(stored).save(folder / "masks" / f"{flat}.png")

    def close(self) -> None:
        """Wait for every queued picture; raise the first write that failed."""
        try:
            while self._pending:
                self._pending.popleft()[0].result()
        finally:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._shares.close()
