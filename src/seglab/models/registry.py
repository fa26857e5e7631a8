"""Which models exist, which encoders each accepts, and how to build them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from seglab.models.base import SegmentationNet
from seglab.models.smp_models import build_smp


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder and the encoders it accepts."""

    build: Callable[..., SegmentationNet]
    encoders: tuple[str, ...]
    source: str


MODELS: dict[str, ModelSpec] = {
    "unet": ModelSpec(build_smp, ("resnet18", "resnet34", "mobilenet_v2"),
                      "segmentation-models-pytorch"),
}


def supported_encoders(name: str) -> tuple[str, ...]:
    """Encoders that model `name` accepts; unknown names raise with the valid choices."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name].encoders


def check_pair(name: str, encoder: str) -> None:
    """Raise ValueError, naming the pair and the valid encoders, if `name` refuses `encoder`."""
    encoders = supported_encoders(name)
    if encoder not in encoders:
        raise ValueError(f"model {name!r} does not support encoder {encoder!r}; "
                         f"valid encoders for {name}: {', '.join(encoders)}")


def build_model(name: str, encoder: str, num_classes: int, encoder_weights: str | None = None,
                weights: str | None = None, **options) -> SegmentationNet:
    """Build `name` on `encoder` for `num_classes` classes.

    `encoder_weights` names pretrained encoder weights as smp spells them ("imagenet") or is
    None for random initialisation; `weights` is a state dict or seglab checkpoint file to load
    into the whole network.
    """
    check_pair(name, encoder)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    try:
        net = MODELS[name].build(name, encoder, num_classes, encoder_weights, **options)
    except OSError as err:
        raise RuntimeError(
            f"could not fetch {encoder_weights!r} weights for encoder {encoder!r} ({err}); "
            "on a machine without internet set encoder.weights=null, or download them once "
            "where there is internet so they land in the hub cache (HF_HOME / TORCH_HOME)"
        ) from err
    if weights is not None:
        load_weights(net, Path(weights))
    return net


def load_weights(net: SegmentationNet, path: Path) -> None:
    """Load a plain state dict or a seglab checkpoint's network weights into `net`."""
    if not path.is_file():
        raise FileNotFoundError(f"model.weights: no file at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = {key.removeprefix("net."): value for key, value in state["state_dict"].items()
                 if key.startswith("net.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"model.weights: {path} does not fit this network "
                         f"({len(missing)} missing keys such as {missing[:2]}, "
                         f"{len(unexpected)} unexpected keys such as {unexpected[:2]})")
