"""The model registry and the one interface: every pair, published sizes, weights, freezing."""

import json
import re
from pathlib import Path
from urllib.error import URLError

import pytest
import segmentation_models_pytorch.encoders as smp_encoders
import torch
from safetensors.torch import save_file
from torchvision.models import _api as torchvision_api
from torchvision.models import segmentation as tvseg

from seglab.models import MODELS, build_model, count_gflops, count_parameters, supported_encoders
from seglab.models.registry import ENCODERS, support_matrix
from seglab.models.weights import WeightsUnavailable

# seglab's own encoders; the timm backbones are tests/test_timm_backbones.py's
PAIRS = [(model, encoder) for model in MODELS for encoder in (*ENCODERS, "none")
         if encoder in supported_encoders(model)]
REFUSED = [(model, encoder) for model in MODELS for encoder in (*ENCODERS, "none")
           if encoder not in supported_encoders(model)]


@pytest.mark.parametrize("model, encoder", PAIRS)
def test_every_valid_pair_builds_maps_to_input_size_and_trains(model, encoder):
    torch.manual_seed(0)
    net = build_model(model, encoder, num_classes=3)
    for size in [(64, 64), (70, 90)]:
        assert net(torch.randn(2, 3, *size)).shape == (2, 3, *size)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.randn(2, 3, 64, 64)).mean().backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


@pytest.mark.parametrize("model, encoder", REFUSED)
def test_every_invalid_pair_is_refused_with_the_reason_and_the_valid_encoders(model, encoder):
    valid = ", ".join(encoder.removeprefix("tu-") for encoder in supported_encoders(model))
    with pytest.raises(ValueError, match=re.escape(
            f"model {model!r} does not support encoder {encoder!r}: it ")) as refused:
        build_model(model, encoder, num_classes=3)
    assert f"; encoders that work: {valid}" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'unett'; valid models: deeplabv3, "):
        build_model("unett", "resnet18", num_classes=2)


@pytest.mark.parametrize("model, encoder, expected", [
    ("fcn", "resnet50", 35_322_218),
    ("deeplabv3", "resnet50", 42_004_074),
    ("deeplabv3", "mobilenet_v3_large", 11_029_328),
    ("lraspp", "mobilenet_v3_large", 3_221_538),
])
def test_torchvision_parameter_counts_are_the_published_ones(model, encoder, expected):
    aux = {} if model == "lraspp" else {"aux_loss": True}
    assert count_parameters(build_model(model, encoder, num_classes=21, **aux)) == expected


@pytest.mark.parametrize("model, encoder, classes, published, tolerance", [
    ("unet_classic", "none", 2, 31.0e6, 0.01),
    ("segnet", "vgg16_bn", 21, 29.5e6, 0.02),
    ("fcn8s", "vgg16", 21, 134e6, 0.02),
])
def test_own_models_match_the_papers_sizes(model, encoder, classes, published, tolerance):
    count = count_parameters(build_model(model, encoder, num_classes=classes))
    assert count == pytest.approx(published, rel=tolerance)


def test_gflops_scale_with_input_area():
    net = build_model("unet", "resnet18", num_classes=4)
    assert count_parameters(net) == 14_328_644
    assert count_gflops(net, 128, 128) == pytest.approx(4 * count_gflops(net, 64, 64), rel=1e-6)


def test_parameter_groups_split_encoder_from_head():
    net = build_model("deeplabv3", "resnet50", num_classes=3)
    groups = net.parameter_groups()
    encoder_ids = {id(p) for p in net.encoder.parameters()}
    assert {id(p) for p in groups["encoder"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups["head"]}
    assert len(groups["encoder"]) + len(groups["head"]) == len(list(net.parameters()))


def test_aux_head_adds_a_training_loss_only():
    net = build_model("deeplabv3", "mobilenet_v3_large", num_classes=3, aux_loss=True)
    target = torch.randint(0, 3, (2, 64, 64))
    loss = torch.nn.CrossEntropyLoss()
    logits = net.train()(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3, 64, 64)
    auxiliary = net.auxiliary_loss(loss, target)
    assert auxiliary is not None and auxiliary.item() > 0
    assert auxiliary.item() == pytest.approx(0.5 * loss(net._aux_logits, target).item())
    net.eval()(torch.randn(2, 3, 64, 64))
    assert net.auxiliary_loss(loss, target) is None
    without = build_model("deeplabv3", "mobilenet_v3_large", num_classes=3, aux_loss=None)
    assert without.model.aux_classifier is None
    assert without.train()(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    assert without.auxiliary_loss(loss, target) is None


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(0)
    source = build_model("unet", "mobilenet_v2", num_classes=3).eval()
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    loaded = build_model("unet", "mobilenet_v2", num_classes=3,
                         weights=str(tmp_path / "weights.pt")).eval()
    images = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(images), source(images), rtol=0, atol=0)


def test_class_count_change_keeps_all_but_the_classifier(tmp_path, caplog):
    torch.manual_seed(0)
    source = build_model("unet", "resnet18", num_classes=5)
    torch.save(source.state_dict(), tmp_path / "five.pt")
    target = build_model("unet", "resnet18", num_classes=2, weights=str(tmp_path / "five.pt"))
    for key, value in target.state_dict().items():
        if key.startswith("model.segmentation_head"):
            assert value.shape != source.state_dict()[key].shape
        else:
            assert torch.equal(value, source.state_dict()[key]), key
    assert "re-initialised model.segmentation_head.0.weight" in caplog.text


def test_weights_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.weights: '.*missing.pt' is neither an "
                                                "existing file"):
        build_model("unet", "resnet18", num_classes=3, weights=str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="neither one of COCO_WITH_VOC_LABELS_V1"):
        build_model("lraspp", "mobilenet_v3_large", num_classes=3, weights="COCO_V2")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt does not fit this network"):
        build_model("unet", "resnet18", num_classes=3, weights=str(tmp_path / "other.pt"))


