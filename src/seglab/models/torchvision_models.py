"""torchvision's segmentation models (FCN, DeepLabV3, LR-ASPP), so their weights load as
published: ImageNet backbones and the COCO subset with the 20 VOC classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, ResNet101_Weights
from torchvision.models import segmentation as tvseg
from torchvision.models._api import WeightsEnum

from seglab.models.base import SegmentationNet
from seglab.models.weights import fetch

HUB_HINT = ("download it once on a machine with internet, or put the file named in its URL "
            "into $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)")


@dataclass(frozen=True)
class TorchvisionVariant:
    builder: object
    weights: type[WeightsEnum]
    backbone_weights: type[WeightsEnum]
    has_aux: bool = True


VARIANTS = {
    ("fcn", "resnet50"): TorchvisionVariant(tvseg.fcn_resnet50, tvseg.FCN_ResNet50_Weights,
                                            ResNet50_Weights),
    ("fcn", "resnet101"): TorchvisionVariant(tvseg.fcn_resnet101, tvseg.FCN_ResNet101_Weights,
                                             ResNet101_Weights),
    ("deeplabv3", "resnet50"): TorchvisionVariant(
        tvseg.deeplabv3_resnet50, tvseg.DeepLabV3_ResNet50_Weights, ResNet50_Weights),
    ("deeplabv3", "resnet101"): TorchvisionVariant(
        tvseg.deeplabv3_resnet101, tvseg.DeepLabV3_ResNet101_Weights, ResNet101_Weights),
    ("deeplabv3", "mobilenet_v3_large"): TorchvisionVariant(
        tvseg.deeplabv3_mobilenet_v3_large, tvseg.DeepLabV3_MobileNet_V3_Large_Weights,
        MobileNet_V3_Large_Weights),
    ("lraspp", "mobilenet_v3_large"): TorchvisionVariant(
        tvseg.lraspp_mobilenet_v3_large, tvseg.LRASPP_MobileNet_V3_Large_Weights,
        MobileNet_V3_Large_Weights, has_aux=False),
}


class TorchvisionNet(SegmentationNet):
    """A torchvision model behind the seglab interface.

    torchvision returns `OrderedDict(out=..., aux=...)`; this returns `out` and, in training,
    keeps `aux` for `auxiliary_loss`, weighted by `aux_weight`. torchvision resizes its
    logits to the input size itself, so no padding is needed (`output_stride = 1`).
    """

    output_stride = 1

    def __init__(self, model: nn.Module, weights_enum: type[WeightsEnum],
                 aux_weight: float | None) -> None:
        super().__init__()
        self.model = model
        self.weights_enum = weights_enum
        self.aux_weight = aux_weight
        self._aux_logits: Tensor | None = None

    @property
    def encoder(self) -> nn.Module:
        return self.model.backbone

    @property
    def weights_root(self) -> nn.Module:
        return self.model

    def forward_padded(self, images: Tensor) -> Tensor:
        aux_head = getattr(self.model, "aux_classifier", None)
        if aux_head is None:
            self._aux_logits = None
            return self.model(images)["out"]
        # torchvision runs the auxiliary head on every call; here it runs in training only
        features = self.model.backbone(images)
        size = images.shape[-2:]
        logits = F.interpolate(self.model.classifier(features["out"]), size=size,
                               mode="bilinear", align_corners=False)
        self._aux_logits = F.interpolate(aux_head(features["aux"]), size=size, mode="bilinear",
                                         align_corners=False) if self.training else None
        return logits

    def auxiliary_loss(self, loss_fn: nn.Module, target: Tensor) -> Tensor | None:
        if self._aux_logits is None or not self.aux_weight:
            return None
        return self.aux_weight * loss_fn(self._aux_logits, target)


DEFAULT_AUX_WEIGHT = 0.5


def build_torchvision(name: str, encoder: str, num_classes: int,
                      encoder_weights: str | None = None,
                      aux_loss: float | bool | None = None) -> TorchvisionNet:
    """torchvision's `name` on `encoder`. `aux_loss` is the auxiliary head's loss weight (true
    means 0.5); None or false builds the model without that head."""
    variant = VARIANTS[(name, encoder)]
    if aux_loss is True:
        aux_loss = DEFAULT_AUX_WEIGHT
    if aux_loss is False or aux_loss == 0:
        aux_loss = None
    if aux_loss is not None and not variant.has_aux:
        raise ValueError(f"model.aux_loss: {name} on {encoder} has no auxiliary head; set null")
    backbone = None
    if encoder_weights is not None:
        if encoder_weights != "imagenet":
            raise ValueError(f"encoder.weights: {encoder_weights!r} is not available for "
                             f"{encoder} in torchvision; use imagenet or null")
        backbone = variant.backbone_weights.DEFAULT
    options = {"aux_loss": aux_loss is not None} if variant.has_aux else {}
    model = fetch(f"ImageNet weights {backbone} for {encoder}",
                  lambda: variant.builder(weights=None, weights_backbone=backbone,
                                          num_classes=num_classes, **options), HUB_HINT)
    return TorchvisionNet(model, variant.weights, aux_loss)
