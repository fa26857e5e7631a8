"""Architectures and encoders from segmentation-models-pytorch, adapted to the seglab interface."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor, nn

from seglab.models.base import SegmentationNet
from seglab.models.weights import fetch

ARCHITECTURES = {
    "unet": smp.Unet, "unetplusplus": smp.UnetPlusPlus, "fpn": smp.FPN, "pspnet": smp.PSPNet,
    "deeplabv3": smp.DeepLabV3, "deeplabv3plus": smp.DeepLabV3Plus, "segformer": smp.Segformer,
}
# seglab encoder names that smp spells differently (smp has no native MobileNetV3).
SMP_ENCODER_NAMES = {"mobilenet_v3_large": "tu-mobilenetv3_large_100"}
HUB_HINT = ("set encoder.weights=null to train from scratch, or download the weights once on a "
            "machine with internet so they land in the Hugging Face cache (HF_HOME)")


def smp_name(encoder: str) -> str:
    return SMP_ENCODER_NAMES.get(encoder, encoder)


def smp_encoder(encoder: str, encoder_weights: str | None, depth: int = 5) -> nn.Module:
    """A bare smp encoder; calling it gives `depth + 1` feature maps, strides 1 to 2**depth."""
    return fetch(f"{encoder_weights!r} weights for encoder {encoder!r}",
                 lambda: get_encoder(smp_name(encoder), in_channels=3, depth=depth,
                                     weights=encoder_weights), HUB_HINT)


class SmpNet(SegmentationNet):
    """An smp model: its encoder is the smp encoder, its head the decoder and classifier.
    Inputs are padded to multiples of 32, which every smp encoder accepts."""

    def __init__(self, model: smp.base.SegmentationModel) -> None:
        super().__init__()
        self.model = model

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    def forward_padded(self, images: Tensor) -> Tensor:
        return self.model(images)


def build_smp(name: str, encoder: str, num_classes: int,
              encoder_weights: str | None = None, **options) -> SmpNet:
    """smp architecture `name` on `encoder`; `encoder_weights` as smp names them. Other
    `options` are the architecture's (`encoder_depth`, `decoder_channels`, ...)."""
    model = fetch(f"{encoder_weights!r} weights for encoder {encoder!r}",
                  lambda: ARCHITECTURES[name](encoder_name=smp_name(encoder),
                                              encoder_weights=encoder_weights,
                                              classes=num_classes, **options), HUB_HINT)
    if options.get("encoder_depth", 5) < 5:
        drop_unused_stages(model.encoder)
    return SmpNet(model)


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
