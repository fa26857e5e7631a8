"""The speed switches change how fast the network runs, not what it computes."""

import logging
import re

import pytest
import torch
from torch._inductor.exc import InvalidCxxCompiler

from seglab.models import build_model

# fp32 on the CPU: a different memory layout or fused kernels reorder the same sums, so
# logits agree to float32 rounding of a deep network, not bit for bit
TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}


def _twins(name: str, encoder: str, options: dict | None = None,
           **switches) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same network built plainly and with `switches`, with the same weights."""
    torch.manual_seed(0)
    plain = build_model(name, encoder, 3, **(options or {})).eval()
    fast = build_model(name, encoder, 3, **(options or {}), **switches).eval()
    fast.load_state_dict(plain.state_dict())
    return plain, fast


def test_channels_last_gives_the_plain_logits():
    plain, fast = _twins("unet", "resnet18", channels_last=True)
    assert fast.channels_last and not plain.channels_last
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), plain(images), **TOLERANCE)
    assert list(fast.state_dict()) == list(plain.state_dict())


def test_compile_gives_the_plain_logits_and_keeps_the_parameter_names():
    plain, fast = _twins("unet_classic", "none", {"base_channels": 8}, compile=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), plain(images), **TOLERANCE)
    assert fast.forward_padded.compiled is not None  # it did compile here (gcc is present)
    assert list(fast.state_dict()) == list(plain.state_dict())



def test_an_unsupported_compiler_falls_back_in_one_line(monkeypatch, caplog):
    def unsupported(function):
        def run(images):
            raise InvalidCxxCompiler()
        return run

    monkeypatch.setattr("seglab.models.speed.torch.compile", unsupported)
    plain, fast = _twins("unet_classic", "none", {"base_channels": 8}, compile=True)
    images = torch.randn(1, 3, 32, 32)
    with caplog.at_level(logging.WARNING, logger="seglab.models.speed"), torch.no_grad():
        torch.testing.assert_close(fast(images), plain(images), atol=0, rtol=0)
        fast(images)
    warnings = [r.getMessage() for r in caplog.records if "model.compile" in r.getMessage()]
    assert len(warnings) == 1
    assert "torch.compile cannot run here (InvalidCxxCompiler" in warnings[0]
    assert "runs uncompiled" in warnings[0]


def test_gpu_amp_picks_bf16_on_native_gpus_else_fp16_with_a_scaler(monkeypatch):
    from seglab.runs.precision import amp_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    native = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native["bf16"] or including_emulation)
    assert amp_precision() == "bf16-mixed"
    native["bf16"] = False  # a Turing card: bf16 only emulated
    assert amp_precision() == "16-mixed"


def test_a_compiled_run_loads_for_inference_uncompiled_and_its_switches_may_change(tmp_path):
    from omegaconf import OmegaConf

    from seglab.inference.loading import load_checkpoint_net
    from seglab.models.speed import CompiledForward
    from seglab.runs.run_config import TrainedCheckpoint, network_of

    trained = OmegaConf.create({
        "model": {"_target_": "seglab.models.build_model", "name": "unet_classic",
                  "encoder": "none", "num_classes": 3, "base_channels": 8, "compile": True,
                  "channels_last": True, "weights": None, "encoder_weights": None},
        "encoder": {"name": "none"}, "data": {"num_classes": 3}, "trust_checkpoint": False})
    torch.manual_seed(0)
    checkpoint = tmp_path / "weights.pt"
    torch.save(build_model("unet_classic", "none", 3, base_channels=8).state_dict(), checkpoint)
    net = load_checkpoint_net(trained, TrainedCheckpoint(checkpoint, torch.load(checkpoint),
                                                         ["a", "b", "c"]))
    assert not isinstance(net.forward_padded, CompiledForward) and net.channels_last
    asked = OmegaConf.merge(trained, {"model": {"compile": False, "channels_last": False}})
    assert network_of(asked) == network_of(trained)  # eval/predict/export may switch them


def test_auto_workers_share_the_cores_and_a_resumed_loader_keeps_its_count():
    import os

    from seglab.data.datamodule import MAX_AUTO_WORKERS, SegmentationDataModule, loader_workers

    cores = len(os.sched_getaffinity(0))
    assert loader_workers("auto") == max(1, min(MAX_AUTO_WORKERS, cores))
    assert loader_workers("auto", local_processes=cores * 2) == 1
    assert loader_workers(3) == 3
    dm = SegmentationDataModule(name="x", dataset=None, num_classes=2, input_size=[8, 8],
                                num_workers="auto")
    dm.load_state_dict({"train_loader": None, "num_workers": 7})
    assert dm.num_workers == 7  # torchdata refuses a loader state saved with another count


def test_bad_switch_values_are_named(tmp_path):
    import pytest

    from seglab.core.errors import ConfigError
    from seglab.runs.config import check_config, compose_config

    for override, message in (
            ("model.channels_last=maybe", "model.channels_last = 'maybe' (str): expected true"),
            ("model.compile=1", "model.compile = 1 (int): expected true or false"),
            ("data.normalize_on_device=yes", "data.normalize_on_device = 'yes' (str)"),
            ("data.num_workers=many", "data.num_workers = 'many' (str): expected auto or"),
            ("model.encoder_depth=7", "model.encoder_depth = 7 (int): expected an integer")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_config(compose_config("train", tmp_path, [override]))


def test_flush_denormal_makes_denormal_floats_zero_and_is_undone_by_false():
    from omegaconf import OmegaConf

    from seglab.runs.task import flush_denormals

    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal float32
    try:
        flush_denormals(OmegaConf.create({"flush_denormal": True}))
        assert (tiny * 1.5).item() == 0.0
        flush_denormals(OmegaConf.create({"flush_denormal": False}))
        assert (tiny * 1.5).item() == pytest.approx(1.5e-39)
        flush_denormals(OmegaConf.create({}))  # a saved config without the key: unchanged
        assert (tiny * 1.5).item() == pytest.approx(1.5e-39)
    finally:
        torch.set_flush_denormal(False)


def test_flushing_denormals_leaves_a_convnext_s_logits_as_they_were():
    torch.manual_seed(0)
    net = build_model("upernet", "tu-test_convnext", 3).eval()  # 1e-6 layer scales
    images = torch.randn(2, 3, 64, 64)
    try:
        with torch.no_grad():
            plain = net(images)
            torch.set_flush_denormal(True)
            flushed = net(images)
    finally:
        torch.set_flush_denormal(False)
    torch.testing.assert_close(flushed, plain, **TOLERANCE)
