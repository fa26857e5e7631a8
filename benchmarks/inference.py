"""Benchmark "inference": seglab-predict's images/s (read, infer, write the mask) against a
bare `model(x)` loop over the same images decoded beforehand, and the peak memory of
seglab-predict in slide mode on a large photo.

The network (`--model`, `--encoder`: UNet on ResNet-18 by default, seglab-train's default) is
trained for one tiny epoch first, so both sides load the same checkpoint; its weights do not
change the speed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import torch
from omegaconf import OmegaConf

from benchmarks.measure import Row, compare, interleaved, peak_rss_mib, progress, single
from benchmarks.scenes import write_pictures
from seglab.data.files import read_image
from seglab.engine.training import train
from seglab.inference.inputs import to_network_input
from seglab.inference.prediction import load_model, pick_device, predict, prediction_card
from seglab.runs.config import compose_config

NAME = "inference"
GOAL = 0.9  # seglab-predict's images/s over the bare loop's
# the fewest steps and files that give a checkpoint: the weights do not change the speed
TINY_TRAINING = ["trainer.max_epochs=1", "data.lengths={train:16,val:8,test:8}",
                 "data.input_size=[32,32]", "trainer.num_sanity_val_steps=0", "logger=none",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                 "callbacks.prediction_images.every_n_epochs=0",
                 "callbacks.model_checkpoint.save_last=false", "~callbacks.step_checkpoint"]
TOY = {"images": 2, "size": 128, "photo": (300, 400)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inference (benchmark 'inference')")
    group.add_argument("--inference-images", type=int, default=8, metavar="N",
                       help=f"square JPEGs predicted per measurement (default: %(default)s; "
                            f"--toy: {TOY['images']})")
    group.add_argument("--inference-size", type=int, default=512, metavar="PX",
                       help=f"their side, also the slide-mode tile (default: %(default)s; "
                            f"--toy: {TOY['size']})")
    group.add_argument("--inference-photo", type=int, nargs=2, default=[3000, 4000],
                       metavar=("HEIGHT", "WIDTH"),
                       help="the photo whose slide-mode prediction's peak memory is measured "
                            f"(default: %(default)s; --toy: {TOY['photo']})")


@contextmanager
def quietly() -> Iterator[None]:
    """Without the entry points' printed summaries, log lines and warnings: the harness prints
    its own table."""
    logging.disable(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def train_checkpoint(folder: Path, model: str, encoder: str) -> Path:
    """One tiny epoch of `model` on `encoder` in `folder`; its best checkpoint."""
    with quietly():
        train(compose_config("train", folder,
                             [f"model={model}", f"encoder={encoder}", *TINY_TRAINING]))
    return folder / "checkpoints" / "best.ckpt"


def predict_overrides(checkpoint: Path, pictures: Path, output: Path) -> list[str]:
    """seglab-predict on `pictures` in whole mode at the pictures' own size."""
    return [f"ckpt_path={checkpoint}", f"input={pictures}", f"output={output}",
            "predict.mode=whole", "predict.resize=null"]


def predict_rate(checkpoint: Path, pictures: Path, work: Path) -> Callable[[], float]:
    """A measurement: seglab-predict's library entry into a new output folder; images/s from
    its first picture to its last (predict's own clock: model loading and start-up are
    outside it; its loader workers' start is inside)."""
    runs = itertools.count()

    def measure() -> float:
        output = work / f"predicted_{next(runs)}"
        with quietly():
            summary, _ = predict(compose_config(
                "predict", output, predict_overrides(checkpoint, pictures, output)))
        return summary["images"] / summary["seconds"]
    return measure


