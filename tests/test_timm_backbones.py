"""Any timm backbone through smp's universal encoder, smp's remaining heads, and the registry
deciding each pair from the backbone's own report."""

import re
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from safetensors.torch import save_file
from timm.models import _hub as timm_hub

from conftest import TINY, compose_config, run_cli
from seglab.core.errors import ConfigError
from seglab.models import MODELS, build_model, count_parameters
from seglab.models.backbones import describe
from seglab.models.registry import TIMM_BACKBONES, refusal, supported_encoders
from seglab.models.weights import WeightsUnavailable
from seglab.runs.config import check_config, config_dir

# timm's own tiny test models: a CNN, a ResNet, an EfficientNet (all can dilate; the ConvNeXt
# starts at stride 4), a plain ViT
TINY_BACKBONES = ("tu-test_convnext", "tu-test_resnet", "tu-test_efficientnet", "tu-test_vit")
PAIRS = [(model, encoder) for model in MODELS for encoder in TINY_BACKBONES
         if refusal(model, encoder) is None]
SMALL_DPT = {"decoder_intermediate_channels": [16, 32, 32, 64], "decoder_fusion_channels": 32}
NEW_HEADS = {"manet": smp.MAnet, "linknet": smp.Linknet, "pan": smp.PAN,
             "upernet": smp.UPerNet, "dpt": smp.DPT}


@pytest.mark.parametrize("model, encoder", PAIRS)
def test_every_accepted_timm_pair_maps_to_input_size_and_trains(model, encoder):
    torch.manual_seed(0)
    net = build_model(model, encoder, num_classes=3, **(SMALL_DPT if model == "dpt" else {}))
    for size in [(64, 64), (70, 90)]:
        assert net(torch.randn(2, 3, *size)).shape == (2, 3, *size)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.randn(2, 3, 64, 64)).mean().backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_the_reports_say_what_each_backbone_is():
    convnext, vit = describe("tu-test_convnext"), describe("tu-test_vit")
    assert convnext.strides == (1, 2, 4, 8, 16, 32) and convnext.channels == (3, 0, 24, 32, 48, 64)
    assert convnext.hierarchical and convnext.dilatable and not convnext.has_stride_two
    assert not vit.hierarchical and not vit.dilatable and vit.intermediates and vit.patch == 16
    swin = describe("tu-swin_tiny_patch4_window7_224")
    assert swin.hierarchical and not swin.dilatable and swin.dynamic_size and swin.patch == 4
    assert describe("tu-test_maxvit").fixed_size == (160, 160)
    vgg = describe("vgg16")
    assert vgg.library == "smp" and not vgg.dilatable and vgg.has_stride_two


@pytest.mark.parametrize("model, encoder, reason, works", [
    ("deeplabv3", "tu-swin_tiny_patch4_window7_224",
     "it needs a backbone that can dilate to output stride 8 or 16", "upernet"),
    ("pan", "vgg16", "it needs a backbone that can dilate", "upernet"),
    ("dpt", "resnet18", "it needs a timm backbone (encoder=timm)", "upernet"),
    ("upernet", "tu-test_vit", "it needs feature maps at strides 2 or 4 up to 32", "dpt"),
    ("linknet", "tu-test_convnext", "it needs features at stride 2", "unet"),
    ("unetplusplus", "mit_b0", "it needs features at stride 2", "unet"),
    ("upernet", "tu-test_maxvit", "it needs a backbone that takes any input size, and timm "
                                  "builds test_maxvit for 160×160 only", None),
])
def test_an_impossible_pair_is_one_line_naming_why_and_what_works(model, encoder, reason,
                                                                  works):
    with pytest.raises(ValueError) as refused:
        build_model(model, encoder, num_classes=3)
    message = str(refused.value)
    shown = encoder.removeprefix("tu-")  # as the user types it
    assert message.startswith(f"model {model!r} does not support encoder {shown!r}: {reason}")
    assert "tu-" not in message
    assert "\n" not in message and "encoders that work: " in message
    if works is not None:
        takers = message.split("models that take ")[1]
        assert works in takers.split(": ", 1)[1].split(", ")


def test_an_unknown_timm_name_lists_the_closest_ones():
    with pytest.raises(ValueError, match=r"^encoder.name 'convnxt_tiny' is not a timm model; "
                                         r"closest timm names: convnext_tiny, "):
        build_model("unet", "tu-convnxt_tiny", num_classes=3)
    with pytest.raises(ValueError, match=r"^encoder.name 'convnext_tiny.fb_in99k': timm has no "
                                         r"weights tag 'fb_in99k' for convnext_tiny; its tags: "
                                         r".*fb_in22k"):
        build_model("unet", "tu-convnext_tiny.fb_in99k", num_classes=3)
    assert describe("tu-convnext_tiny.fb_in22k").hierarchical
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet19'; closest smp encoders: "
                                         r"resnet18.*encoder=timm encoder.name="):
        build_model("unet", "resnet19", num_classes=3)


