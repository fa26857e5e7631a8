"""Reading checkpoint files safely: tensors only unless the user trusts the file, and every
failure one line naming the file and the key that gave it."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from seglab.core.errors import ConfigError

ZIP_START = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
PICKLE_START = b"\x80"  # torch.save's older format: a bare pickle
# what torch's weights-only unpickler says when a file holds more than tensors and containers
REFUSED_BY_WEIGHTS_ONLY = ("GLOBAL ", "allowlisted", "unrecognized function")
NEEDS_TRUST = ("contains pickled objects that can run code; pass trust_checkpoint=true only "
               "for a file you made or trust")


def trusted(cfg: DictConfig) -> bool:
    """`trust_checkpoint` of a command's config: true or false (false when absent)."""
    trust = OmegaConf.select(cfg, "trust_checkpoint", default=False)
    if not isinstance(trust, bool):
        raise ConfigError(f"trust_checkpoint = {trust!r}: expected true or false")
    return trust


def _start_of(path: Path, key: str) -> bytes:
    """The first bytes of `path`, after checking it is a file that is not empty."""
    if not path.exists():
        raise ConfigError(f"{key}: no checkpoint file at {path}")
    if not path.is_file():
        raise ConfigError(f"{key}: {path} is a folder; expected a checkpoint file such as "
                          "<run>/checkpoints/best.ckpt")
    with path.open("rb") as file:
        start = file.read(len(ZIP_START))
    if not start:
        raise ConfigError(f"{key}: {path} is empty; expected a PyTorch checkpoint")
    return start


def read_checkpoint(path: Path, trust: bool = False, key: str = "ckpt_path",
                    mmap: bool = True) -> object:
    """What `torch.load` finds in `path`, on the CPU: tensors, numbers, strings and containers
    only, unless `trust` (trust_checkpoint=true) also unpickles arbitrary objects, which can
    run code. `mmap=False` reads the tensors into memory, for contents that training goes on
    with (an optimizer's state must not stay backed by a file that is replaced later). A
    missing, empty, truncated or foreign file, or one that needs unpickling without `trust`,
    is a ConfigError naming `key` and the file."""
    path = Path(path)
    start = _start_of(path, key)
    if not start.startswith((ZIP_START, PICKLE_START)):
        raise ConfigError(f"{key}: {path} is not a PyTorch checkpoint (not a file written by "
                          "torch.save); pass a .ckpt file such as <run>/checkpoints/best.ckpt")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust,
                          mmap=mmap and start == ZIP_START)
    except pickle.UnpicklingError as error:
        if not trust and any(sign in str(error) for sign in REFUSED_BY_WEIGHTS_ONLY):
            raise ConfigError(f"{key}: {path} {NEEDS_TRUST}") from None
        raise ConfigError(f"{key}: {path} is corrupt: its contents are not a checkpoint's "
                          "tensors and values; copy or write it again") from None
    except Exception as error:  # a damaged file makes torch raise nearly anything
        raise ConfigError(f"{key}: {path} is truncated or corrupt ({_first_sentence(error)}); "
                          "copy or write it again") from None


def _first_sentence(error: BaseException) -> str:
    sentence = str(error).strip().split("\n", 1)[0].split(". ", 1)[0][:160]
    return f"{type(error).__name__}: {sentence}" if sentence else type(error).__name__
