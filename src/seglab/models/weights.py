"""Starting weights: downloads that fail clearly offline, files, and a change of class count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)
T = TypeVar("T")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be fetched (usually: no internet)."""


def fetch(what: str, download: Callable[[], T], hint: str) -> T:
    """Run `download`; if it fails for want of a network or file, say what to fetch and where."""
    try:
        return download()
    except OSError as error:
        raise WeightsUnavailable(f"could not fetch {what} ({type(error).__name__}: {error}); "
                                 f"{hint}") from error


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict, or the network weights of a seglab checkpoint."""
    if not path.is_file():
        raise FileNotFoundError(f"model.weights: no file at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = {key.removeprefix("net."): value for key, value in state["state_dict"].items()
                 if key.startswith("net.")}
    if not isinstance(state, dict) or not state:
        raise ValueError(f"model.weights: {path} holds no state dict")
    return state


def load_matching(target: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `target`.

    Tensors whose shape differs (the classifier of a model trained for another number of
    classes) keep their fresh initialisation, and the log says which; entries the target has
    no place for (e.g. a removed auxiliary head) are ignored and logged. A tensor the target
    needs but `state` lacks means the file is for another network: an error.
    """
    own = target.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        raise ValueError(f"{source} does not fit this network: {len(missing)} of its "
                         f"{len(own)} tensors are missing, such as {missing[:3]}")
    reinitialised = [key for key in own if state[key].shape != own[key].shape]
    unexpected = [key for key in state if key not in own]
    target.load_state_dict({key: value for key, value in state.items()
                            if key in own and key not in reinitialised}, strict=False)
    if reinitialised:
        log.warning("%s: re-initialised %s (their shape differs: another number of classes)",
                    source, ", ".join(reinitialised))
    if unexpected:
        log.info("%s: ignored %d tensors this network has no place for (%s...)", source,
                 len(unexpected), ", ".join(unexpected[:3]))