def bare_rate(net: torch.nn.Module, inputs: Sequence[torch.Tensor], batch_size: int,
              device: torch.device) -> Callable[[], float]:
    """A measurement: `net(x)` over the inputs in batches of `batch_size`, nothing else;
    images/s."""
    batches = [torch.stack(list(inputs[start:start + batch_size]))
               for start in range(0, len(inputs), batch_size)]

    def measure() -> float:
        started = time.perf_counter()
        with torch.no_grad():
            for batch in batches:
                net(batch.to(device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return len(inputs) / (time.perf_counter() - started)
    return measure


def bare_sides(checkpoint: Path, pictures: Sequence[Path],
               work: Path) -> tuple[dict[str, Callable[[], float]], int]:
    """The bare loops at batch 1 and at the batch seglab-predict forms (its batch size, or
    fewer pictures), on the checkpoint's network loaded as seglab-predict loads it, over the
    pictures read and preprocessed as it does; and that batch."""
    cfg = compose_config("predict", work / "bare",
                         predict_overrides(checkpoint, pictures[0].parent, work / "bare"))
    net, card, cfg = load_model(cfg)
    options = OmegaConf.to_container(cfg.predict, resolve=True)
    card = prediction_card(card, options, options["mode"])
    device = pick_device(options["device"])
    inputs = [to_network_input(read_image(path), card) for path in pictures]
    batch_size = min(int(options["batch_size"]), len(pictures))
    net = net.to(device)
    return {f"bare batch {size}": bare_rate(net, inputs, size, device)
            for size in dict.fromkeys((1, batch_size))}, batch_size


def slide_peak_rss(checkpoint: Path, photo: Path, tile: int, folder: Path) -> float:
    """Peak RSS in MiB of a fresh `seglab-predict` process (its loader workers' peaks
    included) predicting `photo` in slide mode with `tile`² tiles, run in `folder`. Tiles do
    not overlap: the overlap changes the time, not the buffers."""
    folder.mkdir()
    return peak_rss_mib([str(Path(sys.executable).parent / "seglab-predict"),
                         f"ckpt_path={checkpoint}", f"input={photo}",
                         f"output={folder / 'predicted'}", "predict.mode=slide",
                         f"predict.tile=[{tile},{tile}]", "predict.overlap=0"], folder)


def run(args: argparse.Namespace) -> list[Row]:
    """Train the tiny checkpoint, write the pictures, measure both sides interleaved, then the
    slide-mode memory; the rows."""
    images = TOY["images"] if args.toy else args.inference_images
    size = TOY["size"] if args.toy else args.inference_size
    height, width = TOY["photo"] if args.toy else args.inference_photo
    with tempfile.TemporaryDirectory(prefix="seglab-bench-inference-") as folder:
        work = Path(folder)
        progress(f"{NAME}: training a checkpoint for one tiny epoch")
        checkpoint = train_checkpoint(work / "run", args.model, args.encoder)
        pictures = write_pictures(work / "pictures", images, size, size)
        bare, batch_size = bare_sides(checkpoint, pictures, work)
        progress(f"{NAME}: seglab-predict vs {' and '.join(bare)}, {images} JPEGs {size}²")
        figures = interleaved({"seglab-predict": predict_rate(checkpoint, work / "pictures", work),
                               **bare}, args.repeats, args.warmup)
        progress(f"{NAME}: peak RSS of seglab-predict in slide mode on a {width}×{height} JPEG")
        photo = write_pictures(work / "photo", 1, height, width)[0]
        peak = slide_peak_rss(checkpoint, photo, size, work / "slide")
    setting = f"whole {size}×{size}, {images} JPEGs, {args.model} {args.encoder}"
    rows = [compare(NAME, f"predict vs bare model(x) batch {batch}, {setting}", "images/s",
                    {"seglab-predict": figures["seglab-predict"],
                     "bare": figures[f"bare batch {batch}"]}, GOAL)
            for batch in dict.fromkeys((batch_size, 1))]
    rows.append(single(NAME, f"predict slide {width}×{height} JPEG, {size}×{size} tiles, "
                       "peak RSS", "MiB", [peak]))
    return rows
