"""Benchmark "inference": seglab-predict's images/s against a hand-written script doing the same
work for the same pictures (read, resize, normalise, forward, resize the logits back, argmax,
write the mask PNG), at batch 8 and at batch 1; against a bare `model(x)` loop over the same
pictures decoded and preprocessed beforehand (the ceiling); the cost of its overlays; and the
peak memory of seglab-predict in slide mode on a large photo.

The network (`--model`, `--encoder`: UNet on ResNet-18 by default, seglab-train's default) is
trained for one tiny epoch first, so every side loads the same checkpoint; its weights do not
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

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from benchmarks.measure import Row, compare, interleaved, peak_rss_mib, progress, single
from benchmarks.scenes import write_pictures
from seglab.data.files import read_image
from seglab.engine.training import train
from seglab.inference.card import ModelCard
from seglab.inference.inputs import to_network_input
from seglab.inference.prediction import load_model, pick_device, predict, prediction_card
from seglab.runs.config import compose_config

NAME = "inference"
GOAL = 1.0  # seglab-predict's images/s over the hand-written script's
BATCHES = (8, 1)
# the fewest steps and files that give a checkpoint: the weights do not change the speed
TINY_TRAINING = ["trainer.max_epochs=1", "data.lengths={train:16,val:8,test:8}",
                 "data.input_size=[32,32]", "trainer.num_sanity_val_steps=0", "logger=none",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                 "callbacks.prediction_images.every_n_epochs=0",
                 "callbacks.model_checkpoint.save_last=false", "~callbacks.step_checkpoint"]
TOY = {"images": 2, "size": 64, "picture": (60, 80), "photo": (300, 400)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inference (benchmark 'inference')")
    group.add_argument("--inference-images", type=int, default=16, metavar="N",
                       help=f"JPEGs predicted per measurement (default: %(default)s; "
                            f"--toy: {TOY['images']})")
    group.add_argument("--inference-picture", type=int, nargs=2, default=[480, 640],
                       metavar=("HEIGHT", "WIDTH"),
                       help=f"their size (default: %(default)s; --toy: {TOY['picture']})")
    group.add_argument("--inference-size", type=int, default=512, metavar="PX",
                       help="the network's input side the pictures are resized to, also the "
                            f"slide-mode tile (default: %(default)s; --toy: {TOY['size']})")
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


def predict_overrides(checkpoint: Path, pictures: Path, output: Path, size: int,
                      batch_size: int = 8, overlays: bool = False) -> list[str]:
    """seglab-predict on `pictures` in whole mode, resized to `size`² for the network."""
    return [f"ckpt_path={checkpoint}", f"input={pictures}", f"output={output}",
            "predict.mode=whole", f"predict.resize=[{size},{size}]",
            f"predict.batch_size={batch_size}", f"predict.overlays={str(overlays).lower()}"]


def predict_rate(work: Path, overrides: Callable[[Path], list[str]]) -> Callable[[], float]:
    """A measurement: seglab-predict's library entry into a new folder in `work`; images/s from
    its first picture to its last file written (predict's own clock: model loading and
    start-up are outside it; its loader workers' start is inside)."""
    runs = itertools.count()

    def measure() -> float:
        output = work / f"run_{next(runs)}"
        with quietly():
            summary, _ = predict(compose_config("predict", output, overrides(output)))
        return summary["images"] / summary["seconds"]
    return measure


def script_masks(net: torch.nn.Module, card: ModelCard, paths: Sequence[Path],
                 output: Path, device: torch.device) -> None:
    """What a user's own script does: read each picture, resize it to the card's size,
    normalise, run the network, resize the logits back to the picture's size, argmax, and
    write the class indices as a palette PNG; all in one process, a batch at a time."""
    height, width = card.resize
    mean = np.asarray(card.mean, dtype=np.float32) * 255
    std = np.asarray(card.std, dtype=np.float32) * 255
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:len(card.palette)] = card.palette
    pictures = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    inputs = torch.stack([torch.from_numpy(
        ((cv2.resize(picture, (width, height)) - mean) / std).transpose(2, 0, 1).copy())
        for picture in pictures]).to(device)
    with torch.no_grad():
        logits = net(inputs)
    for path, picture, picture_logits in zip(paths, pictures, logits, strict=True):
        resized = F.interpolate(picture_logits[None], size=picture.shape[:2], mode="bilinear",
                                align_corners=False)
        mask = Image.fromarray(resized[0].argmax(0).byte().cpu().numpy(), mode="P")
        mask.putpalette(palette.flatten().tolist())
        mask.save(output / f"{path.stem}.png")


def script_rate(net: torch.nn.Module, card: ModelCard, paths: Sequence[Path], batch_size: int,
                device: torch.device, work: Path) -> Callable[[], float]:
    """A measurement: the hand-written script over the pictures in batches of `batch_size`
    into a new folder; images/s from its first read to its last mask written."""
    runs = itertools.count()

    def measure() -> float:
        output = work / f"script_{batch_size}_{next(runs)}"
        output.mkdir(parents=True)
        started = time.perf_counter()
        for start in range(0, len(paths), batch_size):
            script_masks(net, card, paths[start:start + batch_size], output, device)
        return len(paths) / (time.perf_counter() - started)
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


