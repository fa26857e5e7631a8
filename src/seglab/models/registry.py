"""Which models exist, which encoders each accepts, and how to build them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seglab.models.base import SegmentationNet
from seglab.models.fcn import build_fcn, build_fcn8s
from seglab.models.segnet import build_segnet
from seglab.models.smp_models import build_smp
from seglab.models.speed import compile_network, use_channels_last
from seglab.models.torchvision_models import HUB_HINT, VARIANTS, build_torchvision
from seglab.models.unet_classic import build_unet_classic
from seglab.models.weights import fetch, load_matching, read_weights_file

ENCODERS = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2",
            "mobilenet_v3_large", "vgg16", "vgg16_bn", "efficientnet-b0", "mit_b0")
NOT_DILATABLE = ("vgg16", "vgg16_bn")  # max-pooling VGGs cannot run at output stride 8


def _except(*excluded: str) -> tuple[str, ...]:
    return tuple(name for name in ENCODERS if name not in excluded)


def _torchvision_or(fallback: Callable[..., SegmentationNet]) -> Callable[..., SegmentationNet]:
    """torchvision's model for the (name, encoder) pairs it publishes, else `fallback`.
    `aux_loss` applies to torchvision's models only; the fallback's own options to it only."""
    def build(name: str, encoder: str, num_classes: int, encoder_weights: str | None = None,
              aux_loss: float | None = None, **options) -> SegmentationNet:
        if (name, encoder) in VARIANTS:
            return build_torchvision(name, encoder, num_classes, encoder_weights, aux_loss)
        return fallback(name, encoder, num_classes, encoder_weights, **options)
    return build


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder, the encoders it accepts, where it comes from."""

    build: Callable[..., SegmentationNet]
    encoders: tuple[str, ...]
    source: str


MODELS: dict[str, ModelSpec] = {
    "unet": ModelSpec(build_smp, ENCODERS, "smp"),
    "unet_classic": ModelSpec(build_unet_classic, ("none",), "seglab"),
    "unetplusplus": ModelSpec(build_smp, _except("mit_b0"), "smp"),
    "fpn": ModelSpec(build_smp, ENCODERS, "smp"),
    "fcn": ModelSpec(_torchvision_or(build_fcn), ENCODERS,
                     "torchvision on resnet50/101, else seglab head on smp encoder"),
    "fcn8s": ModelSpec(build_fcn8s, ("vgg16",), "seglab"),
    "deeplabv3": ModelSpec(_torchvision_or(build_smp), _except(*NOT_DILATABLE),
                           "torchvision on resnet50/101 and mobilenet_v3_large, else smp"),
    "deeplabv3plus": ModelSpec(build_smp, _except(*NOT_DILATABLE), "smp"),
    "pspnet": ModelSpec(build_smp, ENCODERS, "smp"),
    "segnet": ModelSpec(build_segnet, ENCODERS,
                        "seglab (VGG16-BN with pooling indices; SegNet-style decoder on others)"),
    "segformer": ModelSpec(build_smp, ENCODERS, "smp"),
    "lraspp": ModelSpec(_torchvision_or(build_smp), ("mobilenet_v3_large",), "torchvision"),
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
                weights: str | None = None, freeze_encoder: bool = False,
                trust_weights: bool = False, channels_last: bool = False,
                compile: bool = False, **options) -> SegmentationNet:
    """Build `name` on `encoder` for `num_classes` classes.

    `encoder_weights`: pretrained encoder weights ("imagenet") or None for random init.
    `weights`: a torchvision weights name the model publishes (e.g. COCO_WITH_VOC_LABELS_V1)
    or a state dict / seglab checkpoint file; a classifier for another number of classes is
    re-initialised (a file is read as tensors only, unless `trust_weights`: the run's
    trust_checkpoint). `freeze_encoder` stops the encoder from training. `channels_last` and
    `compile` are the speed switches of models/speed.py. Other `options` go to the
    architecture (e.g. `aux_loss`, `variant`, `base_channels`, `decoder_channels`).
    """
    check_pair(name, encoder)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    net = MODELS[name].build(name, encoder, num_classes, encoder_weights, **options)
    if weights is not None:
        load_weights(net, str(weights), trust_weights)
    if freeze_encoder:
        net.freeze_encoder()
    if channels_last:
        use_channels_last(net)
    if compile:
        compile_network(net)
    return net


def load_weights(net: SegmentationNet, weights: str, trust: bool = False) -> None:
    """Load a published weights name of the network's torchvision enum, or a file."""
    published = list(net.weights_enum.__members__) if net.weights_enum is not None else []
    if weights in published:
        entry = net.weights_enum[weights]
        state = fetch(f"{entry} from {entry.url}",
                      lambda: entry.get_state_dict(progress=True, check_hash=True), HUB_HINT)
        load_matching(net.weights_root, state, str(entry))
        return
    path = Path(weights).expanduser()
    if not path.exists():
        names = f"one of {', '.join(published)} or " if published else ""
        raise FileNotFoundError(f"model.weights: {weights!r} is neither {names}an existing "
                                "file (a state dict or a seglab checkpoint)")
    load_matching(net, read_weights_file(path, trust, key="model.weights"), str(path))


def support_matrix() -> str:
    """The model × encoder table of the README, in Markdown."""
    encoders = [*ENCODERS, "none"]
    lines = ["| model | " + " | ".join(f"`{e}`" for e in encoders) + " | source |",
             "|---" * (len(encoders) + 2) + "|"]
    for name, spec in MODELS.items():
        cells = ["✓" if encoder in spec.encoders else "" for encoder in encoders]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {spec.source} |")
    return "\n".join(lines)
