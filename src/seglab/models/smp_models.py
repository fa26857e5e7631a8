"""Architectures from segmentation-models-pytorch, adapted to the seglab interface."""

from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import Tensor, nn

from seglab.models.base import SegmentationNet

ARCHITECTURES = {"unet": smp.Unet}


class SmpNet(SegmentationNet):
    """An smp model whose encoder is the smp encoder and whose head is decoder + classifier."""

    def __init__(self, model: smp.base.SegmentationModel) -> None:
        super().__init__()
        self.model = model
        self.output_stride = model.encoder.output_stride

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    def forward_padded(self, images: Tensor) -> Tensor:
        return self.model(images)


def build_smp(name: str, encoder: str, num_classes: int,
              encoder_weights: str | None = None, **options) -> SmpNet:
    """Build smp architecture `name` on `encoder`; `encoder_weights` as smp names them."""
    model = ARCHITECTURES[name](encoder_name=encoder, encoder_weights=encoder_weights,
                                classes=num_classes, **options)
    return SmpNet(model)
