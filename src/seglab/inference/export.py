"""Export: a trained run's network (eval mode, no auxiliary head) as an ONNX or TorchScript
file with its model card inside, checked against PyTorch, and model.json beside it."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from seglab.core.errors import ConfigError, FolderRefused
from seglab.inference.card import ModelCard
from seglab.inference.loading import load_checkpoint_net, run_card
from seglab.inference.onnx_model import CARD_KEY, import_export_extra, load_onnx_model
from seglab.models import SegmentationNet
from seglab.runs.config import check_config
from seglab.runs.folder import refuse_run_folder, save_run_config
from seglab.runs.results import versions
from seglab.runs.run_config import checkpoint_run_config

log = logging.getLogger(__name__)

# Sections that say what to export and where: taken from the export config, not the run's.
EXPORT_OWNED = ("paths", "logger", "task_name", "ckpt_path", "format", "input_size", "dynamic",
                "opset")
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
CARD_FILE = "seglab.json"  # the card's name among a TorchScript file's extra files
INPUT = "float32 [N,3,H,W], RGB, (x/255 - mean)/std"
OUTPUT = "float32 logits [N,C,H,W], C = len(class_names)"
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
# largest logit difference from PyTorch an export may show: float32 rounding stays far below
# it, a graph broken at some size (a shape taken for a constant) far above
TOLERANCE = 1e-2
ONNX_EXPORTERS = ("dynamo", "torchscript")  # the second where the first fails
# the dynamo exporter's graph passes log every step; the result is checked against PyTorch
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript")


def _first_line(error: BaseException, limit: int = 200) -> str:
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else ""
    return f"{type(error).__name__}: {line if len(line) <= limit else line[:limit] + '…'}"


def _write_onnx(model: nn.Module, example: Tensor, path: Path, dynamic: bool, opset: int,
                exporter: str) -> None:
    """`path` written by the dynamo exporter or by the TorchScript-based one."""
    names = {"input_names": ["images"], "output_names": ["logits"], "opset_version": opset}
    if exporter == "dynamo":
        for name in EXPORTER_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                          verbose=False, dynamic_shapes={"images": DYNAMIC_AXES} if dynamic
                          else None, **names)
        return
    axes = {"images": DYNAMIC_AXES, "logits": DYNAMIC_AXES} if dynamic else None
    with warnings.catch_warnings():  # its deprecation and tracer warnings; checked after
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, dynamic_axes=axes, **names)


def _card_into_onnx(path: Path, card: ModelCard) -> None:
    """The card into the file's metadata; the file checked by onnx."""
    onnx = import_export_extra("onnx")
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _write_torchscript(model: nn.Module, example: Tensor, path: Path, card: ModelCard) -> None:
    """A traced TorchScript file with the card among its extra files."""
    with torch.no_grad(), warnings.catch_warnings():  # tracer warnings; checked after
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(model, example, check_trace=False)
        except Exception as error:  # the tracer refuses some graphs (segnet's unpooling)
            raise ConfigError(f"format=torchscript: {card.model} on {card.encoder} cannot be "
                              f"traced ({_first_line(error)}); use format=onnx") from error
    torch.jit.save(traced, str(path), _extra_files={CARD_FILE: card.to_json()})


def check_sizes(input_size: Sequence[int], dynamic: bool) -> list[list[int]]:
    """Sizes the export is compared with PyTorch at: the input size and, for a file that takes
    any size, one that is no multiple of an output stride."""
    height, width = input_size
    return [[height, width], [height + 8, width + 24]] if dynamic else [[height, width]]


@torch.no_grad()
def max_abs_diff(net: nn.Module, exported, sizes: Sequence[Sequence[int]],
                 batch: int) -> float:
    """The largest logit difference between `net` and `exported` on random inputs."""
    generator = torch.Generator().manual_seed(0)
    diffs = []
    for height, width in sizes:
        images = torch.randn(batch, 3, height, width, generator=generator)
        diffs.append((exported(images) - net(images)).abs().max().item())
    return max(diffs)


def _onnx_file(net: nn.Module, example: Tensor, path: Path, card: ModelCard, dynamic: bool,
               opset: int, sizes: list[list[int]]) -> tuple[str, float]:
    """`path` with the card, by the dynamo exporter or, where it fails or its file does not
    match PyTorch, by the TorchScript-based one: which one, and the file's difference."""
    problems = []
    for exporter in ONNX_EXPORTERS:
        try:
            _write_onnx(net, example, path, dynamic, opset, exporter)
            _card_into_onnx(path, card)
            diff = max_abs_diff(net, load_onnx_model(path)[0], sizes, len(example))
        except Exception as error:  # torch.export refuses some graphs that the tracer takes
            problems.append(f"the {exporter} exporter failed: {_first_line(error)}")
        else:
            if diff <= TOLERANCE:
                return exporter, diff
            problems.append(f"the {exporter} exporter's logits differ from PyTorch's by up to "
                            f"{diff:.3g}")
        log.warning("%s", problems[-1])
    reasons = "; ".join(problems)
    if dynamic:
        raise ConfigError(f"dynamic=true: {card.model} on {card.encoder} has no ONNX export that "
                          f"runs at every size ({reasons}); export a fixed size instead: "
                          "dynamic=false input_size=[h,w]")
    raise RuntimeError(f"{card.model} on {card.encoder}: {reasons}")


