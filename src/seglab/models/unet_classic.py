"""The original U-Net (Ronneberger et al. 2015), with padded convolutions so the output has
the input's size: 23 convolutions, transposed-convolution upsampling, no batch norm."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seglab.models.base import SegmentationNet


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1),
                         nn.ReLU(inplace=True))


class UNetClassic(SegmentationNet):
    """Contracting path of 5 double convolutions (base, 2×base, ... 16×base channels) joined
    by max-pools; expanding path of 2×2 transposed convolutions, skip concatenation and double
    convolutions; a final 1×1 classifier."""

    output_stride = 16

    def __init__(self, num_classes: int, base_channels: int = 64) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(5)]
        self.down = nn.ModuleList([double_conv(3, widths[0])] + [
            double_conv(widths[i - 1], widths[i]) for i in range(1, 5)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2)
                                for i in range(4, 0, -1))
        self.up_convs = nn.ModuleList(double_conv(widths[i], widths[i - 1])
                                      for i in range(4, 0, -1))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def encoder(self) -> nn.Module:
        return self.down

    def forward_padded(self, images: Tensor) -> Tensor:
        skips, x = [], images
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else self.pool(x))
            skips.append(x)
        for up, conv, skip in zip(self.up, self.up_convs, reversed(skips[:-1]), strict=True):
            x = conv(torch.cat([skip, up(x)], dim=1))
        return self.classifier(x)


def build_unet_classic(name: str, encoder: str, num_classes: int,
                       encoder_weights: str | None = None,
                       base_channels: int = 64) -> UNetClassic:
    if encoder_weights is not None:
        raise ValueError("encoder.weights: unet_classic has no pretrained encoder; set null")
    return UNetClassic(num_classes, base_channels)
