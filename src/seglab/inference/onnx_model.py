"""Running a file written by `seglab-export format=onnx` with onnxruntime, called like the
torch network, with the model card read back from the file's metadata."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from seglab.core.errors import ConfigError
from seglab.inference.card import ModelCard

CARD_KEY = "seglab"  # the card's key in an exported ONNX file's metadata_props
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def import_export_extra(name: str) -> ModuleType:
    """Module `name` of the `export` extra (onnx, onnxscript, onnxruntime), or a ConfigError
    saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{name} is not installed: pip install 'seglab[export]'") from None


class OnnxNet:
    """An onnxruntime session called like the torch network: normalised images [N, 3, H, W]
    in, logits [N, C, H, W] out, on the images' device."""

    def __init__(self, session, path: Path) -> None:
        self.session, self.path = session, path
        image_input = session.get_inputs()[0]
        self.input_name = image_input.name
        # ints where the file fixes the axis, names where it is dynamic
        self.batch, _, *self.size = image_input.shape

    def __call__(self, images: Tensor) -> Tensor:
        size = list(images.shape[-2:])
        pairs = zip(self.size, size, strict=True)
        if any(isinstance(fixed, int) and fixed != got for fixed, got in pairs):
            raise ConfigError(f"{self.path} takes {self.size[0]}×{self.size[1]} images only, "
                              f"got {size[0]}×{size[1]}; export it again with dynamic=true "
                              "to run it at other sizes")
        chunks = images.split(self.batch) if isinstance(self.batch, int) else (images,)
        logits = [self.session.run(None, {self.input_name: chunk.detach().float().cpu().numpy()})[0]
                  for chunk in chunks]
        return torch.cat([torch.from_numpy(part) for part in logits]).to(images.device)


def load_onnx_model(path: Path) -> tuple[OnnxNet, ModelCard]:
    """The network in an ONNX file from seglab-export (on CUDA where onnxruntime has it, else
    the CPU) and the model card stored in it."""
    ort = import_export_extra("onnxruntime")
    if not path.is_file():
        raise ConfigError(f"onnx_path: no ONNX file at {path}")
    available = ort.get_available_providers()
    try:
        session = ort.InferenceSession(str(path), providers=[
            provider for provider in PROVIDERS if provider in available])
    except Exception as error:  # onnxruntime's errors share no base class but Exception
        raise ConfigError(f"onnx_path: {path} is not a readable ONNX model "
                          f"({type(error).__name__})") from error
    card = session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
    if card is None:
        raise ConfigError(f"onnx_path: {path} has no '{CARD_KEY}' metadata: it was not written "
                          "by seglab-export")
    return OnnxNet(session, path), ModelCard.from_json(card)
