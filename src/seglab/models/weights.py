"""Starting weights: downloads that fail clearly offline, files, and a change of class count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from seglab.core.checkpoints import read_checkpoint
from seglab.core.errors import ConfigError

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


def read_weights_file(path: Path, trust: bool = False,
                      key: str = "model.weights") -> dict[str, torch.Tensor]:
    """A plain state dict, or the network weights of a seglab checkpoint; a ConfigError naming
    `key` and the file when it is missing, unreadable or holds no weights."""
    return network_weights(read_checkpoint(path, trust, key), path, key)


def network_weights(contents: object, path: Path, key: str) -> dict[str, torch.Tensor]:
    """The network weights in what `path` held (read already): a plain state dict, or a seglab
    checkpoint's `net.` tensors; a ConfigError naming `key` and the file when there are none."""
    state = contents
    if isinstance(state, dict) and "state_dict" in state:
        state = {name.removeprefix("net."): value for name, value in state["state_dict"].items()
                 if name.startswith("net.")}
    if not isinstance(state, dict) or not state or not all(
            isinstance(value, torch.Tensor) for value in state.values()):
        raise ConfigError(f"{key}: {path} holds no state dict (a mapping of tensor names to "
                          "tensors) and no seglab checkpoint")
    return state


def check_fits(target: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """A ConfigError starting with `what` unless `state` holds exactly `target`'s tensors at
    their shapes: the first missing, unexpected and differently shaped tensor are named."""
    own = target.state_dict()
    missing = [name for name in own if name not in state]
    unexpected = [name for name in state if name not in own]
    reshaped = [name for name in own if name in state and state[name].shape != own[name].shape]
    if not (missing or unexpected or reshaped):
        return
    found = []
    if missing:
        found.append(f"{len(missing)} tensors missing (such as {missing[0]})")
    if unexpected:
        found.append(f"{len(unexpected)} unexpected (such as {unexpected[0]})")
    if reshaped:
        name = reshaped[0]
        found.append(f"{len(reshaped)} of another shape (such as {name}: "
                     f"{list(state[name].shape)} saved, {list(own[name].shape)} expected)")
    raise ConfigError(f"{what}: {', '.join(found)}")


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
        raise ConfigError(f"{source} does not fit this network: {len(missing)} of its "
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