def export_net(net: SegmentationNet, card: ModelCard, path: Path, fmt: str,
               input_size: Sequence[int], dynamic: bool, opset: int = 18) -> dict:
    """Write `net` in eval mode to `path` as `fmt` (onnx or torchscript) with `card` inside:
    what was written, and its largest logit difference from PyTorch (TorchScript is dynamic)."""
    net = net.eval()
    dynamic = dynamic or fmt == "torchscript"
    # a batch of 2: torch.export would take a batch of 1 for a constant
    example = torch.randn(2 if dynamic else 1, 3, *input_size,
                          generator=torch.Generator().manual_seed(0))
    sizes = check_sizes(input_size, dynamic)
    partial = path.with_name(path.name + ".partial")  # `path` appears only once checked
    try:
        if fmt == "onnx":
            exporter, diff = _onnx_file(net, example, partial, card, dynamic, opset, sizes)
        else:
            exporter = "trace"
            _write_torchscript(net, example, partial, card)
            diff = max_abs_diff(net, torch.jit.load(str(partial)), sizes, len(example))
            if diff > TOLERANCE:
                raise ConfigError(f"format=torchscript: the traced {card.model} on "
                                  f"{card.encoder} differs from PyTorch by up to {diff:.3g}; "
                                  "use format=onnx")
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return {"format": fmt, "file": path.name, "exporter": exporter, "dynamic": dynamic,
            "input_size": list(input_size), **({"opset": opset} if fmt == "onnx" else {}),
            "input": INPUT, "output": OUTPUT, "max_abs_diff": diff, "checked_sizes": sizes}


def check_format(fmt: str) -> None:
    """Refuse a format other than onnx and torchscript, before the checkpoint is read."""
    if fmt not in FILES:
        raise ConfigError(f"format={fmt!r}: expected one of {', '.join(FILES)}")


def export_options(cfg: DictConfig) -> tuple[list[int], bool, int]:
    """Input size, dynamic and opset of an export config, checked; the input size defaults to
    the run's data.input_size."""
    size = cfg.input_size if cfg.input_size is not None else cfg.data.input_size
    size = OmegaConf.to_container(size) if OmegaConf.is_config(size) else size
    if not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size)):
        raise ConfigError(f"input_size={size!r}: expected [height, width] in pixels such as "
                          "input_size=[512,512], or null for the run's data.input_size")
    if not isinstance(cfg.dynamic, bool):
        raise ConfigError(f"dynamic={cfg.dynamic!r}: expected true or false")
    if not isinstance(cfg.opset, int) or isinstance(cfg.opset, bool) or cfg.opset < 7:
        raise ConfigError(f"opset={cfg.opset!r}: expected an ONNX opset number such as 18")
    return size, cfg.dynamic, cfg.opset


def export(cfg: DictConfig) -> tuple[dict, dict]:
    """Export `cfg.ckpt_path`'s network: model.onnx or model.pt, and model.json (its card,
    how it was exported and checked), into the export's run folder."""
    check_format(cfg.format)
    if cfg.format == "onnx":
        for name in ("onnx", "onnxscript", "onnxruntime"):
            import_export_extra(name)
    ckpt_path = Path(cfg.ckpt_path).expanduser().resolve()
    cfg, checkpoint = checkpoint_run_config(ckpt_path, cfg, EXPORT_OWNED)
    size, dynamic, opset = export_options(cfg)
    output_dir = Path(cfg.paths.output_dir)
    path = output_dir / FILES[cfg.format]
    if path.exists():
        raise FolderRefused(f"{path} already exists; choose a new hydra.run.dir "
                          "(nothing was changed)")
    refuse_run_folder(output_dir, "hydra.run.dir")
    check_config(cfg)
    save_run_config(cfg, output_dir)
    net = load_checkpoint_net(cfg, checkpoint)
    card = run_card(cfg, checkpoint.class_names, str(ckpt_path))
    del checkpoint  # its weights are in `net` now
    # the file's own size; a fixed preprocessing size follows it
    card = replace(card, input_size=size,
                   resize=size if isinstance(card.resize, list) else card.resize)
    written = export_net(net, card, path, cfg.format, size, dynamic, opset)
    record = {**asdict(card), **written, "checkpoint": str(ckpt_path), "versions": versions()}
    (output_dir / "model.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"exported {path} ({written['exporter']} exporter, logits within "
          f"{written['max_abs_diff']:.2g} of PyTorch) and {output_dir / 'model.json'}")
    return record, {"net": net, "card": card}
