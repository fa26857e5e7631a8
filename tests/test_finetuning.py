"""Transfer-learning controls through a real Trainer: frozen encoder, unfreezing at epoch N,
per-group learning rates."""

import torch
from lightning import Callback, Trainer

from conftest import TINY, compose_config
from seglab.engine.builders import build_callbacks, build_datamodule, build_module, build_trainer

FROZEN = [*TINY, "model=pspnet", "encoder=mobilenet_v2", "model.freeze_encoder=true",
          "optimizer=sgd", "optimizer.lr=0.05", "optimizer.encoder_lr_mult=0.1",
          "scheduler=none", "trainer.max_epochs=3", "trainer.num_sanity_val_steps=0"]


class EncoderSnapshots(Callback):
    """The encoder's state and the optimizer's groups at the end of each training epoch."""

    def __init__(self):
        self.states, self.groups = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.states.append({k: v.clone() for k, v in pl_module.net.encoder.state_dict().items()})
        self.groups.append([(g["name"], g["lr"]) for g in trainer.optimizers[0].param_groups])


def _fit(tmp_path, overrides):
    cfg = compose_config("train", tmp_path, overrides)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    initial = {k: v.clone() for k, v in module.net.encoder.state_dict().items()}
    snapshots = EncoderSnapshots()
    trainer = build_trainer(cfg, [*build_callbacks(cfg), snapshots], [])
    trainer.fit(module, datamodule=datamodule)
    return initial, snapshots


def _same(a, b):
    return all(torch.equal(a[key], b[key]) for key in a)


def test_frozen_encoder_stays_put_for_the_whole_run(tmp_path):
    initial, snapshots = _fit(tmp_path, FROZEN)
    assert all(_same(initial, state) for state in snapshots.states)
    assert snapshots.groups[-1] == [("head", 0.05)]


def test_unfreezing_at_epoch_one_trains_the_encoder_at_its_own_rate(tmp_path):
    initial, snapshots = _fit(tmp_path, [*FROZEN, "callbacks.unfreeze_encoder.at_epoch=1"])
    assert _same(initial, snapshots.states[0])
    assert not _same(snapshots.states[0], snapshots.states[1])
    assert snapshots.groups[0] == [("head", 0.05)]
    assert snapshots.groups[1] == [("head", 0.05), ("encoder", 0.05 * 0.1)]


def test_encoder_lr_mult_without_freezing(tmp_path):
    cfg = compose_config("train", tmp_path, [*TINY, "optimizer=adamw", "optimizer.lr=0.002",
                                             "optimizer.encoder_lr_mult=0.5", "scheduler=none"])
    module = build_module(cfg, ["a", "b", "c", "d"])
    optimizer = module.configure_optimizers()["optimizer"]
    assert [(g["name"], g["lr"]) for g in optimizer.param_groups] == [
        ("head", 0.002), ("encoder", 0.001)]


def test_the_seed_transfer_recipe_is_config_alone(tmp_path, monkeypatch):
    """experiment=deeplabv3_coco_transfer: COCO-VOC weights (downloader replaced), no aux
    head, frozen backbone, a new K-class classifier, SGD lr 1e-3 momentum 0.9."""
    from torchvision.models import _api as torchvision_api
    from torchvision.models import segmentation as tvseg

    published = tvseg.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21,
                                          aux_loss=True).state_dict()
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", lambda *a, **k: published)
    cfg = compose_config("train", tmp_path, [*TINY, "experiment=deeplabv3_coco_transfer"])
    module = build_module(cfg, ["background", "disc", "box", "triangle"])
    net = module.net
    assert net.model.aux_classifier is None
    assert net.encoder_frozen and not any(p.requires_grad for p in net.encoder.parameters())
    assert torch.equal(net.model.backbone.conv1.weight, published["backbone.conv1.weight"])
    assert net.model.classifier[4].out_channels == 4
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False)
    trainer.fit_loop.max_batches = 4  # what the poly schedule's length is read from
    module.trainer = trainer
    optimizer = module.configure_optimizers()
    assert type(optimizer["optimizer"]).__name__ == "SGD"
    assert [(g["name"], g["lr"], g["momentum"]) for g in optimizer["optimizer"].param_groups] \
        == [("head", 0.001, 0.9)]
