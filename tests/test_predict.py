"""seglab-predict: inputs of every kind, whole/slide/TTA, videos, failures, pseudo-labels and
published weights without training."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from conftest import TINY, compose_config, run_cli
from seglab.core.errors import ConfigError
from seglab.data.files import DataError
from seglab.engine.sliding import tile_starts
from seglab.engine.training import train
from seglab.inference.card import ModelCard
from seglab.inference.engine import InferenceOptions, predict_logits
from seglab.inference.inputs import SameSizeBatches, image_size, list_inputs, processed_size
from seglab.inference.outputs import PictureWriter
from seglab.inference.prediction import (
    load_model,
    picture_workers,
    predict,
    prediction_card,
)

FAST = ["predict.num_workers=0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny trained UNet on the synthetic shapes (4 classes)."""
    output = tmp_path_factory.mktemp("predict") / "run"
    train(compose_config("train", output, TINY))
    return output / "checkpoints" / "best.ckpt"


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def write_mixed_folder(folder: Path) -> dict[str, tuple[int, int]]:
    """Pictures in every mode the readers must take; their (height, width) as read."""
    (folder / "sub").mkdir(parents=True)
    random_image(70, 90, 1).save(folder / "rgb.jpg")
    random_image(70, 90, 2).convert("L").save(folder / "gray.png")
    random_image(50, 40, 3).convert("RGBA").save(folder / "sub" / "rgba.png")
    random_image(50, 40, 4).convert("CMYK").save(folder / "sub" / "cmyk.jpg")
    random_image(33, 47, 5).save(folder / "png_named.jpg", format="PNG")
    rotated = random_image(30, 60, 6)
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90°: read as 60×30
    rotated.save(folder / "exif_rotated.jpg", exif=exif)
    return {"rgb": (70, 90), "gray": (70, 90), "sub/rgba": (50, 40), "sub/cmyk": (50, 40),
            "png_named": (33, 47), "exif_rotated": (60, 30)}


def run_predict(tmp_path: Path, name: str, overrides: list[str]) -> tuple[dict, Path]:
    output = tmp_path / name
    summary, _ = predict(compose_config("predict", output, [*FAST, *overrides]))
    return summary, output


