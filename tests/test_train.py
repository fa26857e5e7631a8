"""Training and evaluation in-process on the real configs with tiny limits."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY, compose_config, measured
from seglab.core.errors import ConfigError
from seglab.engine.training import train
from seglab.inference.evaluation import evaluate
from seglab.runs.per_image import read_per_image

CONTRACT_KEYS = {
    "status", "model", "encoder", "data", "seed", "num_classes", "class_names", "params",
    "gflops", "train_seconds", "epochs", "best_epoch", "val/mIoU", "val/mIoU_best",
    "val/pixel_acc", "val/dice", "val/loss", "test/mIoU", "test/pixel_acc", "test/dice",
    "test/loss", "versions", "test/images_per_s", "peak_memory_mib", "test/mIoU_ci95",
    "test/pixel_acc_ci95", "test/bootstrap",
}


def test_fast_dev_run_fills_the_run_folder(tiny_train_cfg):
    cfg = tiny_train_cfg("fdr", ["trainer=debug"])
    metrics, _ = train(cfg)
    output = Path(cfg.paths.output_dir)
    saved = json.loads((output / "metrics.json").read_text())
    assert saved["status"] == "completed"
    assert CONTRACT_KEYS <= set(saved)
    assert {f"val/iou_{name}" for name in saved["class_names"]} <= set(saved)
    assert saved["versions"]["torch"].startswith("2.14.1")
    # the default run's UNet: ResNet-18 to its third stage, a 64-32-16 decoder (its recipe)
    assert saved["params"] == 884_548 and saved["gflops"] > 0
    for name in ("curves.png", "predictions.png", "metrics.csv", ".hydra/config.yaml"):
        assert (output / name).is_file(), name
    assert metrics["val/mIoU"] == saved["val/mIoU"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny real training run (checkpoints on), shared by the tests below."""
    output = tmp_path_factory.mktemp("trained") / "run"
    cfg = compose_config("train", output, [*TINY, "trainer.max_epochs=2"])
    metrics, objects = train(cfg)
    return output, metrics, objects


def test_training_writes_checkpoints_and_history(trained_run):
    output, metrics, _ = trained_run
    assert (output / "checkpoints" / "best.ckpt").is_file()
    assert (output / "checkpoints" / "last.ckpt").is_file()
    rows = (output / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[0] == "epoch" and len(rows) == 3
    assert "val/mIoU" in rows[0] and "train/mIoU" in rows[0] and "train/loss" in rows[0]
    assert metrics["epochs"] == 2
    assert metrics["val/mIoU_best"] >= metrics["val/mIoU"] - 1e-12
    assert metrics["best_epoch"] in (0, 1)


def test_eval_reproduces_the_test_metrics(trained_run, tmp_path):
    output, trained, _ = trained_run
    cfg = compose_config("eval", tmp_path / "eval",
                         [f"ckpt_path={output}/checkpoints/best.ckpt"])
    evaluated, _ = evaluate(cfg)
    test_keys = [key for key in trained if key.startswith("test/") and not measured(key)]
    assert len(test_keys) >= 8
    for key in test_keys:
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-4), key
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["evaluated_run"] == str(output)
    again = read_per_image(tmp_path / "eval" / "test_per_image.npz")
    first = read_per_image(output / "test_per_image.npz")
    assert again.ids == first.ids
    assert np.abs(again.intersection - first.intersection).sum() <= 0.001 * 16 * 32 * 32


def test_the_test_keeps_per_image_counts_that_sum_to_its_confusion_matrix(trained_run):
    output, metrics, _ = trained_run
    scores = read_per_image(output / "test_per_image.npz")
    assert scores.ids == [f"test_{index:06d}" for index in range(16)]  # the split's order
    assert scores.class_names == metrics["class_names"]
    confusion = pd.read_csv(output / "confusion_matrix.csv", index_col=0).to_numpy()
    diagonal = np.diag(confusion)
    assert np.array_equal(scores.intersection.sum(0), diagonal)
    assert np.array_equal(scores.union.sum(0), confusion.sum(0) + confusion.sum(1) - diagonal)
    assert scores.pixels.sum() == confusion.sum() == 16 * 32 * 32
    assert scores.counts.mean_iou() == pytest.approx(metrics["test/mIoU"], abs=1e-6)
    for key in ("mIoU", "pixel_acc"):
        low, high = metrics[f"test/{key}_ci95"]
        assert low <= metrics[f"test/{key}"] <= high and low < high, key
    assert metrics["test/bootstrap"] == {"resamples": 2000, "seed": 0, "images": 16,
                                         "method": "percentile, over test images",
                                         "file": "test_per_image.npz"}


def test_eval_command_line_overrides_win(trained_run, tmp_path):
    output, _, _ = trained_run
    cfg = compose_config("eval", tmp_path / "eval",
                         [f"ckpt_path={output}/checkpoints/best.ckpt", "data.batch_size=3"])
    _, objects = evaluate(cfg)
    assert objects["datamodule"].batch_size == 3
    assert objects["datamodule"].input_size == (32, 32)  # from the run, not the default 64


def test_same_seed_gives_identical_metrics(tiny_train_cfg):
    first, _ = train(tiny_train_cfg("a", ["trainer=cpu", "trainer.max_epochs=1",
                                          "trainer.enable_progress_bar=false"]))
    second, _ = train(tiny_train_cfg("b", ["trainer=cpu", "trainer.max_epochs=1",
                                           "trainer.enable_progress_bar=false"]))
    for key in first:
        if key.startswith(("val/", "test/")) and not measured(key):
            assert first[key] == second[key], key


def test_a_finished_run_folder_is_never_reused(trained_run):
    output, _, _ = trained_run
    before = {path: path.read_bytes() for path in
              (output / "metrics.json", output / "checkpoints" / "best.ckpt")}
    cfg = compose_config("train", output, TINY)
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train(cfg)
    for path, content in before.items():
        assert path.read_bytes() == content


def test_predict_returns_class_index_masks(trained_run):
    _, _, objects = trained_run
    masks = objects["trainer"].predict(objects["module"], datamodule=objects["datamodule"])
    assert sum(len(batch) for batch in masks) == 16
    assert masks[0].shape == (8, 32, 32) and masks[0].dtype == torch.int64
    assert 0 <= int(masks[0].min()) and int(masks[0].max()) < 4
