"""Pictures of a run: the test confusion matrix files, and prediction images for the loggers."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, compose_config
from seglab.engine.builders import build_datamodule, build_module
from seglab.engine.callbacks import PREDICTIONS_TAG, PredictionImages, wandb_payload
from seglab.engine.confusion_plots import row_normalised, write_confusion_outputs
from seglab.engine.training import train
from seglab.inference.evaluation import evaluate

CONFUSION_FILES = ("confusion_matrix.csv", "confusion_matrix.png", "per_class_iou.png")
# rows = true class; "b" has no pixels but is predicted once, "d" is absent everywhere
HAND_MADE = [[3, 1, 0, 0], [0, 0, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]]


def _read_confusion(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "confusion_matrix.csv", index_col=0)


def _assert_pictures(folder: Path) -> None:
    for name in CONFUSION_FILES[1:]:
        with Image.open(folder / name) as image:
            assert image.format == "PNG", name
            assert image.width >= 400 and image.height >= 200, (name, image.size)


def test_row_normalisation_by_hand():
    expected = [[0.75, 0.25, 0, 0], [0, 0, 0, 0], [0.25, 0, 0.75, 0], [0, 0, 0, 0]]
    assert row_normalised(torch.tensor(HAND_MADE)).tolist() == expected
    assert row_normalised(np.array(HAND_MADE)).tolist() == expected


def test_confusion_files_from_a_hand_made_matrix(tmp_path):
    names = ["a", "b", "c", "d"]
    write_confusion_outputs(torch.tensor(HAND_MADE), names, tmp_path)
    frame = _read_confusion(tmp_path)
    assert list(frame.index) == names and list(frame.columns) == names
    assert frame.to_numpy().tolist() == HAND_MADE
    _assert_pictures(tmp_path)
    with pytest.raises(ValueError, match="does not match 3 class names"):
        write_confusion_outputs(np.array(HAND_MADE), ["a", "b", "c"], tmp_path / "bad")


@pytest.fixture(scope="module")
def pictured_run(tmp_path_factory):
    """A tiny two-epoch run logging to TensorBoard, with prediction images every epoch."""
    output = tmp_path_factory.mktemp("pictures") / "run"
    cfg = compose_config("train", output, [
        *TINY, "trainer.max_epochs=2", "encoder=mobilenet_v2", "logger=tensorboard",
        "callbacks.prediction_images.every_n_epochs=1",
        "callbacks.model_checkpoint.save_last=false"])  # a lighter run than the default
    metrics, objects = train(cfg)
    return output, metrics, objects


def test_training_writes_the_test_confusion_matrix(pictured_run):
    output, metrics, objects = pictured_run
    frame = _read_confusion(output)
    counts = frame.to_numpy()
    assert list(frame.columns) == metrics["class_names"]
    assert counts.sum() == 16 * 32 * 32  # synthetic masks have no ignored pixels
    assert torch.equal(torch.from_numpy(counts), objects["module"].test_confusion)
    saved = json.loads((output / "metrics.json").read_text())
    assert np.trace(counts) / counts.sum() == pytest.approx(saved["test/pixel_acc"], abs=1e-6)
    _assert_pictures(output)


def test_eval_writes_the_confusion_files(pictured_run, tmp_path):
    output, _, _ = pictured_run
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt_path={output}/checkpoints/best.ckpt"])
    evaluated, objects = evaluate(cfg)
    counts = _read_confusion(tmp_path / "eval").to_numpy()
    assert torch.equal(torch.from_numpy(counts), objects["module"].test_confusion)
    assert counts.sum() == 16 * 32 * 32
    assert np.trace(counts) / counts.sum() == pytest.approx(evaluated["test/pixel_acc"],
                                                            abs=1e-6)
    _assert_pictures(tmp_path / "eval")


def test_tensorboard_gets_one_prediction_grid_per_epoch(pictured_run):
    output, _, _ = pictured_run
    events = EventAccumulator(str(output / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert PREDICTIONS_TAG in events.Tags()["images"]
    grids = events.Images(PREDICTIONS_TAG)
    assert [grid.step for grid in grids] == [0, 1]
    # 4 rows of image | truth | prediction, 32×32 shown at 128×128, 2 white pixels apart
    assert (grids[0].width, grids[0].height) == (3 * 128 + 2 * 2, 4 * 128 + 3 * 2)


class _Recorder:
    """Stands in for a wandb run: records what is logged."""

    def __init__(self):
        self.logged = []

    def log(self, record):
        self.logged.append(record)


class _OfflineWandb(WandbLogger):
    """A WandbLogger whose experiment is a recorder, so no wandb run starts."""

    def __init__(self):
        super().__init__(offline=True)
        self.recorder = _Recorder()

    @property
    def experiment(self):
        return self.recorder


@pytest.fixture(scope="module")
def tiny_pieces(tmp_path_factory):
    """The datamodule and an untrained module of the tiny config."""
    cfg = compose_config("train", tmp_path_factory.mktemp("pieces"), TINY)
    datamodule = build_datamodule(cfg)
    return datamodule, build_module(cfg, datamodule.class_names)


def _validation_ends(callback, pieces, loggers, times=1, **trainer_state):
    """Call the callback's hook as a trainer would at the end of `times` validation epochs."""
    datamodule, module = pieces
    for epoch in range(times):
        state = {"sanity_checking": False, "is_global_zero": True, "loggers": loggers,
                 "datamodule": datamodule, "current_epoch": epoch,
                 "global_step": 4 * (epoch + 1), **trainer_state}
        callback.on_validation_epoch_end(SimpleNamespace(**state), module)


