"""The one model interface: float [N, 3, H, W] in, logits [N, C, H, W] out, at any H and W."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationNet(nn.Module, ABC):
    """Base of every seglab network.

    Subclasses implement `forward_padded` for inputs whose sides are multiples of
    `output_stride` and say which module is the encoder; this class pads other sizes, crops the
    logits back, splits parameters into the `encoder` and `head` groups, and freezes the
    encoder on request (its batch-norm statistics too).
    """

    output_stride: int = 32
    min_size: int = 0  # inputs smaller than this are padded up to it (PAN's pooling pyramid)
    encoder_frozen: bool = False
    weights_enum = None  # a torchvision WeightsEnum whose names `model.weights` may give
    channels_last: bool = False  # inputs are made channels-last (see models/speed.py)

    @property
    @abstractmethod
    def encoder(self) -> nn.Module:
        """The backbone: its parameters form the `encoder` group."""

    @property
    def weights_root(self) -> nn.Module:
        """The module that published weights (torchvision enums) are loaded into."""
        return self

    @abstractmethod
    def forward_padded(self, images: Tensor) -> Tensor:
        """Logits for images whose sides are multiples of `output_stride`."""

    def auxiliary_loss(self, loss_fn: nn.Module, target: Tensor) -> Tensor | None:
        """Extra training loss from an auxiliary head, for the last forward pass; None if the
        network has none."""
        return None

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters split into `encoder` and `head` (everything that is not the encoder)."""
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        return {
            "encoder": [p for p in self.parameters() if id(p) in encoder_ids],
            "head": [p for p in self.parameters() if id(p) not in encoder_ids],
        }

    def freeze_encoder(self) -> None:
        """Stop training the encoder: no gradients, batch-norm statistics fixed."""
        self.encoder_frozen = True
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def unfreeze_encoder(self) -> None:
        self.encoder_frozen = False
        self.encoder.requires_grad_(True)
        self.encoder.train(self.training)

    def train(self, mode: bool = True) -> SegmentationNet:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        stride = self.output_stride
        pad_h = max(height, self.min_size) - height + (-max(height, self.min_size) % stride)
        pad_w = max(width, self.min_size) - width + (-max(width, self.min_size) % stride)
        # a traced or exported graph keeps this choice for every size: there it always pads
        if pad_h or pad_w or torch.jit.is_tracing() or torch.compiler.is_exporting():
            images = F.pad(images, (0, pad_w, 0, pad_h))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = self.forward_padded(images)
        return logits[..., :height, :width]
