"""Model size figures for metrics.json: parameter count and GFLOPs at a given input size."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(net: nn.Module) -> int:
    """Total number of parameters, trainable or not."""
    return sum(p.numel() for p in net.parameters())


def count_gflops(net: nn.Module, height: int, width: int) -> float:
    """GFLOPs of one forward pass on a [1, 3, H, W] input (a multiply-add counts as 2 FLOPs)."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, height, width, device=device))
    net.train(was_training)
    return counter.get_total_flops() / 1e9
