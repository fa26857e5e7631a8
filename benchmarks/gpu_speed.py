"""The in-process parts of the GPU check (`benchmarks/gpu.py`), each run by it in a child
process of its own, so that a hang, a native crash or a broken CUDA context ends that part
only:

- `training`: UNet-ResNet34 training throughput at 512²×16 through seglab's own builders and
  Trainer on the synthetic scenes: fp32, bf16, bf16 + channels-last, and bf16 + channels-last
  + torch.compile (its compile time apart); the data-wait share of a step and the peak GPU
  memory of each;
- `inference`: batch-1 frames/s of seglab's nearest equivalents of MMSegmentation's FCN,
  PSPNet, DeepLabV3 and DeepLabV3+ R50-D8, built through seglab's model registry, in fp32 and
  under bf16 autocast, next to MMSegmentation's published V100 figures.

`python -m benchmarks.gpu_speed PART --rows FILE --seconds S [--toy]` writes the rows to FILE
after each one (a part stopped at its time limit keeps what it measured) and skips what would
not fit in S seconds. `--toy` runs the same code on the CPU at tiny sizes (figures mean
nothing; torch.compile traces with the `eager` backend instead of compiling).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from lightning import Callback, LightningModule, Trainer

from benchmarks.measure import Row, progress
from benchmarks.training import RUN_OVERRIDES, measured_trainer, synchronize
from seglab.data.synthetic import draw_scene
from seglab.engine.builders import build_datamodule, build_module
from seglab.runs.config import compose_config

PARTS = ("training", "inference")


@dataclass(frozen=True)
class TrainSetting:
    """The training cases' shared sizes: square inputs, images a step, unmeasured and measured
    steps."""

    size: int
    batch: int
    warmup: int
    timed: int


@dataclass(frozen=True)
class TrainCase:
    """One training configuration; skipped when fewer than `min_seconds` are left."""

    label: str
    precision: str
    overrides: tuple[str, ...] = ()
    min_seconds: float = 10.0


TRAINING = TrainSetting(size=512, batch=16, warmup=5, timed=20)
TOY_TRAINING = TrainSetting(size=32, batch=2, warmup=1, timed=1)
TRAIN_CASES = (
    TrainCase("fp32", "32-true"),
    TrainCase("bf16", "bf16-mixed"),
    TrainCase("bf16 + channels_last", "bf16-mixed", ("model.channels_last=true",)),
    TrainCase("bf16 + channels_last + compile", "bf16-mixed",
              ("model.channels_last=true", "model.compile=true"), min_seconds=60.0),
)


@dataclass(frozen=True)
class Net:
    """A seglab network measured at inference: its model config, extra overrides, what it is."""

    label: str
    model: str
    overrides: tuple[str, ...]
    what: str


NETS = (
    Net("FCN", "fcn", (), "torchvision fcn_resnet50: ResNet-50 dilated in layer3 and layer4, "
        "FCN head (3×3 conv 2048→512, 1×1 classifier); its auxiliary head is built but not run"),
    Net("PSPNet", "pspnet", (), "smp PSPNet: ResNet-50 stem to layer2 only (encoder_depth 3, "
        "stride 8 without dilation; layer3/layer4 built but not run), pyramid pooling 1/2/3/6 "
        "to 512 channels, ×8 bilinear upsampling"),
    Net("DeepLabV3", "deeplabv3", (), "torchvision deeplabv3_resnet50: ResNet-50 dilated in "
        "layer3 and layer4, ASPP 12/24/36 + image pooling; auxiliary head built but not run"),
    Net("DeepLabV3+", "deeplabv3plus", (), "smp DeepLabV3Plus as seglab configures it: "
        "ResNet-50 at output stride 16 (layer4 dilated), separable ASPP 12/24/36, decoder "
        "with the stride-4 features"),
    Net("DeepLabV3+ OS8", "deeplabv3plus", ("+model.encoder_output_stride=8",),
        "the same smp DeepLabV3Plus at output stride 8 (layer3 and layer4 dilated), "
        "as MMSegmentation's D8"),
)
# --toy: one torchvision network, one smp network, one with an override of its config
TOY_NETS = (NETS[0], NETS[1], NETS[4])
# (height, width, dataset whose class count and MMSegmentation figure apply)
SIZES = ((512, 512, "voc"), (512, 1024, "cityscapes"), (1024, 2048, "cityscapes"))
TOY_SIZES = ((32, 32, "voc"), (32, 64, "cityscapes"))
CLASSES = {"voc": 21, "cityscapes": 19}
# MMSegmentation's published inference speed (the "Inf time (fps)" column, measured on a
# V100 with batch 1 on the test pipeline: VOC resized to short side 512 (about 512×683),
# Cityscapes whole 1024×2048 images), from the README of each config folder of
# github.com/open-mmlab/mmsegmentation (configs/fcn, pspnet, deeplabv3, deeplabv3plus). The
# 40k VOC configs have no figure; the 20k ones are the same networks.
MMSEG_FPS = {
    ("fcn", "voc"): ("fcn_r50-d8_4xb4-20k_voc12aug-512x512", 23.28),
    ("fcn", "cityscapes"): ("fcn_r50-d8_4xb2-40k_cityscapes-512x1024", 4.17),
    ("pspnet", "voc"): ("pspnet_r50-d8_4xb4-20k_voc12aug-512x512", 23.59),
    ("pspnet", "cityscapes"): ("pspnet_r50-d8_4xb2-40k_cityscapes-512x1024", 4.07),
    ("deeplabv3", "voc"): ("deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512", 13.88),
    ("deeplabv3", "cityscapes"): ("deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024", 2.57),
    ("deeplabv3plus", "voc"): ("deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512", 21.0),
    ("deeplabv3plus", "cityscapes"): ("deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024",
                                      3.94),
}
MMSEG_TEST_SIZE = {"voc": "short side 512 (about 512×683)", "cityscapes": "1024×2048"}
WARMUP, ITERATIONS, SECONDS = 10, 50, 2.0  # inference: warm-up calls, then up to 50 or 2 s
TOY_WARMUP, TOY_ITERATIONS = 1, 2
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


class RowFile:
    """The part's rows, rewritten whole after each new one."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows = path, []

    def add(self, row: Row) -> None:
        self.rows.append(row.as_dict())
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.rows, indent=2, default=str))
        partial.replace(self.path)


