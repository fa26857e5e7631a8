"""Fully convolutional networks (Long et al. 2015): an FCN head with skip fusion on any smp
encoder, and the original FCN-8s on VGG16 with learned upsampling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VGG16_Weights, vgg16

from seglab.models.base import SegmentationNet
from seglab.models.smp_models import smp_encoder
from seglab.models.torchvision_models import HUB_HINT
from seglab.models.weights import fetch

SKIPS = {"32s": 0, "16s": 1, "8s": 2}


class SkipFCN(SegmentationNet):
    """FCN-32s/16s/8s on an smp encoder: class scores at stride 32, upsampled by 2 and summed
    with 1×1 scores of the stride-16 (and stride-8) features, then resized to the input."""

    def __init__(self, encoder: nn.Module, num_classes: int, variant: str = "8s") -> None:
        super().__init__()
        if variant not in SKIPS:
            raise ValueError(f"model.variant must be one of {sorted(SKIPS)}, got {variant!r}")
        self.backbone = encoder
        channels = encoder.out_channels
        inner = max(channels[-1] // 4, num_classes)
        self.score32 = nn.Sequential(
            nn.Conv2d(channels[-1], inner, 3, padding=1, bias=False), nn.BatchNorm2d(inner),
            nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Conv2d(inner, num_classes, 1))
        self.skip_scores = nn.ModuleList(
            nn.Conv2d(channels[-2 - i], num_classes, 1) for i in range(SKIPS[variant]))

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def forward_padded(self, images: Tensor) -> Tensor:
        features = self.backbone(images)
        scores = self.score32(features[-1])
        for i, skip in enumerate(self.skip_scores):
            skip_scores = skip(features[-2 - i])
            scores = F.interpolate(scores, size=skip_scores.shape[-2:], mode="bilinear",
                                   align_corners=False) + skip_scores
        return F.interpolate(scores, size=images.shape[-2:], mode="bilinear",
                             align_corners=False)


def build_fcn(name: str, encoder: str, num_classes: int, encoder_weights: str | None = None,
              variant: str = "8s") -> SkipFCN:
    return SkipFCN(smp_encoder(encoder, encoder_weights), num_classes, variant)


def bilinear_kernel(channels: int, size: int) -> Tensor:
    """Weights that make a transposed convolution upsample each channel bilinearly."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = np.ogrid[:size, :size]
    kernel = (1 - abs(grid[0] - centre) / factor) * (1 - abs(grid[1] - centre) / factor)
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = torch.from_numpy(kernel).float()
    return weight


class FCN8s(SegmentationNet):
    """FCN-8s: VGG16 with fc6/fc7 as 7×7 and 1×1 convolutions, class scores fused with pool4
    and pool3 scores, learned (bilinear-initialised) transposed-convolution upsampling."""

    POOL3, POOL4 = 17, 24  # end indices of VGG16 `features` after pool3 and pool4

    def __init__(self, num_classes: int, encoder_weights: str | None = None) -> None:
        super().__init__()
        weights = VGG16_Weights.IMAGENET1K_V1 if encoder_weights == "imagenet" else None
        if encoder_weights not in (None, "imagenet"):
            raise ValueError(f"encoder.weights for fcn8s must be imagenet or null, "
                             f"got {encoder_weights!r}")
        vgg = fetch(f"ImageNet weights {weights} for vgg16", lambda: vgg16(weights=weights),
                    HUB_HINT)
        fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        fc7 = nn.Conv2d(4096, 4096, 1)
        if weights is not None:  # the paper's initialisation: VGG's classifier as convolutions
            fc6.weight.data.copy_(vgg.classifier[0].weight.data.view(4096, 512, 7, 7))
            fc6.bias.data.copy_(vgg.classifier[0].bias.data)
            fc7.weight.data.copy_(vgg.classifier[3].weight.data.view(4096, 4096, 1, 1))
            fc7.bias.data.copy_(vgg.classifier[3].bias.data)
        self.backbone = nn.ModuleDict({
            "features": vgg.features,
            "fc": nn.Sequential(fc6, nn.ReLU(inplace=True), nn.Dropout2d(),
                                fc7, nn.ReLU(inplace=True), nn.Dropout2d()),
        })
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, 8, 4, bias=False)
        for layer in (self.upscore2, self.upscore_pool4, self.upscore8):
            layer.weight.data.copy_(bilinear_kernel(num_classes, layer.kernel_size[0]))

    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def forward_padded(self, images: Tensor) -> Tensor:
        features = self.backbone["features"]
        pool3 = features[:self.POOL3](images)
        pool4 = features[self.POOL3:self.POOL4](pool3)
        scores = self.score_fr(self.backbone["fc"](features[self.POOL4:](pool4)))
        scores = self.upscore2(scores) + self.score_pool4(pool4)
        scores = self.upscore_pool4(scores) + self.score_pool3(pool3)
        return self.upscore8(scores)


def build_fcn8s(name: str, encoder: str, num_classes: int,
                encoder_weights: str | None = None) -> FCN8s:
    return FCN8s(num_classes, encoder_weights)
