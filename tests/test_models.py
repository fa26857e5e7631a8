"""The model registry and the one interface: shapes, groups, errors, weights."""

import pytest
import torch

from seglab.models import (
    MODELS,
    build_model,
    count_gflops,
    count_parameters,
    registry,
    supported_encoders,
)


@pytest.mark.parametrize("encoder", supported_encoders("unet"))
@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
def test_unet_maps_images_to_logits_at_input_size(encoder, size):
    net = build_model("unet", encoder, num_classes=5)
    logits = net(torch.randn(2, 3, *size))
    assert logits.shape == (2, 5, *size)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    logits.mean().backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_parameter_groups_split_encoder_from_head():
    net = build_model("unet", "resnet18", num_classes=3)
    groups = net.parameter_groups()
    encoder_ids = {id(p) for p in net.encoder.parameters()}
    assert {id(p) for p in groups["encoder"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups["head"]}
    assert len(groups["encoder"]) + len(groups["head"]) == len(list(net.parameters()))


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'unett'; valid models: unet"):
        build_model("unett", "resnet18", num_classes=2)


def test_invalid_pair_names_it_and_lists_encoders():
    with pytest.raises(ValueError, match=r"model 'unet' does not support encoder 'vgg99'; "
                                         r"valid encoders for unet: resnet18, resnet34"):
        build_model("unet", "vgg99", num_classes=2)
    assert set(MODELS) >= {"unet"}


def test_size_figures():
    net = build_model("unet", "resnet18", num_classes=4)
    assert count_parameters(net) == 14_328_644
    # FLOPs scale with the input area for a fully convolutional network
    assert count_gflops(net, 128, 128) == pytest.approx(4 * count_gflops(net, 64, 64), rel=1e-6)


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(0)
    source = build_model("unet", "mobilenet_v2", num_classes=3).eval()
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    loaded = build_model("unet", "mobilenet_v2", num_classes=3,
                         weights=str(tmp_path / "weights.pt")).eval()
    images = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(loaded(images), source(images), rtol=0, atol=0)


def test_weights_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.weights: no file at .*missing.pt"):
        build_model("unet", "resnet18", num_classes=3, weights=str(tmp_path / "missing.pt"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt does not fit this network"):
        build_model("unet", "resnet18", num_classes=3, weights=str(tmp_path / "other.pt"))


def test_offline_pretrained_download_gives_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setitem(registry.MODELS, "unet", registry.ModelSpec(
        offline, registry.MODELS["unet"].encoders, "test"))
    with pytest.raises(RuntimeError, match=r"could not fetch 'imagenet' weights for encoder "
                                           r"'resnet18'.*encoder.weights=null"):
        build_model("unet", "resnet18", num_classes=3, encoder_weights="imagenet")