def test_torchvision_published_weights_through_the_replaced_downloader(monkeypatch):
    """COCO-VOC weights (21 classes) into a 4-class model: backbone kept, classifier new."""
    torch.manual_seed(1)
    published = tvseg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                   num_classes=21, aux_loss=True).state_dict()
    urls = []

    def download(url, *args, **kwargs):
        urls.append(url)
        return published

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", download)
    net = build_model("deeplabv3", "mobilenet_v3_large", num_classes=4,
                      weights="COCO_WITH_VOC_LABELS_V1", aux_loss=None)
    assert urls == [tvseg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1.url]
    own = net.model.state_dict()
    assert torch.equal(own["backbone.0.0.weight"], published["backbone.0.0.weight"])
    assert torch.equal(own["classifier.0.convs.0.0.weight"],
                       published["classifier.0.convs.0.0.weight"])
    assert own["classifier.4.weight"].shape == (4, 256, 1, 1)


def test_torchvision_weights_offline_error(monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailable, match=r"could not fetch DeepLabV3_ResNet101_Weights"
                       r".COCO_WITH_VOC_LABELS_V1 from https://download.pytorch.org/models/"
                       r"deeplabv3_resnet101_coco-586e9e4e.pth .*hub/checkpoints"):
        build_model("deeplabv3", "resnet101", num_classes=3, weights="COCO_WITH_VOC_LABELS_V1")


def test_smp_imagenet_weights_through_the_replaced_hub(monkeypatch, tmp_path):
    torch.manual_seed(2)
    encoder = smp_encoders.get_encoder("resnet18", weights=None)
    save_file(encoder.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({}))
    requested = []

    def hub(repo_id, filename, **kwargs):
        requested.append(repo_id)
        return str(tmp_path / filename)

    monkeypatch.setattr(smp_encoders, "hf_hub_download", hub)
    net = build_model("unet", "resnet18", num_classes=3, encoder_weights="imagenet")
    assert requested and "resnet18" in requested[0]
    for key, value in encoder.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[key], value), key


def test_smp_hub_offline_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to the Hub")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", offline)
    with pytest.raises(WeightsUnavailable, match=r"could not fetch 'imagenet' weights for "
                                                 r"encoder 'resnet18'.*encoder.weights=null"):
        build_model("unet", "resnet18", num_classes=3, encoder_weights="imagenet")


def test_frozen_encoder_does_not_change_in_a_training_step():
    net = build_model("pspnet", "mobilenet_v2", num_classes=3, freeze_encoder=True).train()
    encoder_state = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    head_before = [p.detach().clone() for p in net.parameter_groups()["head"]]
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    net(torch.randn(2, 3, 64, 64)).mean().backward()
    optimizer.step()
    for key, value in net.encoder.state_dict().items():  # weights and BN statistics
        assert torch.equal(value, encoder_state[key]), key
    assert any(not torch.equal(a, b) for a, b in
               zip(head_before, net.parameter_groups()["head"], strict=True))


def test_readme_support_matrix_is_the_registry_s():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert support_matrix() in readme


def test_torchvision_outputs_match_torchvision_and_skip_aux_at_inference():
    torch.manual_seed(3)
    net = build_model("fcn", "resnet50", num_classes=3, aux_loss=True).eval()
    images = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(net(images), net.model(images)["out"])
    without_aux = build_model("fcn", "resnet50", num_classes=3, aux_loss=None)
    assert count_gflops(net, 64, 64) == pytest.approx(count_gflops(without_aux, 64, 64))


def test_a_shallower_smp_encoder_keeps_only_the_stages_it_runs():
    net = build_model("unet", "resnet18", 4, encoder_depth=4, decoder_channels=[64, 32, 16, 8])
    assert not hasattr(net.encoder, "layer4") and hasattr(net.encoder, "layer3")
    net(torch.randn(2, 3, 64, 64)).mean().backward()
    assert [name for name, p in net.named_parameters() if p.grad is None] == []
    assert count_parameters(net) == 3_105_540  # ResNet-18 to layer3 + the 4-stage decoder
