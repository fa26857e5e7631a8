"""Speed switches of a network that leave its results unchanged: the channels-last memory
layout (`model.channels_last`) and torch.compile (`model.compile`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor
from torch._dynamo.exc import TorchDynamoException
from torch._inductor.exc import CppCompileError, InvalidCxxCompiler

from seglab.models.base import SegmentationNet

log = logging.getLogger(__name__)
# what torch.compile raises where its backend cannot run (no C++ compiler for inductor on a
# CPU, Triton missing or a GPU too old for it, an operator it cannot lower)
COMPILE_FAILURES = (TorchDynamoException, CppCompileError, InvalidCxxCompiler)


def use_channels_last(net: SegmentationNet) -> None:
    """Store the weights channels-last (NHWC) and feed the network NHWC inputs: oneDNN and
    cuDNN run convolutions faster in that layout, bf16/fp16 tensor cores especially."""
    net.to(memory_format=torch.channels_last)
    net.channels_last = True


class CompiledForward:
    """`forward_padded` run through torch.compile; the first compile failure (an unsupported
    backend) is reported in one line and the network runs uncompiled from then on."""

    def __init__(self, eager: Callable[[Tensor], Tensor]) -> None:
        self.eager = eager
        self.compiled: Callable[[Tensor], Tensor] | None = torch.compile(eager)

    def __call__(self, images: Tensor) -> Tensor:
        if self.compiled is None:
            return self.eager(images)
        try:
            return self.compiled(images)
        except COMPILE_FAILURES as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else \
                type(error).__name__
            log.warning("model.compile: torch.compile cannot run here (%s: %s); the network "
                        "runs uncompiled", type(error).__name__, reason[:200])
            self.compiled = None
            return self.eager(images)


def compile_network(net: SegmentationNet) -> None:
    """Compile the network's forward in place (not the LightningModule around it): parameter
    names, checkpoints and the model interface stay as they are."""
    net.forward_padded = CompiledForward(net.forward_padded)
