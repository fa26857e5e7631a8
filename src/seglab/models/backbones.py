"""What a backbone reports about itself: feature strides and channels, whether it can dilate,
whether timm can hand out its intermediate blocks, its patch size. The registry decides from
these reports which heads accept which backbones (models/registry.py)."""

from __future__ import annotations

import difflib
import inspect
import warnings
from dataclasses import dataclass
from functools import cache

import segmentation_models_pytorch.encoders as smp_encoders
import timm
import torch

TIMM_PREFIX = "tu-"  # segmentation-models-pytorch's spelling of a timm backbone
# seglab encoder names that smp spells differently (smp has no native MobileNetV3)
SMP_ENCODER_NAMES = {"mobilenet_v3_large": "tu-mobilenetv3_large_100"}


@dataclass(frozen=True)
class Backbone:
    """A backbone's report. `strides`/`channels`: its feature maps as smp's encoder hands them
    to a head (input first; a 0-channel entry is a stride the backbone skips). `hierarchical`:
    smp's encoder accepts its strides (2..32 or 4..32); `dilatable`: it runs at output stride
    8 or 16; `intermediates`: timm's `forward_intermediates` (what DPT reads); `patch`: the
    side an input must be a multiple of besides the strides (1 for CNNs); `dynamic_size`: timm
    can build it for any input size; `fixed_size`: the one (H, W) it runs at otherwise."""

    name: str
    library: str
    strides: tuple[int, ...]
    channels: tuple[int, ...]
    hierarchical: bool
    dilatable: bool
    intermediates: bool
    patch: int = 1
    dynamic_size: bool = False
    fixed_size: tuple[int, int] | None = None

    @property
    def has_stride_two(self) -> bool:
        return len(self.channels) > 1 and self.channels[1] > 0

    @property
    def pad_multiple(self) -> int:
        """Input sides are padded to a multiple of this: the deepest stride (which covers the
        patch embedding), or for a plain transformer twice its patch (DPT halves the grid)."""
        return max(self.strides) if self.hierarchical else 2 * self.patch


def timm_name(encoder: str) -> str | None:
    """The timm model name behind an smp encoder name, or None for smp's own encoders."""
    encoder = SMP_ENCODER_NAMES.get(encoder, encoder)
    return encoder.removeprefix(TIMM_PREFIX) if encoder.startswith(TIMM_PREFIX) else None


def smp_name(encoder: str) -> str:
    return SMP_ENCODER_NAMES.get(encoder, encoder)


def check_timm_name(name: str) -> None:
    """ValueError naming the closest timm models, unless timm has model `name` (an optional
    pretrained tag after a dot, e.g. convnext_tiny.fb_in22k, is allowed)."""
    base, tag = timm.models.split_model_name_tag(name)
    if timm.is_model(base) and (not tag or name in timm.list_pretrained(f"{base}.*")):
        return
    if timm.is_model(base):
        tags = [known.split(".", 1)[1] for known in timm.list_pretrained(f"{base}.*")]
        raise ValueError(f"encoder.name {name!r}: timm has no weights tag {tag!r} for {base}; "
                         f"its tags: {', '.join(tags) or 'none (no pretrained weights)'}")
    close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
    hint = f"closest timm names: {', '.join(close)}" if close else \
        "see timm.list_models() for the names"
    raise ValueError(f"encoder.name {name!r} is not a timm model; {hint}")


@cache
def describe(encoder: str) -> Backbone:
    """The report of smp encoder `encoder` (`tu-<timm name>` for a timm backbone), built on
    the meta device: no weights are allocated or downloaded."""
    name = timm_name(encoder)
    if name is None:
        return _describe_smp(encoder)
    check_timm_name(name)
    return _describe_timm(name)


def _describe_timm(name: str) -> Backbone:
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = timm.create_model(name)
        try:
            features = timm.create_model(name, features_only=True)
            strides = tuple(features.feature_info.reduction())
            channels = tuple(features.feature_info.channels())
        except (RuntimeError, AttributeError, AssertionError, TypeError):
            strides, channels = (), ()  # timm cannot build it as a feature extractor
        try:
            timm.create_model(name, features_only=True, output_stride=8)
            dilatable = True
        except (TypeError, AssertionError, ValueError, RuntimeError, AttributeError):
            dilatable = False
    # smp's universal encoder: strides 4..32 (transformer style) or 2..32 (CNN style)
    transformer_style = strides == (4, 8, 16, 32)
    hierarchical = transformer_style or strides == (2, 4, 8, 16, 32)
    if transformer_style:
        strides, channels = (2, *strides), (0, *channels)
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", 1)
    patch = max(patch) if isinstance(patch, tuple) else int(patch)
    dynamic = "dynamic_img_size" in inspect.signature(type(model)).parameters
    config = model.pretrained_cfg
    fixed = None if dynamic or not config.get("fixed_input_size") else \
        tuple(config["input_size"][-2:])
    return Backbone(f"{TIMM_PREFIX}{name}", "timm", (1, *strides), (3, *channels), hierarchical,
                    dilatable, hasattr(model, "forward_intermediates"), patch, dynamic, fixed)


def _describe_smp(encoder: str) -> Backbone:
    if encoder not in smp_encoders.encoders:
        close = difflib.get_close_matches(encoder, smp_encoders.encoders, n=5, cutoff=0.6)
        hint = f"closest smp encoders: {', '.join(close)}; " if close else ""
        raise ValueError(f"unknown encoder {encoder!r}; {hint}for a timm backbone use "
                         "encoder=timm encoder.name=<timm model name>")
    params = smp_encoders.encoders[encoder]["params"]
    channels = tuple(params["out_channels"])
    dilatable = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _on_meta_if_possible(lambda: smp_encoders.get_encoder(encoder, output_stride=8))
        except ValueError:  # smp: "'VGG' models do not support dilated mode"
            dilatable = False
    strides = tuple(2 ** i for i in range(len(channels)))
    return Backbone(encoder, "smp", strides, channels, True, dilatable, False)


def _on_meta_if_possible(build):
    """`build()` on the meta device (nothing allocated), or on the CPU for an encoder whose
    constructor reads tensor values (smp's MiT)."""
    try:
        with torch.device("meta"):
            return build()
    except RuntimeError:
        return build()
