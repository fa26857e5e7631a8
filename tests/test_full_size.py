"""Validation and test at full size (`data.eval_sizing: null`), on whole images or by sliding
window (`data.eval_mode: slide`), on a split whose images differ in size: the confusion
matrices equal ones computed by hand, image by image and tile by tile."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import compose_config
from seglab.core.errors import ConfigError
from seglab.data.datamodule import collate_by_size
from seglab.data.transforms import normalization_tensors, normalize_images
from seglab.engine.training import train
from seglab.inference.evaluation import evaluate
from seglab.inference.prediction import predict

# (height, width) of each image; the test split's first batch of 4 holds three sizes, and its
# last image is lower than a tile
SIZES = {"train": [(40, 48)] * 8, "val": [(40, 56), (33, 47), (40, 56)],
         "test": [(40, 56), (33, 47), (48, 40), (40, 56), (21, 30)]}
CLASSES = ["sky", "road", "car"]
TILE, STRIDE = 24, 16
RUN = ["data=folder", "data.num_classes=3", f"data.class_names=[{','.join(CLASSES)}]",
       "data.input_size=[32,32]", "data.batch_size=4", "data.num_workers=0",
       "data.eval_sizing=null", "model=unet_classic", "model.base_channels=4",
       "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.precision=32-true",
       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none"]
SLIDE = ["data.eval_mode=slide", f"data.eval_tile=[{TILE},{TILE}]",
         f"data.eval_stride=[{STRIDE},{STRIDE}]"]


def write_mixed_sizes(root: Path) -> None:
    """images/<split>/*.png and masks/<split>/*.png (classes 0..2, some pixels 255 = ignore)."""
    rng = np.random.default_rng(7)
    for split, sizes in SIZES.items():
        for folder in ("images", "masks"):
            (root / folder / split).mkdir(parents=True)
        for index, (height, width) in enumerate(sizes):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            labels = rng.integers(0, 3, (height, width)).astype(np.uint8)
            labels[rng.random((height, width)) < 0.1] = 255
            Image.fromarray(pixels).save(root / "images" / split / f"{split}_{index}.png")
            Image.fromarray(labels, mode="L").save(root / "masks" / split / f"{split}_{index}.png")


@pytest.fixture(scope="module")
def slide_run(tmp_path_factory):
    """One epoch on crops, validated and tested by sliding window at full size."""
    root = tmp_path_factory.mktemp("mixed")
    write_mixed_sizes(root / "data")
    cfg = compose_config("train", root / "run", [*RUN, f"data.root={root / 'data'}", *SLIDE])
    metrics, objects = train(cfg)
    return root, metrics, objects


def network_input(path: Path) -> torch.Tensor:
    """The picture at `path` as the network sees it, normalised as the datamodule does."""
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
    return normalize_images(pixels.permute(2, 0, 1)[None],
                            *normalization_tensors((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))


def starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets along a side, as MMSegmentation's slide_inference places them."""
    return [0] if length <= tile else [*range(0, length - tile, stride), length - tile]


@torch.no_grad()
def by_hand(net, image: torch.Tensor, slide: bool) -> np.ndarray:
    """The predicted mask: the net on the whole image, or tile by tile with the logits
    summed and divided by how many tiles covered each pixel."""
    if not slide:
        return net(image).argmax(1)[0].numpy()
    _, _, height, width = image.shape
    tile_h, tile_w = min(TILE, height), min(TILE, width)
    total, covered = torch.zeros(1, len(CLASSES), height, width), torch.zeros(height, width)
    for top in starts(height, tile_h, STRIDE):
        for left in starts(width, tile_w, STRIDE):
            window = (..., slice(top, top + tile_h), slice(left, left + tile_w))
            total[window] += net(image[window])
            covered[window] += 1
    return (total / covered).argmax(1)[0].numpy()


def confusion_by_hand(net, root: Path, split: str, slide: bool) -> np.ndarray:
    """[true, predicted] pixel counts over the split's images at their own sizes."""
    net.eval()
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for image in sorted((root / "images" / split).glob("*.png")):
        mask = np.asarray(Image.open(root / "masks" / split / image.name)).astype(np.int64)
        predicted = by_hand(net, network_input(image), slide)
        assert predicted.shape == mask.shape
        kept = mask != 255
        confusion += np.bincount(len(CLASSES) * mask[kept] + predicted[kept],
                                 minlength=len(CLASSES) ** 2).reshape(len(CLASSES), -1)
    return confusion


def miou(confusion: np.ndarray) -> float:
    hits = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - hits
    return float(np.mean(hits[union > 0] / union[union > 0]))


@pytest.mark.slow
def test_training_validates_and_tests_by_sliding_window_at_full_size(slide_run):
    root, metrics, objects = slide_run
    net = objects["module"].net  # best.ckpt's weights, tested last: one epoch, one validation
    test = confusion_by_hand(net, root / "data", "test", slide=True)
    assert np.array_equal(objects["module"].test_confusion.numpy(), test)
    assert test.sum() == sum(int((np.asarray(Image.open(path)) != 255).sum())
                             for path in (root / "data" / "masks" / "test").glob("*.png"))
    assert metrics["test/mIoU"] == pytest.approx(miou(test), rel=1e-6)
    val = confusion_by_hand(net, root / "data", "val", slide=True)
    assert metrics["val/mIoU"] == pytest.approx(miou(val), rel=1e-6)


@pytest.mark.slow
def test_seglab_eval_whole_and_slide_at_full_size_equal_hand_loops(slide_run, tmp_path):
    root, trained, objects = slide_run
    checkpoint = f"ckpt_path={trained['checkpoint']}"
    slide, _ = evaluate(compose_config("eval", tmp_path / "slide", [checkpoint]))
    assert slide["test/mIoU"] == trained["test/mIoU"]  # the run's own config: slide
    whole, evaluated = evaluate(compose_config("eval", tmp_path / "whole",
                                               [checkpoint, "data.eval_mode=whole"]))
    by_loop = confusion_by_hand(objects["module"].net, root / "data", "test", slide=False)
    assert np.array_equal(evaluated["module"].test_confusion.numpy(), by_loop)
    assert whole["test/mIoU"] == pytest.approx(miou(by_loop), rel=1e-6)
    assert whole["test/mIoU"] != slide["test/mIoU"]
    with pytest.raises(ConfigError, match=r"^config key data.eval_mode = 'slides' \(str\): "
                                          r"expected whole or slide$"):
        evaluate(compose_config("eval", tmp_path / "bad", [checkpoint, "data.eval_mode=slides"]))


@pytest.mark.slow
def test_slide_evaluation_predicts_what_seglab_predict_slides(slide_run, tmp_path):
    root, trained, objects = slide_run
    predict(compose_config("predict", tmp_path / "predicted", [
        f"ckpt_path={trained['checkpoint']}", f"input={root / 'data' / 'images' / 'test'}",
        "predict.mode=slide", f"predict.tile=[{TILE},{TILE}]", f"predict.overlap={1 / 3}",
        "predict.resize=null", "predict.num_workers=0"]))
    net = objects["module"].net.eval()
    for image in sorted((root / "data" / "images" / "test").glob("*.png")):
        predicted = np.asarray(Image.open(tmp_path / "predicted" / "masks" / image.name))
        assert np.array_equal(predicted, by_hand(net, network_input(image), slide=True))


def test_samples_of_different_sizes_are_batched_by_size():
    samples = [{"image": torch.zeros(3, *size), "mask": torch.zeros(*size), "id": str(index)}
               for index, size in enumerate([(4, 6), (5, 5), (4, 6), (5, 5), (2, 2)])]
    batches = collate_by_size(samples)
    assert [batch["id"] for batch in batches] == [["0", "2"], ["1", "3"], ["4"]]
    assert [tuple(batch["image"].shape) for batch in batches] == \
        [(2, 3, 4, 6), (2, 3, 5, 5), (1, 3, 2, 2)]
    same = collate_by_size(samples[:1] + samples[2:3])
    assert isinstance(same, dict) and same["image"].shape == (2, 3, 4, 6)


@pytest.mark.parametrize("overrides, message", [
    (["data.eval_mode=foo"], r"config key data.eval_mode = 'foo' \(str\): expected whole or "
     r"slide$"),
    (["data.eval_mode=slide", "data.eval_tile=[0,24]"], r"config key data.eval_tile = \[0, 24\] "
     r"\(list\): expected null \(data.input_size\) or a \[height, width\] pair"),
    (["data.eval_mode=slide", "data.eval_tile=24"], r"config key data.eval_tile = 24 \(int\)"),
    (["data.eval_mode=slide", "data.eval_tile=[24,24]", "data.eval_stride=[25,16]"],
     r"config key data.eval_stride = \[25, 16\]: expected at most the tile \[24, 24\] "
     r"\(data.eval_tile; null: data.input_size\) on each side"),
    (["data.eval_mode=slide", "data.eval_stride=[16,40]"],
     r"config key data.eval_stride = \[16, 40\]: expected at most the tile \[32, 32\]"),
])
def test_a_bad_sliding_window_is_one_line(tiny_train_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message) as refused:
        train(tiny_train_cfg("refused", overrides))
    assert "\n" not in str(refused.value)
