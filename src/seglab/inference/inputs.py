"""What `input=` names: an image, a folder (searched recursively), a glob, or a video; the
images read and preprocessed in loader workers, grouped by size into batches."""

from __future__ import annotations

import glob
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from seglab.core.errors import ConfigError
from seglab.data.files import IMAGE_SUFFIXES, DataError, read_image
from seglab.inference.card import ModelCard

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
EXIF_ORIENTATION = 0x0112
ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class InputItem:
    """One picture to predict: its file and its path relative to the input (mirrored under
    the output folder)."""

    path: Path
    relative: Path


def _is_glob(spec: str) -> bool:
    return any(char in spec for char in "*?[")


def _glob_base(spec: str) -> Path:
    parts = Path(spec).parts
    fixed = parts[:next(index for index, part in enumerate(parts) if _is_glob(part))]
    return Path(*fixed) if fixed else Path(".")


def list_inputs(spec: str) -> tuple[str, list[InputItem]]:
    """("video", [the video]) or ("images", the images) named by `spec`; a missing path, an
    empty folder or a glob that matches nothing is one ConfigError."""
    if _is_glob(spec) and not Path(spec).expanduser().exists():
        spec = os.path.expanduser(spec)
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise ConfigError(f"input: the glob {spec!r} matches no image "
                              f"({len(files)} files matched; images end in "
                              f"{', '.join(IMAGE_SUFFIXES)})")
        base = _glob_base(spec)
        return "images", [InputItem(p, p.relative_to(base)) for p in images]
    path = Path(spec).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file()
                        and p.suffix.lower() in IMAGE_SUFFIXES
                        and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not images:
            raise ConfigError(f"input: the folder {path} holds no images (looked for "
                              f"{', '.join(IMAGE_SUFFIXES)} in it and its sub-folders)")
        return "images", [InputItem(p, p.relative_to(path)) for p in images]
    if not path.is_file():
        raise ConfigError(f"input: no file or folder at {path}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video", [InputItem(path, Path(path.name))]
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"input: {path} is neither an image ({', '.join(IMAGE_SUFFIXES)}) "
                          f"nor a video ({', '.join(VIDEO_SUFFIXES)})")
    return "images", [InputItem(path, Path(path.name))]


def image_size(path: Path, max_pixels: int) -> tuple[int, int]:
    """(height, width) as the image will be read (EXIF rotation applied), from its header
    alone; DataError when unreadable or above `max_pixels` (a decompression-bomb guard)."""
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the size is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(EXIF_ORIENTATION) in ROTATED:
                    width, height = height, width
    except Image.DecompressionBombError:
        width = height = None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable ({error})") from None
    if width is None or width * height > max_pixels:
        shown = f"{width}×{height} pixels" if width is not None else "too many pixels"
        raise DataError(f"{path}: {shown}, above predict.max_pixels={max_pixels} (a guard "
                        "against decompression bombs); for a large photo raise "
                        "predict.max_pixels and use predict.mode=slide")
    return height, width


def processed_size(size: tuple[int, int], resize: int | Sequence[int] | None) -> tuple[int, int]:
    """The size the network sees: the picture's own, its shorter side scaled to `resize`
    pixels (an int), or exactly `resize` ([h, w])."""
    height, width = size
    if resize is None:
        return height, width
    if isinstance(resize, int):
        scale = resize / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return int(resize[0]), int(resize[1])


def to_network_input(image: np.ndarray, card: ModelCard) -> torch.Tensor:
    """An H×W×3 uint8 RGB picture, resized as the card says and normalised: [3, h, w] float."""
    height, width = processed_size(image.shape[:2], card.resize)
    if (height, width) != image.shape[:2]:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    mean = np.asarray(card.mean, dtype=np.float32) * 255
    std = np.asarray(card.std, dtype=np.float32) * 255
    normalised = (image.astype(np.float32) - mean) / std
    return torch.from_numpy(normalised.transpose(2, 0, 1).copy())


class PictureDataset(Dataset):
    """Items to predict, read and preprocessed in loader workers. A file that fails to read
    gives an item with its `error` instead of pixels, so one bad file never stops a batch."""

    def __init__(self, items: Sequence[InputItem], card: ModelCard) -> None:
        self.items = list(items)
        self.card = card

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path = self.items[index].path
        try:
            image = read_image(path)
        except DataError as error:
            return {"index": index, "error": str(error)}
        except Exception as error:  # a damaged file can make Pillow raise anything
            return {"index": index, "error": f"{path}: unreadable ({type(error).__name__}: "
                                             f"{error})"}
        return {"index": index, "image": image, "input": to_network_input(image, self.card)}


def collate_pictures(samples: list[dict]) -> dict:
    """Stack the readable pictures of a batch (all of one size); keep the failures apart."""
    good = [sample for sample in samples if "error" not in sample]
    return {"indices": [sample["index"] for sample in good],
            "images": [sample["image"] for sample in good],
            "inputs": torch.stack([sample["input"] for sample in good]) if good else None,
            "errors": [(sample["index"], sample["error"]) for sample in samples
                       if "error" in sample]}


class SameSizeBatches(Sampler[list[int]]):
    """Batches of up to `batch_size` indices whose pictures share one processed size, so no
    batch is padded; in input order within each size."""

    def __init__(self, sizes: Sequence[tuple[int, int]], batch_size: int) -> None:
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, size in enumerate(sizes):
            groups[size].append(index)
        self.batches = [indices[start:start + batch_size] for indices in groups.values()
                        for start in range(0, len(indices), batch_size)]
        self.batches.sort(key=lambda batch: batch[0])

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
