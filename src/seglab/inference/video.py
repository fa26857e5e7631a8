"""Videos in, videos out: the overlay video at the input's fps, frame count and size, and
the class shares of every frame in a CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from seglab.core.errors import ConfigError
from seglab.data.files import DataError
from seglab.inference.card import ModelCard
from seglab.inference.outputs import class_shares, overlay, palette_mask

DEFAULT_FPS = 25.0


def open_video(path: Path) -> tuple[cv2.VideoCapture, float, int, tuple[int, int]]:
    """The opened video with its fps, frame count (as the container says) and (w, h)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: OpenCV cannot read this video (unknown codec or a broken "
                        "file)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if size[0] <= 0 or size[1] <= 0:
        capture.release()
        raise DataError(f"{path}: the video has no readable frames")
    return capture, fps, frames, size


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An mp4 writer for frames of `size` (height, width); a DataError when OpenCV has none."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (size[1], size[0]))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write an mp4v video here")
    return writer


def frame_batches(capture: cv2.VideoCapture, batch_size: int) -> Iterator[list[np.ndarray]]:
    """The video's RGB frames, `batch_size` at a time."""
    batch = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_video(path: Path, output_dir: Path, card: ModelCard,
                  masks_of: Callable[[list[np.ndarray]], list[np.ndarray]], batch_size: int,
                  alpha: float = 0.5, save_frames: bool = False,
                  on_frames: Callable[[int], None] = lambda count: None) -> dict:
    """Write <stem>.mp4 (the overlay video) and <stem>_class_shares.csv under `output_dir`,
    with `save_frames` also <stem>_masks/<frame>.png; a summary of what was written."""
    video_path = output_dir / f"{path.stem}.mp4"
    if video_path.resolve() == path.resolve():
        raise ConfigError(f"output: writing {video_path} would replace the input video; "
                          "choose another output=")
    capture, fps, expected, _ = open_video(path)
    output_dir.mkdir(parents=True, exist_ok=True)
    writer = None  # opened at the first frame's size (a container may say otherwise)
    palette = np.asarray(card.palette, dtype=np.uint8)
    frames_dir = output_dir / f"{path.stem}_masks"
    if save_frames:
        frames_dir.mkdir(exist_ok=True)
    count = 0
    try:
        with open(output_dir / f"{path.stem}_class_shares.csv", "w", newline="") as handle:
            rows = csv.writer(handle)
            rows.writerow(["frame", "time_s", *card.class_names])
            for frames in frame_batches(capture, batch_size):
                if writer is None:
                    size = frames[0].shape[:2]
                    writer = open_writer(video_path, fps, size)
                for frame, mask in zip(frames, masks_of(frames), strict=True):
                    blended = overlay(frame, mask, palette, alpha)
                    writer.write(cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
                    if save_frames:
                        palette_mask(mask, palette).save(frames_dir / f"{count:06d}.png")
                    shares = class_shares(mask, card.num_classes)
                    rows.writerow([count, f"{count / fps:.3f}",
                                   *(f"{share:.6f}" for share in shares)])
                    count += 1
                on_frames(len(frames))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if count == 0:
        video_path.unlink(missing_ok=True)
        raise DataError(f"{path}: the video has no readable frames")
    return {"video": str(video_path), "frames": count, "frames_expected": expected,
            "fps": fps, "size": list(size)}