def test_wandb_gets_masks_with_class_labels_every_nth_epoch(tiny_pieces):
    logger = _OfflineWandb()
    _validation_ends(PredictionImages(every_n_epochs=2, count=3), tiny_pieces, [logger], times=4)
    datamodule = tiny_pieces[0]
    assert [(r["epoch"], r["trainer/global_step"]) for r in logger.recorder.logged] == \
        [(1, 8), (3, 16)]
    images = logger.recorder.logged[0][PREDICTIONS_TAG]
    assert len(images) == 3
    labels = dict(enumerate(datamodule.class_names))
    masks = images[0]._masks
    assert masks["prediction"]._val["class_labels"] == labels
    assert masks["ground_truth"]._val["class_labels"] == {**labels, 255: "ignore"}
    assert np.array_equal(masks["ground_truth"]._val["mask_data"],
                          datamodule.split("val").load(0)["mask"])
    assert masks["prediction"]._val["mask_data"].shape == (32, 32)


def test_wandb_payload_names_the_ignored_label():
    sample = {"image": np.zeros((2, 2, 3), np.uint8), "id": "x",
              "mask": np.array([[0, 255], [1, 1]]), "prediction": np.array([[0, 1], [1, 1]])}
    payload = wandb_payload([sample], ["bg", "fg"], 255, epoch=3, global_step=7)
    assert payload["epoch"] == 3 and payload["trainer/global_step"] == 7
    truth = payload[PREDICTIONS_TAG][0]._masks["ground_truth"]._val
    assert truth["class_labels"] == {0: "bg", 1: "fg", 255: "ignore"}


@pytest.mark.parametrize("every_n_epochs", [0, None])
def test_prediction_images_off_sends_nothing(tiny_pieces, every_n_epochs):
    logger = _OfflineWandb()
    _validation_ends(PredictionImages(every_n_epochs=every_n_epochs), tiny_pieces, [logger],
                     times=2)
    assert logger.recorder.logged == []


def test_prediction_images_skip_the_sanity_check_and_other_loggers(tiny_pieces, tmp_path):
    logger = _OfflineWandb()
    _validation_ends(PredictionImages(), tiny_pieces, [logger], sanity_checking=True)
    assert logger.recorder.logged == []
    untouched = SimpleNamespace(sanity_checking=False, is_global_zero=True, datamodule=None,
                                loggers=[CSVLogger(tmp_path)])
    PredictionImages().on_validation_epoch_end(untouched, None)  # no image logger: no work


@pytest.mark.parametrize("options", [{"every_n_epochs": -1}, {"count": 0}])
def test_prediction_images_refuses_bad_settings(options):
    with pytest.raises(ValueError, match="callbacks.prediction_images"):
        PredictionImages(**options)