def test_a_mixed_folder_gives_masks_of_the_inputs_sizes(checkpoint, tmp_path):
    sizes = write_mixed_folder(tmp_path / "pictures")
    summary, output = run_predict(tmp_path, "out", [f"ckpt_path={checkpoint}",
                                                    f"input={tmp_path / 'pictures'}",
                                                    "predict.side_by_side=true"])
    assert summary["images"] == 6 and summary["failed"] == []
    for name, (height, width) in sizes.items():
        mask = Image.open(output / "masks" / f"{name}.png")
        assert mask.mode == "P" and mask.size == (width, height), name
        assert np.asarray(mask).max() < 4
        overlay = Image.open(output / "overlays" / f"{name}.jpg")
        assert overlay.size == (width, height)
        assert Image.open(output / "side_by_side" / f"{name}.jpg").size == (2 * width, height)
    with open(output / "class_shares.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["name"] for row in rows} == set(sizes)
    for row in rows:
        shares = [float(row[name]) for name in ("background", "disc", "box", "triangle")]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    saved = json.loads((output / "predictions.json").read_text())
    assert saved["status"] == "completed" and saved["images"] == 6
    assert saved["class_names"] == ["background", "disc", "box", "triangle"]


def test_masks_only_at_batch_8_and_1_equal_a_plain_script(checkpoint, tmp_path):
    """predict.overlays=false writes masks and class shares, no overlays; at batch 8 (the five
    pictures in one batch, read by two loader workers) and at batch 1 (read in the process)
    the masks are those of the plain recipe: resize, normalise, forward, logits resized back
    (bilinear), argmax."""
    (tmp_path / "pictures").mkdir()
    for seed in range(5):
        random_image(70, 90, seed).save(tmp_path / "pictures" / f"picture_{seed}.png")
    common = [f"ckpt_path={checkpoint}", f"input={tmp_path / 'pictures'}",
              "predict.resize=[64,64]"]
    _, default = run_predict(tmp_path, "default", common)
    outputs = {batch: run_predict(tmp_path / "runs", f"batch_{batch}", [
        *common, "predict.overlays=false", f"predict.batch_size={batch}",
        f"predict.num_workers={workers}"])[1] for batch, workers in ((8, 2), (1, "auto"))}
    cfg = compose_config("predict", tmp_path / "script", common)
    net, card, cfg = load_model(cfg)
    card = prediction_card(card, OmegaConf.to_container(cfg.predict), "whole")
    mean = np.array(card.mean, np.float32) * 255
    std = np.array(card.std, np.float32) * 255
    for seed in range(5):
        picture = np.asarray(Image.open(tmp_path / "pictures" / f"picture_{seed}.png"))
        inputs = (cv2.resize(picture, (64, 64)).astype(np.float32) - mean) / std
        with torch.no_grad():
            logits = net.eval()(torch.from_numpy(inputs.transpose(2, 0, 1).copy())[None])
        expected = F.interpolate(logits, size=(70, 90), mode="bilinear",
                                 align_corners=False)[0].argmax(0).numpy()
        for output in [default, *outputs.values()]:
            mask = np.asarray(Image.open(output / "masks" / f"picture_{seed}.png"))
            assert np.array_equal(mask, expected), (output, seed)
    assert (default / "overlays" / "picture_0.jpg").is_file()
    for output in outputs.values():
        assert not (output / "overlays").exists()
        with open(output / "class_shares.csv") as handle:
            assert [row["name"] for row in csv.DictReader(handle)] == [
                f"picture_{seed}" for seed in range(5)]


def test_picture_workers_only_on_a_gpu_unless_counted():
    assert picture_workers("auto", torch.device("cpu")) == 0
    assert 1 <= picture_workers("auto", torch.device("cuda")) <= 8
    assert picture_workers(3, torch.device("cpu")) == 3


def test_a_failed_write_is_raised_and_the_rest_are_not_lost(tmp_path):
    """The writer thread's error reaches the caller (at the next write or at close), and the
    pictures queued before it are on disk."""
    card = ModelCard(class_names=["a", "b"], palette=[[0, 0, 0], [255, 0, 0]],
                     mean=[0.5] * 3, std=[0.5] * 3, input_size=[8, 8])
    writer = PictureWriter(tmp_path, card, overlays=False)
    image, mask = np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.uint8)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "sub").write_text("a file where a folder must go")
    writer.write(Path("good"), image, mask)
    with pytest.raises(OSError):
        writer.write(Path("sub/bad"), image, mask)
        writer.close()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "masks" / "good.png")), mask)


def test_slide_with_one_tile_over_the_image_equals_whole(checkpoint, tmp_path):
    random_image(45, 70).save(tmp_path / "photo.png")
    common = [f"ckpt_path={checkpoint}", f"input={tmp_path / 'photo.png'}", "predict.resize=null"]
    _, whole = run_predict(tmp_path, "whole", common)
    _, slide = run_predict(tmp_path, "slide", [*common, "predict.mode=slide",
                                               "predict.tile=[64,96]"])
    whole_mask = np.asarray(Image.open(whole / "masks" / "photo.png"))
    assert whole_mask.shape == (45, 70)
    assert np.array_equal(whole_mask, np.asarray(Image.open(slide / "masks" / "photo.png")))


