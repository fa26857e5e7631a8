"""The speed switches change how fast the network runs, not what it computes."""

import logging

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
    from seglab.config import amp_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    native = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native["bf16"] or including_emulation)
    assert amp_precision() == "bf16-mixed"
    native["bf16"] = False  # a Turing card: bf16 only emulated
    assert amp_precision() == "16-mixed"