@pytest.mark.parametrize("model, encoder, options", [
    ("manet", "resnet18", {}), ("linknet", "resnet18", {}), ("pan", "resnet18", {}),
    ("upernet", "resnet18", {}), ("upernet", "tu-test_convnext", {}),
    ("dpt", "tu-test_vit", {"decoder_fusion_channels": 64}),
])
def test_new_heads_have_smp_s_own_parameter_count(model, encoder, options):
    extra = {"dynamic_img_size": True} if encoder == "tu-test_vit" else {}
    own = smp.create_model(model if model != "manet" else "manet", encoder_name=encoder,
                           encoder_weights=None, classes=5, **options, **extra)
    assert count_parameters(build_model(model, encoder, 5, **options)) == count_parameters(own)
    assert isinstance(own, NEW_HEADS[model])


@pytest.mark.slow
@pytest.mark.parametrize("backbone", TIMM_BACKBONES)
def test_the_curated_backbones_have_config_files_and_build(backbone, tmp_path):
    cfg = compose_config("train", tmp_path, [f"encoder={backbone}"])
    assert cfg.model.encoder == f"tu-{backbone}"
    model = "upernet" if "upernet" in [m for m in MODELS
                                      if cfg.model.encoder in supported_encoders(m)] else "dpt"
    net = build_model(model, cfg.model.encoder, num_classes=3)
    own = getattr(smp, NEW_HEADS[model].__name__)(
        encoder_name=cfg.model.encoder, encoder_weights=None, classes=3,
        **({"dynamic_img_size": True} if describe(cfg.model.encoder).dynamic_size else {}))
    assert count_parameters(net) == count_parameters(own)
    assert net.eval()(torch.zeros(1, 3, 96, 128)).shape == (1, 3, 96, 128)


def test_encoder_timm_selects_any_timm_model_through_the_config(tmp_path):
    cfg = compose_config("train", tmp_path, [*TINY, "model=upernet", "encoder=timm",
                                             "encoder.name=test_convnext"])
    check_config(cfg)
    assert (cfg.encoder.name, cfg.model.encoder) == ("test_convnext", "tu-test_convnext")
    refused = compose_config("train", tmp_path, [*TINY, "model=deeplabv3", "encoder=timm",
                                                 "encoder.name=swin_tiny_patch4_window7_224"])
    with pytest.raises(ConfigError, match=re.escape(
            "model 'deeplabv3' does not support encoder 'swin_tiny_patch4_window7_224': "
            "it needs a backbone that can dilate")):
        check_config(refused)
    unnamed = run_cli(["seglab-train", *TINY, "encoder=timm", f"hydra.run.dir={tmp_path}/run"],
                      cwd=tmp_path)
    assert unnamed.returncode == 1
    assert unnamed.stderr.strip() == ("error: encoder.name: no value given; expected one on the "
                                      "command line, such as encoder.name=<value>")
    typo = compose_config("train", tmp_path, [*TINY, "encoder=timm", "encoder.name=convnxt_tiny"])
    with pytest.raises(ConfigError, match="'convnxt_tiny' is not a timm model; closest"):
        check_config(typo)


def _timm_hub_serving(monkeypatch, folder: Path, requested: list) -> None:
    def download(repo_id, filename, **kwargs):
        requested.append((repo_id, filename))
        return str(folder / filename)

    monkeypatch.setattr(timm_hub, "hf_hub_download", download)


def test_timm_imagenet_weights_load_through_the_replaced_hub(monkeypatch, tmp_path):
    torch.manual_seed(3)
    published = timm.create_model("test_convnext", pretrained=False)
    save_file(published.state_dict(), tmp_path / "model.safetensors")
    requested = []
    _timm_hub_serving(monkeypatch, tmp_path, requested)
    net = build_model("upernet", "tu-test_convnext", num_classes=3, encoder_weights="imagenet")
    assert requested and requested[0][0].startswith("timm/test_convnext")
    loaded, weights = net.encoder.model.state_dict(), published.state_dict()
    assert torch.equal(loaded["stem_0.weight"], weights["stem.0.weight"])
    assert torch.equal(loaded["stages_3.blocks.0.mlp.fc1.weight"],
                       weights["stages.3.blocks.0.mlp.fc1.weight"])


def test_timm_weights_offline_and_other_variants_are_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to the Hub")

    monkeypatch.setattr(timm_hub, "hf_hub_download", offline)
    with pytest.raises(WeightsUnavailable, match=r"could not fetch 'imagenet' weights for "
                                                 r"encoder 'tu-test_convnext'.*weights=null"):
        build_model("unet", "tu-test_convnext", num_classes=3, encoder_weights="imagenet")
    with pytest.raises(ConfigError, match=r"encoder.weights = 'ssl': a timm backbone takes "
                                          r"imagenet .* or null.*convnext_tiny.fb_in22k"):
        build_model("unet", "tu-test_convnext", num_classes=3, encoder_weights="ssl")


def test_encoder_files_name_timm_backbones_the_registry_knows():
    files = {path.stem for path in (Path(config_dir()) / "encoder").glob("*.yaml")}
    assert set(TIMM_BACKBONES) <= files
