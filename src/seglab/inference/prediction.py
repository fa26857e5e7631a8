"""Prediction: a model (a seglab checkpoint, an exported ONNX file, or published weights)
pointed at images, folders, globs or videos; masks, overlays and class shares on disk."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from seglab.core.errors import ConfigError, FolderRefused
from seglab.data.datamodule import loader_workers
from seglab.data.files import DataError
from seglab.engine.metrics import predicted_classes
from seglab.inference.card import ModelCard
from seglab.inference.engine import InferenceOptions, options_from_config, predict_logits
from seglab.inference.inputs import (
    PictureDataset,
    SameSizeBatches,
    collate_pictures,
    image_size,
    list_inputs,
    processed_size,
    to_network_input,
)
from seglab.inference.loading import (
    load_checkpoint_net,
    load_published_net,
    published_card,
    run_card,
)
from seglab.inference.outputs import PictureWriter, unique_names
from seglab.inference.progress import Throughput
from seglab.inference.video import predict_video
from seglab.runs.config import check_config
from seglab.runs.folder import refuse_run_folder, save_run_config
from seglab.runs.results import read_status, versions, write_metrics_json
from seglab.runs.run_config import checkpoint_run_config

RECORD = "predictions.json"
PREDICT_OWNED = ("paths", "logger", "task_name", "ckpt_path", "onnx_path", "input", "output",
                 "predict", "optimized_metric")
# above this many logit values a picture's mask is upsampled from the network's size
# instead of its logits (a 4000×3000 photo × 21 classes would need 1 GB of logits)
MAX_UPSAMPLED_LOGITS = 2**27


def load_model(cfg: DictConfig) -> tuple[object, ModelCard, DictConfig]:
    """The network, its card and the config in force: from `onnx_path`, from `ckpt_path`
    (the run's own config with this command's overrides), or from published weights named
    by `model.weights`."""
    if cfg.get("onnx_path"):
        from seglab.inference.onnx_model import load_onnx_model
        net, card = load_onnx_model(Path(cfg.onnx_path).expanduser())
        return net, card, cfg
    if cfg.get("ckpt_path"):
        ckpt_path = Path(cfg.ckpt_path).expanduser().resolve()
        merged, checkpoint = checkpoint_run_config(ckpt_path, cfg, PREDICT_OWNED)
        card = run_card(merged, checkpoint.class_names, str(ckpt_path))
        return load_checkpoint_net(merged, checkpoint), card, merged
    if OmegaConf.select(cfg, "model.weights"):
        return load_published_net(cfg), published_card(cfg), cfg
    raise ConfigError("seglab-predict needs a model: ckpt_path=<run>/checkpoints/best.ckpt, "
                      "onnx_path=<model.onnx from seglab-export>, or published weights such "
                      "as model=deeplabv3 encoder=resnet101 model.weights=COCO_WITH_VOC_LABELS_V1")


def prediction_card(card: ModelCard, predict: dict, mode: str) -> ModelCard:
    """The card with the preprocessing size `predict.resize` asks for: `auto` keeps the
    model's own, except that slide mode keeps a picture's size rather than squash it to the
    training size."""
    resize = predict.get("resize", "auto")
    if resize == "auto":
        resize = None if mode == "slide" and isinstance(card.resize, list) else card.resize
    elif resize is not None and not isinstance(resize, int) and not (
            isinstance(resize, list) and len(resize) == 2):
        raise ConfigError(f"predict.resize={resize!r}: expected auto, null, a shorter-side "
                          "length in pixels, or [height, width]")
    return ModelCard(**{**card.__dict__, "resize": resize})


def picture_workers(option: int | str, device: torch.device) -> int:
    """`predict.num_workers`: a count, or "auto": on a GPU the cores this process may use (at
    most 8: they read the next pictures while the GPU computes); on a CPU none, since the
    network's threads already use every core (2 cores, 16 JPEGs at 512²: 5.7 images/s without
    workers, 4.9 with two at batch 1; 3.9 and 3.7 at batch 8)."""
    if option == "auto":
        return loader_workers("auto") if device.type == "cuda" else 0
    return int(option)


def pick_device(name: str) -> torch.device:
    """`predict.device`: auto (cuda when available), cpu, cuda or cuda:N."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (str(name).startswith("cuda") and torch.cuda.is_available()):
        raise ConfigError(f"predict.device={name!r}: expected auto, cpu or cuda[:N] "
                          f"(CUDA is {'' if torch.cuda.is_available() else 'not '}available)")
    return torch.device(name)


