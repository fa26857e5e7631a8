"""SegNet (Badrinarayanan et al. 2017): a VGG16-BN encoder whose max-pooling indices drive the
decoder's unpooling; on other encoders, a SegNet-style decoder of upsampling + conv blocks."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VGG16_BN_Weights, vgg16_bn

from seglab.models.base import SegmentationNet
from seglab.models.smp_models import smp_encoder
from seglab.models.torchvision_models import HUB_HINT
from seglab.models.weights import fetch

# (input channels, output channels, convolutions) of each decoder stage, deepest first
DECODER_STAGES = ((512, 512, 3), (512, 256, 3), (256, 128, 3), (128, 64, 2), (64, 64, 2))


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def vgg_stages(features: nn.Sequential) -> nn.ModuleList:
    """VGG `features` cut at each max-pool, the pools returning their indices."""
    stages, current = nn.ModuleList(), []
    for layer in features:
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
        else:
            current.append(layer)
    return stages


class SegNetVGG(SegmentationNet):
    """The original SegNet: 13 VGG16-BN encoder convolutions, 13 mirrored decoder ones."""

    def __init__(self, num_classes: int, encoder_weights: str | None = None) -> None:
        super().__init__()
        if encoder_weights not in (None, "imagenet"):
            raise ValueError(f"encoder.weights for segnet on vgg16_bn must be imagenet or "
                             f"null, got {encoder_weights!r}")
        weights = VGG16_BN_Weights.IMAGENET1K_V1 if encoder_weights else None
        vgg = fetch(f"ImageNet weights {weights} for vgg16_bn", lambda: vgg16_bn(weights=weights),
                    HUB_HINT)
        self.stages = vgg_stages(vgg.features)
        decoder = []
        for index, (in_channels, out_channels, convs) in enumerate(DECODER_STAGES):
            last_stage = index == len(DECODER_STAGES) - 1
            layers = []
            for conv in range(convs):
                final = conv == convs - 1
                if final and last_stage:
                    layers.append(nn.Conv2d(in_channels, num_classes, 3, padding=1))
                else:
                    layers += conv_bn_relu(in_channels, out_channels if final else in_channels)
            decoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(decoder)

    @property
    def encoder(self) -> nn.Module:
        return self.stages

    def forward_padded(self, images: Tensor) -> Tensor:
        pooled = []
        x = images
        for stage in self.stages:
            x = stage(x)
            size = x.shape[-2:]
            x, indices = F.max_pool2d(x, 2, 2, return_indices=True)
            pooled.append((indices, size))
        for stage, (indices, size) in zip(self.decoder, reversed(pooled), strict=True):
            x = stage(F.max_unpool2d(x, indices, 2, 2, output_size=size))
        return x


class SegNetStyle(SegmentationNet):
    """A SegNet-style decoder on an smp encoder: from the deepest features only, five
    ×2 upsamplings each followed by two conv-BN-ReLU blocks, then a classifier."""

    CHANNELS = (256, 128, 64, 32, 16)

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = encoder
        blocks, previous = [], encoder.out_channels[-1]
        for channels in self.CHANNELS:
            blocks.append(nn.Sequential(*conv_bn_relu(previous, channels),
                                        *conv_bn_relu(channels, channels)))
            previous = channels
        self.decoder = nn.ModuleList(blocks)
        self.classifier = nn.Conv2d(previous, num_classes, 3, padding=1)

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def forward_padded(self, images: Tensor) -> Tensor:
        x = self.backbone(images)[-1]
        for block in self.decoder:
            x = block(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.classifier(x)


def build_segnet(name: str, encoder: str, num_classes: int,
                 encoder_weights: str | None = None) -> SegmentationNet:
    if encoder == "vgg16_bn":
        return SegNetVGG(num_classes, encoder_weights)
    return SegNetStyle(smp_encoder(encoder, encoder_weights), num_classes)
