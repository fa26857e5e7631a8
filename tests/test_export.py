"""seglab-export: ONNX and TorchScript files that match PyTorch and carry the model card."""

from __future__ import annotations

import json
import sys
from dataclasses import fields, replace
from pathlib import Path

import onnx
import pytest
import torch

from conftest import TINY, compose_config, run_cli
from seglab.core.errors import ConfigError
from seglab.engine.training import train
from seglab.inference.card import ModelCard
from seglab.inference.export import CARD_FILE, export, export_net
from seglab.inference.loading import load_checkpoint_net, run_card
from seglab.inference.onnx_model import load_onnx_model
from seglab.models import build_model
from seglab.runs.run_config import TrainedCheckpoint, load_run_config

TRAIN_SIZE = (32, 32)
OTHER_SIZE = (40, 56)  # no multiple of 32: the padding to the output stride is in the graph
CARD = ModelCard(class_names=["background", "a", "b", "c"], palette=[[0, 0, 0], [1, 2, 3],
                 [4, 5, 6], [7, 8, 9]], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25],
                 input_size=list(TRAIN_SIZE))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """The best checkpoint of a tiny unet (resnet18) run of the real training entry."""
    output = tmp_path_factory.mktemp("export") / "run"
    train(compose_config("train", output, [*TINY, "data.lengths={train:8,val:8,test:8}"]))
    return (output / "checkpoints" / "best.ckpt").resolve()


def source_card(ckpt_path: Path) -> ModelCard:
    checkpoint = TrainedCheckpoint.read(ckpt_path)
    return run_card(load_run_config(checkpoint), checkpoint.class_names, str(ckpt_path))


def assert_matches(net, exported, size: tuple[int, int], batch: int = 2) -> None:
    """Logits within 1e-4 of PyTorch's and the same mask, on random normalised images."""
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = net(images), exported(images)
    assert got.shape == expected.shape == (batch, 4, *size)
    assert (got - expected).abs().max().item() < 1e-4
    assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.slow