class Predictor:
    """Masks at the pictures' own sizes from a batch of network inputs."""

    def __init__(self, net, card: ModelCard, options: InferenceOptions,
                 device: torch.device) -> None:
        self.net, self.card, self.options, self.device = net, card, options, device

    def masks(self, inputs: torch.Tensor, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Each picture's class map at its own size: logits resized (bilinear) and reduced on
        the device, brought to the host once per batch as small integers."""
        logits = predict_logits(self.net, inputs.to(self.device), self.options)
        masks = [self._class_map(picture_logits, tuple(size))
                 for picture_logits, size in zip(logits, sizes, strict=True)]
        dtype = torch.uint8 if self.card.num_classes <= 256 else torch.int32
        if len({mask.shape for mask in masks}) == 1:
            return list(torch.stack(masks).to(dtype).cpu().numpy())
        return [mask.to(dtype).cpu().numpy() for mask in masks]

    @staticmethod
    def _class_map(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(logits.shape[-2:]) == size:
            return predicted_classes(logits, 0)
        if logits.shape[0] * size[0] * size[1] <= MAX_UPSAMPLED_LOGITS:
            return predicted_classes(F.interpolate(logits[None], size=size, mode="bilinear",
                                                   align_corners=False)[0], 0)
        return F.interpolate(predicted_classes(logits, 0)[None, None].float(), size=size,
                             mode="nearest")[0, 0].long()

    def masks_of_frames(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        inputs = torch.stack([to_network_input(frame, self.card) for frame in frames])
        return self.masks(inputs, [frame.shape[:2] for frame in frames])


def predict_images(items, predictor: Predictor, writer: PictureWriter, predict: dict,
                   failed: list[dict]) -> tuple[int, float]:
    """Predict every readable image; failures are added to `failed`. The count written and
    the seconds taken."""
    good, sizes, limit = [], [], int(predict["max_pixels"])
    for item in items:
        try:
            size = processed_size(image_size(item.path, limit), predictor.card.resize)
            if size[0] * size[1] > limit:
                raise DataError(f"{item.path}: resized to {size[1]}×{size[0]} pixels for the "
                                f"network, above predict.max_pixels={limit}")
        except DataError as error:
            failed.append({"file": str(item.path), "error": str(error)})
            continue
        good.append(item)
        sizes.append(size)
    names = unique_names([item.relative for item in good])
    batch_size = 1 if predictor.options.mode == "slide" else int(predict["batch_size"])
    loader = DataLoader(PictureDataset(good, predictor.card), collate_fn=collate_pictures,
                        batch_sampler=SameSizeBatches(sizes, batch_size),
                        num_workers=picture_workers(predict["num_workers"], predictor.device))
    progress, written = Throughput(len(items)), 0
    progress.advance(len(items) - len(good))
    try:
        for batch in loader:
            failed += [{"file": str(good[index].path), "error": error}
                       for index, error in batch["errors"]]
            if batch["inputs"] is not None:
                masks = predictor.masks(batch["inputs"],
                                        [image.shape[:2] for image in batch["images"]])
                for index, image, mask in zip(batch["indices"], batch["images"], masks,
                                              strict=True):
                    writer.write(names[index], image, mask)
                    written += 1
            progress.advance(len(batch["indices"]) + len(batch["errors"]))
    finally:
        try:
            writer.close()
        finally:
            seconds = progress.close()
    return written, seconds


def guard_output(output_dir: Path) -> None:
    """Refuse a folder holding finished predictions, or a training or evaluation run."""
    if read_status(output_dir / RECORD) == "completed":
        raise FolderRefused(f"output: {output_dir} already holds finished predictions; choose a "
                          "new output= (nothing was changed)")
    refuse_run_folder(output_dir, "output")


def predict(cfg: DictConfig) -> tuple[dict, dict]:
    """Run the model on `cfg.input`; write the pictures and `predictions.json` (what ran,
    what was written, which files failed and why) into `cfg.output`."""
    output_dir = Path(cfg.paths.output_dir)
    guard_output(output_dir)
    kind, items = list_inputs(str(cfg.input))
    net, card, cfg = load_model(cfg)
    check_config(cfg)
    predict_cfg = OmegaConf.to_container(cfg.predict, resolve=True)
    save_run_config(cfg, output_dir)
    options = options_from_config(predict_cfg, card.input_size)
    card = prediction_card(card, predict_cfg, options.mode)
    Image.MAX_IMAGE_PIXELS = int(predict_cfg["max_pixels"])
    device = pick_device(predict_cfg.get("device", "auto"))
    if isinstance(net, torch.nn.Module):
        net = net.to(device)
    predictor = Predictor(net, card, options, device)
    summary = {"status": "running", "model": card.model, "encoder": card.encoder,
               "source": card.source, "input": str(cfg.input), "output": str(output_dir),
               "class_names": card.class_names, "predict": predict_cfg,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}
    write_metrics_json(output_dir / RECORD, summary)
    failed: list[dict] = []
    if kind == "video":
        progress = Throughput(0, unit="frames")
        try:
            video = predict_video(items[0].path, output_dir, card, predictor.masks_of_frames,
                                  int(predict_cfg["batch_size"]), float(predict_cfg["alpha"]),
                                  bool(predict_cfg["video_frames"]), progress.advance)
        finally:
            seconds = progress.close()
        summary.update(video=video, frames=video["frames"],
                       frames_per_s=round(video["frames"] / seconds, 3))
    else:
        writer = PictureWriter(output_dir, card, float(predict_cfg["alpha"]),
                               bool(predict_cfg["side_by_side"]),
                               bool(predict_cfg["save_as_dataset"]),
                               bool(predict_cfg["overlays"]))
        written, seconds = predict_images(items, predictor, writer, predict_cfg, failed)
        summary.update(images=written, images_per_s=round(written / seconds, 3))
    summary.update(status="completed", seconds=round(seconds, 3), failed=failed,
                   failed_count=len(failed))
    write_metrics_json(output_dir / RECORD, summary)
    report(summary, output_dir, card, bool(predict_cfg["save_as_dataset"]) and kind != "video")
    return summary, {"net": net, "card": card}


def report(summary: dict, output_dir: Path, card: ModelCard, dataset: bool) -> None:
    """What was written, how fast, and every file that failed with its reason."""
    if "video" in summary:
        print(f"predicted {summary['frames']} frames in {summary['seconds']:.1f} s "
              f"({summary['frames_per_s']:.1f} frames/s): {summary['video']['video']}")
    else:
        print(f"predicted {summary['images']} images in {summary['seconds']:.1f} s "
              f"({summary['images_per_s']:.1f} images/s): {output_dir}")
    for failure in summary["failed"]:
        print(f"failed: {failure['error']}")
    if summary["failed"]:
        print(f"{len(summary['failed'])} of {len(summary['failed']) + summary['images']} "
              f"pictures failed (listed in {output_dir / RECORD})")
    if dataset:
        names = ",".join(card.class_names)
        colours = f" 'data.colours={card.palette}'" if card.colour_masks else ""
        print(f"pseudo-labels: seglab-train data=folder data.root={output_dir / 'dataset'} "
              f"data.num_classes={card.num_classes} 'data.class_names=[{names}]'{colours}")
