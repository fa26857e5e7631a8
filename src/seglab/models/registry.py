"""Which models exist, which encoders each accepts, and how to build them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seglab.models.backbones import Backbone, describe
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
# timm backbones with a config file in conf/encoder (any other: encoder=timm encoder.name=...)
TIMM_BACKBONES = ("convnext_tiny", "efficientnet_b3", "regnety_016", "resnest50d",
                  "swin_tiny_patch4_window7_224", "vit_small_patch16_224")
KNOWN_ENCODERS = (*ENCODERS, *(f"tu-{name}" for name in TIMM_BACKBONES))

# What a head may need from its backbone: the test on the backbone's report, and its wording.
NEEDS = {
    "hierarchy": (lambda b: b.hierarchical,
                  "feature maps at strides 2 or 4 up to 32 (a CNN or a hierarchical transformer)"),
    "dilation": (lambda b: b.dilatable, "a backbone that can dilate to output stride 8 or 16"),
    "stride_two": (lambda b: b.has_stride_two, "features at stride 2 (transformers start at 4)"),
    "intermediates": (lambda b: b.library == "timm" and b.intermediates,
                      "a timm backbone (encoder=timm) that hands out its intermediate blocks"),
}


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
    """A registered architecture: its builder, where it comes from, and either what it needs
    from a backbone (keys of NEEDS: it accepts every backbone whose report meets them) or, for
    an architecture built around given backbones, the exact `only` encoders it accepts."""

    build: Callable[..., SegmentationNet]
    source: str
    needs: tuple[str, ...] = ("hierarchy",)
    only: tuple[str, ...] = ()

    def refusal(self, backbone: Backbone) -> str | None:
        """Why this architecture cannot run on `backbone` (what it needs), or None."""
        if backbone.fixed_size is not None:
            height, width = backbone.fixed_size
            return (f"it needs a backbone that takes any input size, and timm builds "
                    f"{backbone.name.removeprefix('tu-')} for {height}×{width} only")
        unmet = [NEEDS[need][1] for need in self.needs if not NEEDS[need][0](backbone)]
        return f"it needs {' and '.join(unmet)}" if unmet else None


MODELS: dict[str, ModelSpec] = {
    "unet": ModelSpec(build_smp, "smp"),
    "unet_classic": ModelSpec(build_unet_classic, "seglab", (), only=("none",)),
    "unetplusplus": ModelSpec(build_smp, "smp", ("hierarchy", "stride_two")),
    "fpn": ModelSpec(build_smp, "smp"),
    "fcn": ModelSpec(_torchvision_or(build_fcn),
                     "torchvision on resnet50/101, else seglab head on smp encoder"),
    "fcn8s": ModelSpec(build_fcn8s, "seglab", (), only=("vgg16",)),
    "deeplabv3": ModelSpec(_torchvision_or(build_smp),
                           "torchvision on resnet50/101 and mobilenet_v3_large, else smp",
                           ("hierarchy", "dilation")),
    "deeplabv3plus": ModelSpec(build_smp, "smp", ("hierarchy", "dilation")),
    "pspnet": ModelSpec(build_smp, "smp"),
    "segnet": ModelSpec(build_segnet,
                        "seglab (VGG16-BN with pooling indices; SegNet-style decoder on others)"),
    "segformer": ModelSpec(build_smp, "smp"),
    "lraspp": ModelSpec(_torchvision_or(build_smp), "torchvision", (),
                        only=("mobilenet_v3_large",)),
    "manet": ModelSpec(build_smp, "smp"),
    "linknet": ModelSpec(build_smp, "smp", ("hierarchy", "stride_two")),
    "pan": ModelSpec(build_smp, "smp", ("hierarchy", "dilation")),
    "upernet": ModelSpec(build_smp, "smp"),
    "dpt": ModelSpec(build_smp, "smp (timm backbones)", ("intermediates",)),
}


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def refusal(name: str, encoder: str) -> str | None:
    """Why model `name` cannot run on `encoder`, or None when it can; a ValueError for an
    unknown model or backbone (an unknown timm name lists the closest ones)."""
    spec = _spec(name)
    if spec.only == ("none",):
        return None if encoder == "none" else "it takes no encoder (encoder=none)"
    if spec.only:
        return None if encoder in spec.only else f"it is built on {', '.join(spec.only)} only"
    if encoder == "none":
        return "it needs an encoder"
    return spec.refusal(describe(encoder))


def supported_encoders(name: str) -> tuple[str, ...]:
    """The known encoders (seglab's and the timm ones with a config file) that model `name`
    accepts; any other timm backbone whose report meets its needs is accepted too."""
    spec = _spec(name)
    return spec.only or tuple(encoder for encoder in KNOWN_ENCODERS
                              if refusal(name, encoder) is None)


def check_pair(name: str, encoder: str) -> None:
    """Raise ValueError naming the pair, why it cannot work and what would, if `name` refuses
    `encoder` (timm backbones named as the user types them, without smp's `tu-`)."""
    reason = refusal(name, encoder)
    if reason is None:
        return
    shown = encoder.removeprefix("tu-")
    other_heads = [model for model in MODELS if model != name and encoder != "none"
                   and not MODELS[model].only and refusal(model, encoder) is None]
    heads = f"; models that take {shown}: {', '.join(other_heads)}" if other_heads else ""
    working = ", ".join(known.removeprefix("tu-") for known in supported_encoders(name))
    raise ValueError(f"model {name!r} does not support encoder {shown!r}: {reason}; "
                     f"encoders that work: {working}{heads}")


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
    """The model × encoder table of the README, in Markdown, from the backbones' reports."""
    encoders = [*KNOWN_ENCODERS, "none"]
    lines = ["| model | " + " | ".join(f"`{e.removeprefix('tu-')}`" for e in encoders)
             + " | source |", "|---" * (len(encoders) + 2) + "|"]
    for name, spec in MODELS.items():
        cells = ["✓" if refusal(name, encoder) is None else "" for encoder in encoders]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {spec.source} |")
    return "\n".join(lines)
