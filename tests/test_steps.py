"""Runs counted in steps (iterations), as MMSegmentation's 80k/160k recipes count them:
trainer.max_steps with max_epochs=-1, validation every N steps across epochs, the poly schedule
over max_steps, the best checkpoint chosen at each validation, and the metrics.json fields."""

import csv
from pathlib import Path

import pytest
import torch
from lightning import Callback

from conftest import TINY, compose_config
from seglab.core.errors import ConfigError
from seglab.engine.training import train

# 32 / 8 = 4 steps an epoch; 7 steps: epoch 0 (steps 1-4) and part of epoch 1 (steps 5-7)
STEPS = ["data.lengths={train:32,val:16,test:16}", "trainer.max_epochs=-1",
         "trainer.max_steps=7", "trainer.check_val_every_n_epoch=null",
         "trainer.val_check_interval=3"]
PIXELS_PER_STEP = 8 * 32 * 32  # a batch of 8 scenes of 32×32 pixels, none ignored


class Recorder(Callback):
    """The learning rates each training step uses, and at each validation the step and the
    pixels the module's train scores have counted since the validation before."""

    def __init__(self) -> None:
        self.learning_rates: list[list[float]] = []
        self.train_pixels: dict[int, int] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.learning_rates.append([group["lr"] for group in
                                    trainer.optimizers[0].param_groups])

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            counted = pl_module.confmats["train_confmat"].compute().sum()
            self.train_pixels[trainer.global_step] = int(counted)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    """A run of 7 steps validated every 3, with the recorder, on the default scheduler (poly)."""
    output = tmp_path_factory.mktemp("steps") / "run"
    cfg = compose_config("train", output, [*TINY, *STEPS,
                                           "+callbacks.recorder._target_=test_steps.Recorder"])
    metrics, objects = train(cfg)
    [recorder] = [callback for callback in objects["trainer"].callbacks
                  if isinstance(callback, Recorder)]
    return output, cfg, metrics, recorder


@pytest.mark.slow
def test_validation_every_n_steps_crosses_epochs(step_run):
    output, _, metrics, recorder = step_run
    rows = _rows(output)
    assert list(rows[0])[:2] == ["step", "epoch"]
    # Lightning validates at steps 3 and 6 only: step 7 ends the run without one
    assert [(int(row["step"]), int(row["epoch"])) for row in rows] == [(3, 0), (6, 1)]
    # each row's train scores count the steps since the validation before: 3 steps each
    assert recorder.train_pixels == {3: 3 * PIXELS_PER_STEP, 6: 3 * PIXELS_PER_STEP}
    assert (metrics["steps"], metrics["epochs"]) == (7, 2)
    assert float(rows[-1]["val/mIoU"]) == pytest.approx(metrics["val/mIoU"], rel=1e-6)


@pytest.mark.slow
def test_poly_decays_over_max_steps(step_run):
    _, cfg, _, recorder = step_run
    base = cfg.optimizer.lr
    expected = [base * (1 - step / 7) ** 0.9 for step in range(7)]
    assert len(recorder.learning_rates) == 7
    for used, rate in zip(recorder.learning_rates, expected, strict=True):
        assert used == pytest.approx([rate] * len(used), rel=1e-6)


@pytest.mark.slow
def test_the_best_checkpoint_is_the_best_validations(step_run):
    output, _, metrics, _ = step_run
    rows = _rows(output)
    best = max(rows, key=lambda row: float(row["val/mIoU"]))
    saved = torch.load(output / "checkpoints" / "best.ckpt", map_location="cpu",
                       weights_only=True)
    assert saved["global_step"] == metrics["best_step"] == int(best["step"])
    assert metrics["best_epoch"] == int(best["epoch"])
    assert metrics["val/mIoU_best"] == pytest.approx(float(best["val/mIoU"]), rel=1e-6)
    assert metrics["checkpoint"] == str(output / "checkpoints" / "best.ckpt")


@pytest.mark.slow
def test_plateau_and_early_stopping_count_validations(tiny_train_cfg):
    # the plateau schedule and early stopping watch val/mIoU at each validation (steps 3 and
    # 6), never at the end of an epoch (step 4, before which no validation had run, and 7)
    metrics, objects = train(tiny_train_cfg("plateau", [
        *STEPS, "scheduler=plateau", "callbacks=early_stopping",
        "callbacks.early_stopping.patience=10"]))
    trainer = objects["trainer"]
    plateau = trainer.lr_scheduler_configs[0].scheduler
    rows = _rows(Path(metrics["run_dir"]))
    scores = [float(row["val/mIoU"]) for row in rows]
    assert plateau.last_epoch == len(scores) == 2
    assert plateau.best == pytest.approx(max(scores), rel=1e-6)
    [stopping] = [callback for callback in trainer.callbacks
                  if type(callback).__name__ == "EarlyStopping"]
    assert float(stopping.best_score) == pytest.approx(max(scores), rel=1e-6)
    assert stopping.wait_count == len(scores) - 1 - scores.index(max(scores))


@pytest.mark.parametrize("overrides, message", [
    (["trainer.max_epochs=-1"], r"^config key trainer.max_epochs = -1 \(no limit\): the "
     r"scheduler sets its total_iters from the run's length and trainer.max_steps = -1 sets "
     r"none either; expected a positive number of epochs or trainer.max_steps=N"),
    (["trainer.max_steps=0"], r"^config key trainer.max_steps = 0 \(int\): expected a positive "
     r"number of training steps, or -1"),
    (["trainer.check_val_every_n_epoch=null"], r"^config key trainer.val_check_interval = None: "
     r"with trainer.check_val_every_n_epoch=null validation is counted in training steps; "
     r"expected a positive integer"),
    (["trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=0.5"],
     r"^config key trainer.val_check_interval = 0.5: with trainer.check_val_every_n_epoch=null"),
    (["trainer.val_check_interval=0"], r"^config key trainer.val_check_interval = 0 \(int\): "
     r"expected null, a positive number of training batches, a fraction of an epoch in "
     r"\(0, 1\] or a time"),
])
def test_a_run_without_a_countable_length_is_one_line(tiny_train_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message) as refused:
        train(tiny_train_cfg("refused", overrides))
    assert "\n" not in str(refused.value)
