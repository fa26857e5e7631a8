"""Files that hold the old or the new version, never half of one: write a temporary file in
the same folder, flush and fsync it, then rename it over the target (os.replace).

A run killed mid-write leaves only `.<name>.<pid>.tmp` beside the untouched target; the next
write into that folder deletes such files of processes that no longer run. Lightning ignores
them (they do not end in `.ckpt`). Checkpoints go through `seglab.engine.checkpoint_io`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")


def temp_path(path: Path) -> Path:
    """Where this process writes `path` before renaming it: `.<name>.<pid>.tmp` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        pass
    return True


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary files in `folder` of writers that no longer run (killed mid-write);
    returns them. Outside POSIX nothing is deleted (a pid cannot be checked safely there)."""
    if os.name != "posix" or not folder.is_dir():
        return []
    removed = []
    for candidate in folder.glob(".*.tmp"):
        match = _TEMP_NAME.match(candidate.name)
        if match and int(match[1]) != os.getpid() and not _running(int(match[1])):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); skipped where folders cannot be opened."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content into; it replaces `path` only when the
    block ends without an exception, and is deleted when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    temp = temp_path(path)
    try:
        with open(temp, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomically(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str is written as UTF-8) in one step."""
    with atomic_writer(path) as file:
        file.write(data.encode() if isinstance(data, str) else data)
