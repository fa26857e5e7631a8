"""User-facing errors: one line naming the key or file, without a traceback."""

from __future__ import annotations

import re

from hydra.errors import InstantiationException
from omegaconf.errors import (
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)


class ConfigError(ValueError):
    """A config value, file or choice that cannot work, with what was expected."""


class FolderRefused(ConfigError):
    """The output folder belongs to another run: nothing may be written into it, not even the
    failure record."""


class DataError(ValueError):
    """A file that cannot be used as it is, named with what is wrong with it."""


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
        return " ".join(f"{where}{cause}".split())
    if isinstance(error, MissingMandatoryValue | InterpolationToMissingValueError) \
            and error.full_key:
        # a missing value read through an interpolation names the value, not the reader
        missing = re.search(r"Missing mandatory value: (\S+)", str(error))
        key = missing.group(1) if missing else error.full_key
        return (f"{key}: no value given; expected one on the command line, "
                f"such as {key}=<value>")
    return " ".join(str(error).split())
