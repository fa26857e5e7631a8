"""Reading images and masks from disk the same way for every dataset, and pairing them."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seglab.core.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _open(path: Path) -> Image.Image:
    """The decoded image, with its EXIF orientation applied. Above Image.MAX_IMAGE_PIXELS
    (Pillow's guard against decompression bombs, where it would only warn below twice the
    limit) a file is a DataError, so it is reported and can be skipped like any bad file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: more than PIL.Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS} "
                        "pixels, refused as a possible decompression bomb; downscale the "
                        "image") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable or truncated ({error})") from None
    return ImageOps.exif_transpose(image)


WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # more than 8 bits per pixel


def read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB whatever the file's mode (grayscale, 16-bit grayscale, RGBA, CMYK,
    palette) or its extension says, with the EXIF orientation applied."""
    image = _open(path)
    if image.mode in WIDE_MODES:  # PIL's convert would clip 16-bit values at 255
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:
            values = values / 257
        gray = np.clip(values.round(), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """The mask's stored values: H×W for class-index and palette PNGs (the palette indices),
    H×W×3 for RGB colour masks. EXIF orientation, if any, is applied."""
    image = _open(path)
    if image.mode in ("RGB", "RGBA"):
        return np.asarray(image.convert("RGB"))
    if image.mode not in ("P", "L", "I", "I;16"):
        image = image.convert("L")
    return np.asarray(image)


@dataclass(frozen=True)
class Pair:
    """One sample on disk: its id (the file stem) and its two files."""

    id: str
    image: Path
    mask: Path


def images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def pair_by_stem(images: Iterable[Path], masks: dict[str, Path]) -> tuple[list[Pair], list[str]]:
    """Pairs of images with the mask of the same stem, and one problem line per image without
    a mask, mask without an image, or stem used twice. Never pairs by listing order."""
    pairs, problems, seen = [], [], {}
    for image in images:
        stem = image.stem
        if stem in seen:
            problems.append(f"{image}: duplicate stem {stem!r} (also {seen[stem]})")
            continue
        seen[stem] = image
        if stem not in masks:
            problems.append(f"{image}: no mask with stem {stem!r}")
            continue
        pairs.append(Pair(stem, image, masks[stem]))
    problems += [f"{mask}: no image with stem {stem!r}" for stem, mask in masks.items()
                 if stem not in seen]
    return pairs, problems
