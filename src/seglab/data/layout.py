"""Shared pieces of the on-disk datasets: required folders, seeded splits, downloads."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from seglab.core.errors import ConfigError, DataError

T = TypeVar("T")
SPLITS = ("train", "val", "test")


def require_root(root: str | None, dataset: str, layout: str, download_page: str,
                 download: bool = False) -> Path:
    """`data.root` as a folder; a ConfigError when it is a file, or when it is missing and no
    download (`data.download=true`) will create it."""
    path = Path(str(root)).expanduser()
    if path.is_dir() or (download and not path.exists()):
        return path
    problem = "is a file, not a folder" if path.exists() else "does not exist"
    raise ConfigError(f"data.root = {root}: {problem}; expected a folder holding {layout} "
                      f"({dataset}: {download_page})")


def folder_contents(path: Path, shown: int = 8) -> str:
    """What `path` holds, in one short phrase for layout errors (folders end in /)."""
    names = sorted(f"{entry.name}/" if entry.is_dir() else entry.name
                   for entry in path.iterdir())
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more if names else "nothing (an empty folder)"


def require_folders(root: Path, folders: Sequence[str], dataset: str, layout: str,
                    page: str) -> None:
    """One ConfigError naming the folders `dataset` expects under data.root and what is
    there instead, so a root pointed at the wrong folder or dataset says so at once."""
    if all((root / folder).is_dir() for folder in folders):
        return
    names = [f"{folder}/" for folder in folders]
    expected = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    raise ConfigError(f"data.root = {root}: expected {expected} (the {dataset} layout: {layout}); "
                      f"found: {folder_contents(root)}. Download from {page}")


def require(path: Path, dataset: str, layout: str, download_page: str,
            downloadable: bool = False) -> Path:
    """`path` if it exists, else one error with the expected layout and where to get the data
    (and, for datasets torchvision can download, the `data.download` switch)."""
    if not path.exists():
        raise DataError(f"{dataset}: {path} not found. Expected layout under data.root: "
                        f"{layout}. Download from {download_page} and extract it there"
                        f"{' (or set data.download=true)' if downloadable else ''}")
    return path


def seeded_split(items: Sequence[T], split: str, fractions: Mapping[str, float],
                 seed: int) -> list[T]:
    """The `split` part of a seeded shuffle of `items` cut by `fractions` (train, val, test)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    values = [float(fractions.get(name, 0.0)) for name in SPLITS]
    if any(value < 0 for value in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"data.split_fractions = {dict(fractions)}: expected non-negative "
                          "fractions for train, val and test that sum to 1")
    order = np.random.default_rng(seed).permutation(len(items))
    n_train = round(values[0] * len(items))
    n_val = round(values[1] * len(items))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
              "test": (n_train + n_val, len(items))}
    start, stop = bounds[split]
    return [items[i] for i in sorted(order[start:stop])]


def download_with(what: str, download: Callable[[], object], root: Path) -> None:
    """Run a torchvision downloader; without internet, say so in one line."""
    try:
        download()
    except OSError as error:
        raise DataError(f"could not download {what} into {root} ({type(error).__name__}: "
                        f"{error}); download it by hand and set data.download=false") from None
