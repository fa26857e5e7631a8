"""The one model interface: float [N, 3, H, W] in, logits [N, C, H, W] out, at any H and W."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationNet(nn.Module):
    """Base of every seglab network.

    Subclasses implement `forward_padded` for inputs whose sides are multiples of
    `output_stride` and say which module is the encoder; this class pads other sizes, crops the
    logits back, and splits parameters into the `encoder` and `head` groups.
    """

    output_stride: int = 32

    @property
    def encoder(self) -> nn.Module:
        raise NotImplementedError

    def forward_padded(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters split into `encoder` and `head` (everything that is not the encoder)."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return {
            "encoder": [p for p in self.parameters() if id(p) in encoder_ids],
            "head": [p for p in self.parameters() if id(p) not in encoder_ids],
        }

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        stride = self.output_stride
        pad_h, pad_w = -height % stride, -width % stride
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        logits = self.forward_padded(images)
        return logits[..., :height, :width]
