"""Lightning's checkpoint files, written atomically (see `seglab.core.atomic`) and read
through seglab's one gate (`seglab.core.checkpoints.read_checkpoint`)."""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH

from seglab.core.atomic import atomic_writer
from seglab.core.checkpoints import read_checkpoint


def _is_local(path: _PATH) -> bool:
    return isinstance(path, os.PathLike) or "://" not in str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpoints, written through `atomic_writer`: a run killed while
    saving best.ckpt or last.ckpt leaves the previous file whole. Read through
    `read_checkpoint`, into memory (one line naming the file when it is damaged); a checkpoint
    the command has read already, with the same trust (`already_read`, by resolved path:
    resume's checks, eval's), is taken out of that mapping and handed over instead of read
    again, so nothing else keeps it. URLs (s3://, file://, ...) keep Lightning's own fsspec
    save and load."""

    def __init__(self, already_read: MutableMapping[Path, dict] | None = None) -> None:
        super().__init__()
        self._already_read = already_read if already_read is not None else {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_writer(Path(path)) as file:
            torch.save(checkpoint, file)

    def load_checkpoint(self, path: _PATH, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location, weights_only)
        found = self._already_read.pop(Path(path).resolve(), None)
        return found if found is not None else \
            read_checkpoint(Path(path), trust=weights_only is False, key="checkpoint", mmap=False)
