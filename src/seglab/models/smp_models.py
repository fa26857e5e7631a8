"""Architectures and encoders from segmentation-models-pytorch, adapted to the seglab interface."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor, nn

from seglab.core.errors import ConfigError
from seglab.models.backbones import describe, smp_name, timm_name
from seglab.models.base import SegmentationNet
from seglab.models.weights import fetch

# PAN's pooling pyramid halves its stride-16 map three times: smaller inputs are padded to this
MIN_SIZE = {"pan": 128}
ARCHITECTURES = {
    "unet": smp.Unet, "unetplusplus": smp.UnetPlusPlus, "fpn": smp.FPN, "pspnet": smp.PSPNet,
    "deeplabv3": smp.DeepLabV3, "deeplabv3plus": smp.DeepLabV3Plus, "segformer": smp.Segformer,
    "manet": smp.MAnet, "linknet": smp.Linknet, "pan": smp.PAN, "upernet": smp.UPerNet,
    "dpt": smp.DPT,
}
HUB_HINT = ("set encoder.weights=null to train from scratch, or download the weights once on a "
            "machine with internet so they land in the Hugging Face cache (HF_HOME)")


def encoder_arguments(encoder: str, encoder_weights: str | None) -> dict:
    """smp's arguments for `encoder` with `encoder_weights`: a timm backbone takes True for its
    pretrained weights (the variant is a tag in its name) and, where timm offers it, any input
    size (`dynamic_img_size`: windowed and patch transformers are built for one otherwise)."""
    if timm_name(encoder) is None:
        return {"encoder_weights": encoder_weights}
    if encoder_weights not in (None, "imagenet"):
        raise ConfigError(f"encoder.weights = {encoder_weights!r}: a timm backbone takes "
                          "imagenet (timm's default pretrained weights) or null; for another "
                          "variant put its tag in the name, e.g. "
                          "encoder.name=convnext_tiny.fb_in22k")
    dynamic = {"dynamic_img_size": True} if describe(encoder).dynamic_size else {}
    return {"encoder_weights": True if encoder_weights else None, **dynamic}


def smp_encoder(encoder: str, encoder_weights: str | None, depth: int = 5) -> nn.Module:
    """A bare smp encoder; calling it gives `depth + 1` feature maps, strides 1 to 2**depth."""
    arguments = encoder_arguments(encoder, encoder_weights)
    weights = arguments.pop("encoder_weights")
    return fetch(f"{encoder_weights!r} weights for encoder {encoder!r}",
                 lambda: get_encoder(smp_name(encoder), in_channels=3, depth=depth,
                                     weights=weights, **arguments), HUB_HINT)


class SmpNet(SegmentationNet):
    """An smp model: its encoder is the smp encoder, its head the decoder and classifier.
    Inputs are padded to a multiple of the backbone's deepest stride and patch size."""

    def __init__(self, model: smp.base.SegmentationModel, pad_multiple: int = 32,
                 min_size: int = 0) -> None:
        super().__init__()
        self.model = model
        self.output_stride = pad_multiple
        self.min_size = min_size

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    def forward_padded(self, images: Tensor) -> Tensor:
        return self.model(images)


def build_smp(name: str, encoder: str, num_classes: int,
              encoder_weights: str | None = None, **options) -> SmpNet:
    """smp architecture `name` on `encoder`; `encoder_weights` as smp names them. Other
    `options` are the architecture's (`encoder_depth`, `decoder_channels`, ...)."""
    arguments = encoder_arguments(encoder, encoder_weights)
    model = fetch(f"{encoder_weights!r} weights for encoder {encoder!r}",
                  lambda: ARCHITECTURES[name](encoder_name=smp_name(encoder),
                                              classes=num_classes, **arguments, **options),
                  HUB_HINT)
    if name != "dpt" and options.get("encoder_depth", 5) < 5:  # DPT's: blocks read, not stages
        drop_unused_stages(model.encoder)
    return SmpNet(model, describe(encoder).pad_multiple, MIN_SIZE.get(name, 0))


@torch.no_grad()
def drop_unused_stages(encoder: nn.Module) -> None:
    """smp keeps every stage of an encoder built with `encoder_depth` < 5, although its forward
    stops earlier: remove the stages (direct children) a forward pass never reaches, so that
    parameter counts, checkpoints and DDP (which refuses parameters that never get a gradient)
    see only the network that runs. Encoders that keep all stages in one indexed container
    (MobileNet, VGG, EfficientNet) keep it whole."""
    called: set[int] = set()

    def watch(module: nn.Module):
        return module.register_forward_hook(lambda *_: called.add(id(module)))

    hooks = [watch(module) for module in encoder.modules()]
    was_training = encoder.training
    encoder.eval()  # no batch-norm statistics from the probe
    encoder(torch.zeros(1, 3, 64, 64))
    encoder.train(was_training)
    for hook in hooks:
        hook.remove()
    for name, child in list(encoder.named_children()):
        if not any(id(module) in called for module in child.modules()):
            delattr(encoder, name)