class Deadline:
    """This part's time box: seconds left, counted from its creation."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def one_line(error: BaseException) -> str:
    """An error as one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def traceback_tail(lines: int = 15) -> list[str]:
    """The last lines of the traceback being handled."""
    return traceback.format_exc().splitlines()[-lines:]


def device_for(toy: bool) -> torch.device:
    return torch.device("cpu" if toy else "cuda")


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# --- training -------------------------------------------------------------------------------

class StepTimes(Callback):
    """When each training step started (its batch on the device, the GPU idle) and ended (its
    GPU work done); the gap between one step's end and the next one's start is the wait for
    data: loading, transfer, normalisation on the device and Lightning's loop."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started: list[float] = []
        self.ended: list[float] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch,
                             batch_idx: int) -> None:
        synchronize(self.device)
        self.started.append(time.perf_counter())

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        synchronize(self.device)
        self.ended.append(time.perf_counter())


def step_figures(started: Sequence[float], ended: Sequence[float], warmup: int,
                 batch: int) -> dict[str, float]:
    """Images/s over the steps after the `warmup` first (from the end of the last warm-up step
    to the end of the last step), the share of that time spent waiting for data, the mean
    step and median compute time, and how much longer the warm-up steps' compute took than
    steady ones (torch.compile's compile time, for instance)."""
    if warmup < 1 or len(ended) <= warmup:
        raise ValueError(f"need more than {warmup} steps after at least one warm-up step, "
                         f"got {len(ended)}")
    timed = range(warmup, len(ended))
    span = ended[-1] - ended[warmup - 1]
    waits = sum(started[index] - ended[index - 1] for index in timed)
    computes = [end - start for start, end in zip(started, ended, strict=True)]
    steady = statistics.median(computes[warmup:])
    return {"images_per_s": batch * len(timed) / span, "data_wait_share": waits / span,
            "step_ms": 1000 * span / len(timed), "compute_ms": 1000 * steady,
            "warmup_extra_s": sum(computes[:warmup]) - warmup * steady}


def train_overrides(setting: TrainSetting, case: TrainCase, toy: bool) -> list[str]:
    """seglab's train config of one case: UNet-ResNet34 from scratch on the synthetic scenes,
    one epoch long enough for every step, validation and checkpoints off."""
    steps = setting.warmup + setting.timed
    return ["model=unet", "encoder=resnet34", "encoder.weights=null", "data=synthetic",
            f"data.input_size=[{setting.size},{setting.size}]",
            f"data.batch_size={setting.batch}", "data.num_workers=auto",
            f"data.lengths={{train:{setting.batch * (steps + 1)},val:16,test:16}}",
            *RUN_OVERRIDES, "++trainer.limit_val_batches=0", f"++trainer.max_steps={steps}",
            f"trainer.accelerator={'cpu' if toy else 'gpu'}", "trainer.devices=1",
            f"trainer.precision={case.precision}", "model.channels_last=false",
            "model.compile=false", *case.overrides]


def _draw(arguments: tuple) -> tuple[np.ndarray, np.ndarray]:
    image, mask = draw_scene(*arguments)
    return image, mask.astype(np.uint8)


def draw_scenes(dataset, processes: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Every scene of a synthetic split, drawn by `processes` processes, in the form its cache
    keeps them (image, uint8 mask)."""
    jobs = [(dataset.seed, dataset.split, index, dataset.image_size, dataset.num_classes,
             dataset.max_objects, dataset.max_overlap) for index in range(len(dataset))]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        return dict(enumerate(pool.map(_draw, jobs, chunksize=4)))


def scene_row(setting: TrainSetting, folder: Path, toy: bool) -> tuple[Row, dict]:
    """The train split's scenes drawn once on every core (loader workers inherit them through
    their split's cache, as from the second epoch of a long run), and how fast that went."""
    cfg = compose_config("train", folder, train_overrides(setting, TRAIN_CASES[0], toy))
    dataset = build_datamodule(cfg).split("train")
    processes = os.cpu_count() or 1
    started = time.perf_counter()
    scenes = draw_scenes(dataset, processes)
    seconds = time.perf_counter() - started
    per_scene = seconds * processes / len(scenes)
    row = Row("training", f"synthetic scenes {setting.size}², drawn in {processes} processes",
              "scenes/s", {"value": len(scenes) / seconds},
              extra={"scenes": len(scenes), "seconds": seconds,
                     "ms_per_scene_per_process": 1000 * per_scene,
                     "cached": getattr(dataset, "scenes", None) is not None,
                     "note": "uncached, a loader with W workers draws about W / "
                             "ms_per_scene_per_process × 1000 scenes/s"})
    return row, scenes


def fill_cache(datamodule, scenes: dict) -> bool:
    """Put the drawn scenes into the train split's cache; False when it keeps none."""
    cache = getattr(datamodule.split("train"), "scenes", None)
    if cache is None:
        return False
    cache.update(scenes)
    return True


def stop_workers(datamodule) -> None:
    """End the persistent loader workers of a finished fit (they would idle until exit)."""
    iterator = getattr(getattr(datamodule, "_train_loader", None), "_iterator", None)
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def train_case_row(setting: TrainSetting, case: TrainCase, scenes: dict, folder: Path,
                   toy: bool) -> Row:
    """One case: seglab's fit for warm-up + timed steps, clocked step by step."""
    device = device_for(toy)
    cfg = compose_config("train", folder, train_overrides(setting, case, toy))
    datamodule = build_datamodule(cfg)
    cached = fill_cache(datamodule, scenes)
    module = build_module(cfg, datamodule.class_names, datamodule)
    clock = StepTimes(device)
    trainer = measured_trainer(cfg, clock)
    reset_peak(device)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        stop_workers(datamodule)
    figures = step_figures(clock.started, clock.ended, setting.warmup, setting.batch)
    extra = {key: value for key, value in figures.items() if key != "images_per_s"}
    compiled = getattr(module.net.forward_padded, "compiled", False)
    extra.update(peak_memory_gib=peak_gib(device), precision=case.precision,
                 overrides=list(case.overrides), loader_workers=datamodule.num_workers,
                 scenes_prefilled=cached, steps=len(clock.ended), warmup_steps=setting.warmup,
                 compiled=None if compiled is False else compiled is not None)
    if compiled is not False:
        extra["compile_seconds"] = figures["warmup_extra_s"]
    label = f"unet resnet34 {setting.size}²×{setting.batch} {case.label}"
    return Row("training", label, "img/s", {"value": figures["images_per_s"]}, extra=extra)


def use_eager_compile() -> None:
    """--toy: torch.compile traces with the `eager` backend (seconds, no C++ compiler) instead
    of inductor (minutes on a CPU)."""
    torch.compile = functools.partial(torch.compile, backend="eager")


def run_training(rows: RowFile, deadline: Deadline, toy: bool) -> None:
    setting = TOY_TRAINING if toy else TRAINING
    if toy:
        use_eager_compile()
    with tempfile.TemporaryDirectory(prefix="seglab-gpu-training-") as folder:
        progress("training: drawing the synthetic scenes once on every core")
        row, scenes = scene_row(setting, Path(folder) / "scenes", toy)
        rows.add(row)
        for index, case in enumerate(TRAIN_CASES):
            label = f"unet resnet34 {setting.size}²×{setting.batch} {case.label}"
            if not toy and deadline.left() < case.min_seconds:
                rows.add(Row("training", label, "img/s", {}, extra={
                    "error": f"skipped: {deadline.left():.0f} s left in this part's time box, "
                             f"{case.min_seconds:.0f} s needed"}))
                continue
            progress(f"training: {label}")
            rows.add(guarded(lambda case=case, index=index: train_case_row(
                setting, case, scenes, Path(folder) / str(index), toy),
                "training", label, "img/s"))


def guarded(measure: Callable[[], Row], part: str, case: str, unit: str) -> Row:
    """The row `measure` makes, or a row holding its error in one line."""
    try:
        return measure()
    except Exception as error:  # one case's failure is a result; the part goes on
        progress(f"{part}: {case}: failed: {one_line(error)}")
        return Row(part, case, unit, {}, extra={"error": one_line(error),
                                                "tail": traceback_tail()})


# --- inference ------------------------------------------------------------------------------

def build_net(net: Net, classes: int, folder: Path) -> torch.nn.Module:
    """The network as seglab's registry builds it from its model config, random weights."""
    cfg = compose_config("train", folder, [f"model={net.model}", "encoder=resnet50",
                                           "encoder.weights=null", f"data.num_classes={classes}",
                                           *net.overrides])
    return instantiate(cfg.model)


def output_stride(model: torch.nn.Module, device: torch.device, side: int = 256) -> int:
    """Input side over the side of the encoder's deepest feature map that the network uses."""
    with torch.inference_mode():
        features = model.encoder(torch.zeros(1, 3, side, side, device=device))
    deepest = features["out"] if isinstance(features, dict) else features[-1]
    return side // deepest.shape[-1]


def parameters_run(model: torch.nn.Module, device: torch.device, side: int = 64) -> int:
    """Parameters of the modules an inference forward pass calls (unused stages and auxiliary
    heads left out)."""
    called: set[int] = set()
    hooks = [module.register_forward_hook(lambda module, *_: called.add(id(module)))
             for module in model.modules()]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, side, side, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(parameter.numel() for module in model.modules() if id(module) in called
               for parameter in module.parameters(recurse=False))


def autocast(dtype: torch.dtype | None, device: torch.device) -> AbstractContextManager:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def frames_per_second(model: torch.nn.Module, image: torch.Tensor, dtype: torch.dtype | None,
                      toy: bool) -> tuple[float, int]:
    """Batch-1 forward passes per second after the warm-up: up to ITERATIONS of them, or as
    many as fit in SECONDS; and how many were timed."""
    warmup, iterations = (TOY_WARMUP, TOY_ITERATIONS) if toy else (WARMUP, ITERATIONS)
    with torch.inference_mode(), autocast(dtype, image.device):
        for _ in range(warmup):
            model(image)
        synchronize(image.device)
        started, count = time.perf_counter(), 0
        while count < iterations and (count < 5 or time.perf_counter() - started < SECONDS):
            model(image)
            count += 1
        synchronize(image.device)
    return count / (time.perf_counter() - started), count


def describe_net(net: Net, model: torch.nn.Module, classes: int, device: torch.device,
                 toy: bool) -> dict:
    stride = output_stride(model, device, 64 if toy else 256)
    return {"model": net.model, "encoder": "resnet50", "overrides": list(net.overrides),
            "what": net.what, "classes": classes, "output_stride": stride,
            "params": sum(parameter.numel() for parameter in model.parameters()),
            "params_run": parameters_run(model, device)}


def inference_rows(net: Net, dataset: str, sizes: Sequence[tuple[int, int, str]],
                   folder: Path, toy: bool) -> list[Row]:
    """One network for one dataset's classes: a row per size and precision."""
    device = device_for(toy)
    classes = CLASSES[dataset]
    model = build_net(net, classes, folder).to(device).eval()
    description = describe_net(net, model, classes, device, toy)
    config, fps = MMSEG_FPS.get((net.model, dataset), (None, None))
    rows = []
    for height, width, _ in [size for size in sizes if size[2] == dataset]:
        image = torch.randn(1, 3, height, width, device=device)
        for label, dtype in PRECISIONS.items():
            case = f"{net.label} R50 {height}×{width} {label}, {classes} classes"
            progress(f"inference: {case}")
            measured, count = frames_per_second(model, image, dtype, toy)
            values = {"seglab": measured, **({} if fps is None else {"mmseg V100": fps})}
            rows.append(Row("inference", case, "frames/s", values,
                            ratio=None if fps is None else measured / fps,
                            extra={**description, "precision": label, "timed_calls": count,
                                   "input": [height, width], "mmseg_config": config,
                                   "mmseg_test_size": MMSEG_TEST_SIZE[dataset]}))
    return rows


def run_inference(rows: RowFile, deadline: Deadline, toy: bool) -> None:
    sizes = TOY_SIZES if toy else SIZES
    with tempfile.TemporaryDirectory(prefix="seglab-gpu-inference-") as folder:
        for net in TOY_NETS if toy else NETS:
            for dataset in CLASSES:
                case = f"{net.label} R50, {CLASSES[dataset]} classes"
                if deadline.left() < 5:
                    rows.add(Row("inference", case, "frames/s", {}, extra={
                        "error": "skipped: this part's time box is spent"}))
                    continue
                try:
                    for row in inference_rows(net, dataset, sizes, Path(folder), toy):
                        rows.add(row)
                except Exception as error:  # one network's failure is a result
                    progress(f"inference: {case}: failed: {one_line(error)}")
                    rows.add(Row("inference", case, "frames/s", {},
                                 extra={"error": one_line(error), "tail": traceback_tail()}))
                reset_peak(device_for(toy))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_speed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--rows", type=Path, required=True, help="JSON file of the rows")
    parser.add_argument("--seconds", type=float, default=300.0, help="this part's time box")
    parser.add_argument("--toy", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from benchmarks.__main__ import quiet_libraries

    quiet_libraries()
    rows = RowFile(args.rows)
    run = {"training": run_training, "inference": run_inference}[args.part]
    run(rows, Deadline(args.seconds), args.toy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
