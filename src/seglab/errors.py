"""User-facing errors: one line naming the key or file, without a traceback."""

from __future__ import annotations

from hydra.errors import InstantiationException
from omegaconf.errors import OmegaConfBaseException

from seglab.data.files import DataError


class ConfigError(ValueError):
    """A config value, file or choice that cannot work, with what was expected."""


USER_ERRORS = (ConfigError, DataError, OmegaConfBaseException, InstantiationException,
               FileNotFoundError)


def one_line(error: BaseException) -> str:
    """A single-line description; Hydra's instantiate errors are unwrapped to their cause."""
    if isinstance(error, InstantiationException):
        lines = str(error).splitlines()
        key = next((line.split(":", 1)[1].strip() for line in lines
                    if line.strip().startswith("full_key:")), None)
        cause = error.__cause__ if error.__cause__ is not None else lines[0]
        where = f"config group '{key}': " if key else ""
        return f"{where}{cause}"
    return " ".join(str(error).split())
