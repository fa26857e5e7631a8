"""The mistakes an entry point finds in its command line alone, before Hydra starts: one line
and exit 2, without importing torch."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from seglab.runs.config import unknown_choice
from seglab.runs.wandb_setup import api_key_override

# Command-line keys that name where a run writes (literally, before any ${...} in the value).
OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.log_dir", "output")


def unwritable_output(arguments: list[str]) -> str | None:
    """The first output folder on the command line (else the default, paths.log_dir) that
    cannot be created or written (a file in the way, a read-only mount), in one line; else
    None."""
    named = [argument.partition("=")[::2] for argument in arguments
             if argument.partition("=")[0] in OUTPUT_KEYS]
    for key, value in named or [("paths.log_dir", os.environ.get("SEGLAB_LOG_DIR", "outputs"))]:
        folder = value.strip("'\"").split("${", 1)[0]
        if not folder:
            continue
        existing = Path(folder).absolute()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{key}: cannot create {folder}: {existing} is a file, not a folder"
        problem = _cannot_create_in(existing)
        if problem is not None:
            return f"{key}: cannot create {folder}: {existing} does not take new folders " \
                   f"({problem}); choose a writable folder"
    return None


def _cannot_create_in(folder: Path) -> str | None:
    """Why no folder can be made in `folder`, found by making (and removing) one: permission
    bits do not tell (root passes them; /proc, read-only and full file systems refuse)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".seglab-write-check-", dir=folder))
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


def exit_on_command_line_error() -> None:
    """Before Hydra starts: a mistyped config choice, an output folder that cannot be
    written, or an API key on the command line is one line, exit 2."""
    problem = unknown_choice(sys.argv[1:]) or unwritable_output(sys.argv[1:]) \
        or api_key_override(sys.argv[1:])
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