def sides(checkpoint: Path, pictures: Sequence[Path], size: int,
          work: Path) -> dict[str, Callable[[], float]]:
    """Every side at batch 8 and 1: seglab-predict (masks only, as the script writes), the
    hand-written script and the bare loop, on the checkpoint's network loaded as
    seglab-predict loads it; and seglab-predict with its default overlays at batch 8."""
    folder = pictures[0].parent
    cfg = compose_config("predict", work / "bare",
                         predict_overrides(checkpoint, folder, work / "bare", size))
    net, card, cfg = load_model(cfg)
    options = OmegaConf.to_container(cfg.predict, resolve=True)
    card = prediction_card(card, options, options["mode"])
    device = pick_device(options["device"])
    net = net.to(device).eval()
    inputs = [to_network_input(read_image(path), card) for path in pictures]
    def seglab(batch: int, overlays: bool = False) -> Callable[[], float]:
        return predict_rate(work / f"predicted_{batch}{'_overlays' * overlays}",
                            lambda output: predict_overrides(checkpoint, folder, output, size,
                                                             batch, overlays))
    measured = {}
    for batch in BATCHES:
        measured[f"seglab-predict batch {batch}"] = seglab(batch)
        measured[f"script batch {batch}"] = script_rate(net, card, pictures, batch, device, work)
        measured[f"bare batch {batch}"] = bare_rate(net, inputs, batch, device)
    measured["seglab-predict overlays batch 8"] = seglab(8, overlays=True)
    return measured


def slide_peak_rss(checkpoint: Path, photo: Path, tile: int, folder: Path) -> float:
    """Peak RSS in MiB of a fresh `seglab-predict` process (its loader workers' peaks
    included) predicting `photo` in slide mode with `tile`² tiles, run in `folder`. Tiles do
    not overlap: the overlap changes the time, not the buffers."""
    folder.mkdir()
    return peak_rss_mib([str(Path(sys.executable).parent / "seglab-predict"),
                         f"ckpt_path={checkpoint}", f"input={photo}",
                         f"output={folder / 'predicted'}", "predict.mode=slide",
                         f"predict.tile=[{tile},{tile}]", "predict.overlap=0"], folder)


def rows_of(figures: dict[str, list[float]], setting: str) -> list[Row]:
    """The goal rows (seglab-predict against the script), the ceiling rows (against the bare
    loop) and the overlays' cost."""
    def pair(first: str, second: str) -> dict[str, list[float]]:
        return {first.split(" batch")[0]: figures[first], second.split(" batch")[0]:
                figures[second]}
    rows = [compare(NAME, f"predict vs hand-written script batch {batch}, {setting}",
                    "images/s", pair(f"seglab-predict batch {batch}", f"script batch {batch}"),
                    GOAL) for batch in BATCHES]
    rows += [compare(NAME, f"predict vs bare model(x) batch {batch}, {setting}", "images/s",
                     pair(f"seglab-predict batch {batch}", f"bare batch {batch}"))
             for batch in BATCHES]
    rows.append(compare(NAME, f"predict with overlays vs masks only batch 8, {setting}",
                        "images/s", {"overlays": figures["seglab-predict overlays batch 8"],
                                     "masks only": figures["seglab-predict batch 8"]}))
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    """Train the tiny checkpoint, write the pictures, measure every side interleaved, then
    the slide-mode memory; the rows."""
    images = TOY["images"] if args.toy else args.inference_images
    size = TOY["size"] if args.toy else args.inference_size
    picture_height, picture_width = TOY["picture"] if args.toy else args.inference_picture
    height, width = TOY["photo"] if args.toy else args.inference_photo
    with tempfile.TemporaryDirectory(prefix="seglab-bench-inference-") as folder:
        work = Path(folder)
        progress(f"{NAME}: training a checkpoint for one tiny epoch")
        checkpoint = train_checkpoint(work / "run", args.model, args.encoder)
        pictures = write_pictures(work / "pictures", images, picture_height, picture_width)
        measured = sides(checkpoint, pictures, size, work)
        progress(f"{NAME}: {', '.join(measured)}; {images} JPEGs "
                 f"{picture_width}×{picture_height} at {size}²")
        figures = interleaved(measured, args.repeats, args.warmup)
        progress(f"{NAME}: peak RSS of seglab-predict in slide mode on a {width}×{height} JPEG")
        photo = write_pictures(work / "photo", 1, height, width)[0]
        peak = slide_peak_rss(checkpoint, photo, size, work / "slide")
    setting = (f"{images} JPEGs {picture_width}×{picture_height} → {size}×{size}, "
               f"{args.model} {args.encoder}")
    return [*rows_of(figures, setting),
            single(NAME, f"predict slide {width}×{height} JPEG, {size}×{size} tiles, "
                   "peak RSS", "MiB", [peak])]
