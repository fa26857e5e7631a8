"""Metrics under DDP (two CPU processes, gloo) equal the single-process metrics."""

import pytest
import torch
from lightning import Trainer

from conftest import TINY, compose_config
from seglab.builders import build_datamodule, build_module
from seglab.models import SegmentationNet


class SignNet(SegmentationNet):
    """Predicts class 0 where the red channel is above its mean, else class 1, with logits far
    apart: elementwise, so every process computes exactly the same predictions (a random
    convolutional net has near-ties that thread counts can flip)."""

    output_stride = 1

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Conv2d(1, 1, 1)  # a parameter, so optimizers and DDP have one

    @property
    def encoder(self):
        return self.scale

    def forward_padded(self, images):
        red = images[:, :1]
        return torch.cat([red, -red, 0.5 * red, -0.5 * red], dim=1) * 10

pytestmark = pytest.mark.slow


def _validate(module, datamodule, devices: int) -> dict:
    trainer = Trainer(accelerator="cpu", devices=devices,
                      strategy="ddp_spawn" if devices > 1 else "auto", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    return trainer.validate(module, datamodule=datamodule, verbose=False)[0]


@pytest.fixture
def file_system_sharing():
    """Spawned workers get tensors through files: descriptor passing fails in some sandboxes
    ("unable to resize file")."""
    original = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    yield
    torch.multiprocessing.set_sharing_strategy(original)


@pytest.mark.usefixtures("file_system_sharing")
def test_confusion_matrix_is_summed_over_processes(tmp_path):
    cfg = compose_config("train", tmp_path, TINY)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    module.net = SignNet()
    single = _validate(module, datamodule, devices=1)
    distributed = _validate(module, datamodule, devices=2)
    assert 0 < single["val/mIoU"] < 1
    for key in ("val/mIoU", "val/pixel_acc", "val/dice", "val/loss", "val/iou_background",
                "val/iou_disc"):
        assert distributed[key] == pytest.approx(single[key], abs=1e-6), key
