"""Metrics under DDP (two CPU processes, gloo) equal the single-process metrics."""

import pytest
import torch.multiprocessing
from lightning import Trainer

from conftest import TINY, compose_config
from seglab.builders import build_datamodule, build_module

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
    single = _validate(module, datamodule, devices=1)
    distributed = _validate(module, datamodule, devices=2)
    for key in ("val/mIoU", "val/pixel_acc", "val/dice", "val/loss", "val/iou_disc"):
        assert distributed[key] == pytest.approx(single[key], abs=1e-5), key
