"""Lightning checkpoints written atomically (see `seglab.core.atomic`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH

from seglab.core.atomic import atomic_writer


def _is_local(path: _PATH) -> bool:
    return isinstance(path, os.PathLike) or "://" not in str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpoints, written through `atomic_writer`: a run killed while
    saving best.ckpt or last.ckpt leaves the previous file whole. URLs (s3://, file://, ...)
    keep Lightning's own fsspec save."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_writer(Path(path)) as file:
            torch.save(checkpoint, file)