def test_export_command_writes_onnx_and_model_json(trained_run, tmp_path):
    output = tmp_path / "export"
    result = run_cli(["seglab-export", f"ckpt_path={trained_run}", "dynamic=true",
                      f"hydra.run.dir={output}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    net, card = load_onnx_model(output / "model.onnx")
    assert card == source_card(trained_run)
    record = json.loads((output / "model.json").read_text())
    assert ModelCard(**{field.name: record[field.name] for field in fields(ModelCard)}) == card
    assert {key: record[key] for key in ("format", "file", "exporter", "dynamic", "opset",
                                         "input_size", "checkpoint")} == {
        "format": "onnx", "file": "model.onnx", "exporter": "dynamo", "dynamic": True,
        "opset": 18, "input_size": [32, 32], "checkpoint": str(trained_run)}
    assert record["max_abs_diff"] < 1e-4 and record["versions"]["torch"]
    assert "(x/255 - mean)/std" in record["input"]
    checkpoint = TrainedCheckpoint.read(trained_run)
    torch_net = load_checkpoint_net(load_run_config(checkpoint), checkpoint)
    for size in (TRAIN_SIZE, OTHER_SIZE):
        assert_matches(torch_net, net, size)


def test_torchscript_file_carries_the_card(trained_run, tmp_path):
    cfg = compose_config("export", tmp_path / "ts",
                         [f"ckpt_path={trained_run}", "format=torchscript"])
    record, objects = export(cfg)
    extra = {CARD_FILE: ""}
    scripted = torch.jit.load(str(tmp_path / "ts" / "model.pt"), _extra_files=extra)
    assert ModelCard.from_json(extra[CARD_FILE]) == source_card(trained_run)
    assert record["format"] == "torchscript" and record["max_abs_diff"] < 1e-4
    for size in (TRAIN_SIZE, OTHER_SIZE):
        assert_matches(objects["net"], scripted, size)


def test_fallback_exporter_is_recorded_and_fixed_size_is_enforced(trained_run, tmp_path,
                                                                   monkeypatch):
    real_export = torch.onnx.export

    def dynamo_fails(*args, dynamo: bool = True, **kwargs):
        if dynamo:
            raise RuntimeError("torch.export cannot handle this model")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    cfg = compose_config("export", tmp_path / "static", [f"ckpt_path={trained_run}"])
    record, objects = export(cfg)
    saved = json.loads((tmp_path / "static" / "model.json").read_text())
    assert saved["exporter"] == record["exporter"] == "torchscript"
    assert saved["dynamic"] is False and saved["max_abs_diff"] < 1e-4
    net, _ = load_onnx_model(tmp_path / "static" / "model.onnx")
    assert_matches(objects["net"], net, TRAIN_SIZE, batch=3)  # a fixed batch of 1, in turn
    with pytest.raises(ConfigError, match=r"takes 32×32 images only, got 40×56; .*dynamic=true"):
        net(torch.zeros(1, 3, *OTHER_SIZE))


def test_a_model_no_exporter_handles_is_one_line(tmp_path, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", fails)
    net = build_model("unet", "resnet18", num_classes=4)
    card = replace(CARD, model="unet", encoder="resnet18")
    with pytest.raises(ConfigError, match=r"dynamic=true: unet on resnet18 has no ONNX export "
                                          r"that runs at every size \(the dynamo exporter "
                                          r"failed: RuntimeError: unsupported operator; .*"
                                          r"dynamic=false"):
        export_net(net, card, tmp_path / "model.onnx", "onnx", TRAIN_SIZE, dynamic=True)
    assert not list(tmp_path.iterdir())


def test_segnet_exports_to_onnx_and_refuses_torchscript(tmp_path):
    torch.manual_seed(0)
    net = build_model("segnet", "vgg16_bn", num_classes=4).eval()
    card = replace(CARD, model="segnet", encoder="vgg16_bn")
    record = export_net(net, card, tmp_path / "model.onnx", "onnx", TRAIN_SIZE, dynamic=True)
    assert record["exporter"] == "dynamo"
    exported, read_card = load_onnx_model(tmp_path / "model.onnx")
    assert read_card == card
    for size in (TRAIN_SIZE, OTHER_SIZE):
        assert_matches(net, exported, size)
    with pytest.raises(ConfigError, match="segnet on vgg16_bn cannot be traced.*format=onnx"):
        export_net(net, card, tmp_path / "model.pt", "torchscript", TRAIN_SIZE, dynamic=False)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "model.pt.partial").exists()


def test_torchvision_model_exports_without_its_auxiliary_head(tmp_path):
    torch.manual_seed(0)
    net = build_model("deeplabv3", "mobilenet_v3_large", num_classes=4, aux_loss=True).eval()
    assert net.model.aux_classifier is not None
    record = export_net(net, CARD, tmp_path / "model.onnx", "onnx", TRAIN_SIZE, dynamic=True)
    assert record["exporter"] == "dynamo"
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [output.name for output in graph.output] == ["logits"]
    assert not [tensor.name for tensor in graph.initializer if "aux_classifier" in tensor.name]
    exported, _ = load_onnx_model(tmp_path / "model.onnx")
    export_net(net, CARD, tmp_path / "model.pt", "torchscript", TRAIN_SIZE, dynamic=False)
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    for size in (TRAIN_SIZE, OTHER_SIZE):
        assert_matches(net, exported, size)
        assert_matches(net, scripted, size)


@pytest.mark.parametrize(("override", "message"), [
    ("input_size=[32]", "input_size=[32]: expected [height, width] in pixels"),
    ("dynamic=maybe", "dynamic='maybe': expected true or false"),
])
def test_bad_options_are_one_line_errors(trained_run, tmp_path, override, message):
    cfg = compose_config("export", tmp_path / "bad", [f"ckpt_path={trained_run}", override])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        export(cfg)
    assert not (tmp_path / "bad" / "model.onnx").exists()


def test_foreign_checkpoint_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    cfg = compose_config("export", tmp_path / "bad", [f"ckpt_path={tmp_path / 'other.ckpt'}"])
    with pytest.raises(ConfigError, match="was not written by seglab-train"):
        export(cfg)


def test_onnx_file_without_card_is_refused(tmp_path):
    path = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 1), (torch.zeros(1, 3, 8, 8),), str(path),
                      dynamo=False)
    with pytest.raises(ConfigError, match="plain.onnx has no 'seglab' metadata: it was not "
                                          "written by seglab-export"):
        load_onnx_model(path)


def test_missing_onnxruntime_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r"onnxruntime is not installed: pip install "
                                          r"'seglab\[export\]'"):
        load_onnx_model(tmp_path / "model.onnx")


@pytest.mark.slow
def test_unknown_format_exits_with_one_line(tmp_path):
    result = run_cli(["seglab-export", "ckpt_path=missing.ckpt", "format=tflite",
                      f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path)
    assert result.returncode == 1
    assert "error: format='tflite': expected one of onnx, torchscript" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("model", "encoder"), [
    ("fcn8s", "vgg16"), ("unet_classic", "none"), ("deeplabv3plus", "resnet18"),
    ("pspnet", "resnet18"), ("manet", "resnet18"), ("linknet", "resnet18"), ("pan", "resnet18"),
    ("upernet", "tu-test_convnext"), ("dpt", "tu-test_vit"),
])
def test_other_models_export_at_their_training_size(model, encoder, tmp_path):
    """The seed studies' other models and smp's remaining heads (on timm backbones too), at
    a fixed size (pspnet has no dynamic export)."""
    torch.manual_seed(0)
    net = build_model(model, encoder, num_classes=4).eval()
    card = replace(CARD, model=model, encoder=encoder)
    export_net(net, card, tmp_path / "model.onnx", "onnx", TRAIN_SIZE, dynamic=False)
    export_net(net, card, tmp_path / "model.pt", "torchscript", TRAIN_SIZE, dynamic=False)
    assert_matches(net, load_onnx_model(tmp_path / "model.onnx")[0], TRAIN_SIZE, batch=1)
    assert_matches(net, torch.jit.load(str(tmp_path / "model.pt")), TRAIN_SIZE)