class Pointwise(nn.Module):
    """A 1×1 convolution: each pixel's logits depend on that pixel alone."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, images):
        return self.conv(images)


@pytest.mark.parametrize("window", ["flat", "hann"])
def test_slide_tiles_average_back_to_the_whole_picture(window):
    images = torch.randn(2, 3, 50, 75)
    whole = predict_logits(Pointwise(), images, InferenceOptions())
    options = InferenceOptions(mode="slide", tile=(16, 24), overlap=0.5, window=window,
                               batch_size=3)
    slide = predict_logits(Pointwise(), images, options)
    assert slide.shape == (2, 5, 50, 75)
    assert torch.allclose(slide, whole, atol=1e-5)


def test_tiles_cover_the_side_and_end_flush():
    assert tile_starts(100, 40, 30) == [0, 30, 60]
    assert tile_starts(40, 64, 48) == [0]
    assert tile_starts(97, 32, 24) == [0, 24, 48, 65]


def symmetric_conv(seed: int, mirror: bool) -> nn.Module:
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    if mirror:  # kernels symmetric left-right: the network commutes with a horizontal flip
        with torch.no_grad():
            conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return conv.eval()


def test_flip_tta_on_a_flip_equivariant_network_equals_no_tta():
    images = torch.randn(2, 3, 20, 30)
    plain, tta = InferenceOptions(), InferenceOptions(flip=True)
    equivariant = symmetric_conv(0, mirror=True)
    assert torch.allclose(predict_logits(equivariant, images, tta),
                          predict_logits(equivariant, images, plain), atol=1e-6)
    lopsided = symmetric_conv(0, mirror=False)  # the check can fail: a plain conv is not
    assert not torch.allclose(predict_logits(lopsided, images, tta),
                              predict_logits(lopsided, images, plain), atol=1e-3)


def test_multi_scale_tta_returns_logits_at_the_input_size():
    images = torch.full((1, 3, 21, 33), 0.7)
    options = InferenceOptions(flip=True, scales=(0.75, 1.0, 1.25))
    logits = predict_logits(Pointwise(), images, options)
    assert logits.shape == (1, 5, 21, 33)  # a constant picture gives constant logits
    assert torch.allclose(logits, predict_logits(Pointwise(), images, InferenceOptions()),
                          atol=1e-5)


def test_pictures_are_batched_by_size_without_padding():
    sizes = [(10, 20), (30, 40), (10, 20), (10, 20), (30, 40)]
    assert list(SameSizeBatches(sizes, batch_size=2)) == [[0, 2], [1, 4], [3]]
    assert processed_size((300, 400), 520) == (520, 693)
    assert processed_size((300, 400), [64, 64]) == (64, 64)
    assert processed_size((300, 400), None) == (300, 400)


def test_a_video_gives_an_overlay_video_of_the_same_length_fps_and_size(checkpoint, tmp_path):
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (80, 60))
    for frame in range(12):
        writer.write(np.full((60, 80, 3), 20 * frame, np.uint8))
    writer.release()
    summary, output = run_predict(tmp_path, "video", [f"ckpt_path={checkpoint}",
                                                      f"input={tmp_path / 'clip.avi'}",
                                                      "predict.batch_size=5"])
    capture = cv2.VideoCapture(str(output / "clip.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 12 == summary["frames"]
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == \
        (80, 60)
    rows = (output / "clip_class_shares.csv").read_text().splitlines()
    assert len(rows) == 13 and rows[2].startswith("1,0.100,")
    assert not (output / "clip_masks").exists()  # nothing per frame unless asked


def test_inputs_that_cannot_work_are_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty holds no images"):
        list_inputs(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"the glob .*\*\.png' matches no image"):
        list_inputs(str(tmp_path / "empty" / "*.png"))
    with pytest.raises(ConfigError, match=r"input: no file or folder at .*missing"):
        list_inputs(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"notes.txt is neither an image .* nor a video"):
        list_inputs(str(tmp_path / "notes.txt"))
    random_image(100, 200).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big.png: 200×100 pixels, above "
                       r"predict.max_pixels=10000 .* predict.mode=slide"):
        image_size(tmp_path / "big.png", max_pixels=10_000)


def test_globs_keep_the_sub_folders(tmp_path):
    write_mixed_folder(tmp_path / "pictures")
    kind, items = list_inputs(str(tmp_path / "pictures" / "**" / "*.png"))
    assert kind == "images"
    assert sorted(str(item.relative) for item in items) == ["gray.png", "sub/rgba.png"]


@pytest.mark.slow
def test_bad_files_are_skipped_listed_and_the_exit_code_says_so(checkpoint, tmp_path):
    write_mixed_folder(tmp_path / "pictures")
    (tmp_path / "pictures" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    random_image(120, 120).save(tmp_path / "pictures" / "huge.png")
    result = run_cli(["seglab-predict", f"ckpt_path={checkpoint}",
                      f"input={tmp_path / 'pictures'}", f"output={tmp_path / 'out'}",
                      "predict.max_pixels=10000"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "predicted 6 images" in result.stdout
    assert "failed: " in result.stdout and "corrupt.jpg: unreadable" in result.stdout
    assert "huge.png: 120×120 pixels, above predict.max_pixels=10000" in result.stdout
    assert "2 of 8 pictures failed" in result.stdout
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(Path(item["file"]).name for item in saved["failed"]) == \
        ["corrupt.jpg", "huge.png"]
    assert len(list((tmp_path / "out" / "masks").rglob("*.png"))) == 6
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"not a video")
    result = run_cli(["seglab-predict", f"ckpt_path={checkpoint}", f"input={video}"],
                     cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == \
        f"error: {video}: OpenCV cannot read this video (unknown codec or a broken file)"


def test_pseudo_labels_train_with_data_folder(checkpoint, tmp_path):
    for index in range(8):
        random_image(40, 48, index).save(tmp_path / f"painting_{index}.jpg")
    _, output = run_predict(tmp_path, "labels", [f"ckpt_path={checkpoint}",
                                                 f"input={tmp_path}/*.jpg",
                                                 "predict.save_as_dataset=true"])
    dataset = output / "dataset"
    assert len(list((dataset / "images").iterdir())) == 8
    mask = np.asarray(Image.open(dataset / "masks" / "painting_0.png"))
    assert mask.shape == (40, 48) and mask.max() < 4
    run = tmp_path / "finetune"
    metrics, _ = train(compose_config("train", run, [
        "data=folder", f"data.root={dataset}", "data.num_classes=4",
        "data.class_names=[background,disc,box,triangle]", "data.input_size=[32,32]",
        "data.num_workers=0", *TINY[3:]]))
    assert metrics["status"] == "completed" and metrics["data"] == "folder"
    assert metrics["skipped_samples"] == 0


def test_predict_needs_a_model(tmp_path):
    random_image(8, 8).save(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="seglab-predict needs a model: ckpt_path="):
        predict(compose_config("predict", tmp_path / "out", [f"input={tmp_path / 'a.png'}"]))


def test_an_exported_onnx_file_predicts_the_same_masks(checkpoint, tmp_path):
    from seglab.inference.export import export_net
    from seglab.inference.loading import load_checkpoint_net, run_card
    from seglab.runs.run_config import TrainedCheckpoint, load_run_config

    trained = TrainedCheckpoint.read(checkpoint)
    run_cfg = load_run_config(trained)
    card = run_card(run_cfg, trained.class_names, str(checkpoint))
    export_net(load_checkpoint_net(run_cfg, trained), card, tmp_path / "model.onnx", "onnx",
               [32, 32], dynamic=True)
    sizes = write_mixed_folder(tmp_path / "pictures")
    pictures = f"input={tmp_path / 'pictures'}"
    _, from_checkpoint = run_predict(tmp_path, "torch", [f"ckpt_path={checkpoint}", pictures])
    summary, from_onnx = run_predict(tmp_path, "onnx", [f"onnx_path={tmp_path / 'model.onnx'}",
                                                        pictures])
    assert summary["images"] == 6 and summary["source"] == str(checkpoint)
    for name in sizes:
        assert np.array_equal(np.asarray(Image.open(from_onnx / "masks" / f"{name}.png")),
                              np.asarray(Image.open(from_checkpoint / "masks" / f"{name}.png")))


def test_output_names_never_clash():
    from seglab.inference.outputs import unique_names
    names = unique_names([Path("a.jpg"), Path("a.JPG"), Path("a.png"), Path("a_jpg.jpg"),
                          Path("x/a__b.png"), Path("x__a/b.png"), Path("s/c.png")])
    assert [str(name) for name in names] == ["a_jpg", "a_jpg_2", "a_png", "a_jpg_3", "x/a__b",
                                             "x__a/b_2", "s/c"]


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    from seglab.data.files import read_image
    values = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "depth.png")
    image = read_image(tmp_path / "depth.png")
    assert image.shape == (2, 2, 3) and image[..., 0].tolist() == [[0, 100], [200, 255]]


def test_predict_refuses_a_run_folder_and_bad_options(checkpoint, tmp_path):
    random_image(8, 8).save(tmp_path / "a.png")
    model = [f"ckpt_path={checkpoint}", f"input={tmp_path / 'a.png'}"]
    run_dir = checkpoint.parent.parent
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"is a training or evaluation run folder"):
        predict(compose_config("predict", run_dir, model))
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config
    for option, message in [("predict.mode=Slide", r"predict.mode must be whole or slide"),
                            ("predict.scales=1.0", r"predict.scales=1.0: expected a list"),
                            ("predict.device=gpu", r"predict.device='gpu': expected auto"),
                            ("predict.overlays=no", r"predict.overlays = 'no'.*true or false"),
                            ("predict.num_workers=-1", r"predict.num_workers = -1.*auto or a "
                                                       "non-negative integer")]:
        with pytest.raises(ConfigError, match=message):
            predict(compose_config("predict", tmp_path / option, [*model, option]))


def test_a_folder_named_like_a_glob_is_a_folder(tmp_path):
    folder = tmp_path / "scan [1]"
    folder.mkdir()
    random_image(8, 8).save(folder / "a.png")
    kind, items = list_inputs(str(folder))
    assert kind == "images" and [str(item.relative) for item in items] == ["a.png"]
