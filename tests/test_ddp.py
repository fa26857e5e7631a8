"""DDP: metrics under two CPU processes (gloo) equal the single-process metrics, the global
batch is split between processes, and a multirun of DDP jobs gives each job its own folder."""

import json

import numpy as np
import pytest
import torch
from lightning import Trainer

from conftest import TINY, compose_config, run_cli
from seglab.core.errors import ConfigError
from seglab.engine.builders import build_datamodule, build_module
from seglab.engine.training import train
from seglab.models import SegmentationNet
from seglab.runs.per_image import read_per_image

# Odd validation and test splits: two processes get 8 + 7 and 7 + 6 samples, nothing padded.
# cross-entropy: a per-pixel mean, so its mean over a split does not depend on how the split is
# batched; Dice (in the default ce_dice) is a per-batch ratio, which DDP's smaller batches change
DECOMPOSABLE = [*TINY, "loss=ce"]
ODD_SPLITS = [*DECOMPOSABLE, "data.lengths={train:32,val:15,test:13}"]


class SignNet(SegmentationNet):
    """Predicts class 0 where the red channel is above its mean, else class 1, with logits far
    apart: elementwise, so every process computes exactly the same predictions (a random
    convolutional net has near-ties that thread counts can flip)."""

    output_stride = 1

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Conv2d(1, 1, 1)  # a parameter, so optimizers and DDP have one

    @property
    def encoder(self):
        return self.scale

    def forward_padded(self, images):
        red = images[:, :1]
        return torch.cat([red, -red, 0.5 * red, -0.5 * red], dim=1) * 10

pytestmark = pytest.mark.slow


def _validate(module, datamodule, devices: int) -> dict:
    trainer = Trainer(accelerator="cpu", devices=devices,
                      strategy="ddp_spawn" if devices > 1 else "auto", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    return trainer.validate(module, datamodule=datamodule, verbose=False)[0]


@pytest.fixture
def file_system_sharing():
    """Spawned workers get tensors through files: descriptor passing fails in some sandboxes
    ("unable to resize file")."""
    original = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    yield
    torch.multiprocessing.set_sharing_strategy(original)


@pytest.mark.usefixtures("file_system_sharing")
def test_confusion_matrix_is_summed_over_processes(tmp_path):
    cfg = compose_config("train", tmp_path, DECOMPOSABLE)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    module.net = SignNet()
    single = _validate(module, datamodule, devices=1)
    distributed = _validate(module, datamodule, devices=2)
    assert 0 < single["val/mIoU"] < 1
    for key in ("val/mIoU", "val/pixel_acc", "val/dice", "val/loss", "val/iou_background",
                "val/iou_disc"):
        assert distributed[key] == pytest.approx(single[key], abs=1e-6), key


def _single_process_scores(cfg, checkpoint: str) -> dict:
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names)
    trainer = Trainer(accelerator="cpu", devices=1, precision=cfg.trainer.precision,
                      logger=False, enable_progress_bar=False, enable_model_summary=False)
    scores = trainer.validate(module, datamodule=datamodule, ckpt_path=checkpoint,
                              weights_only=True, verbose=False)[0]
    return {**scores, **trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint,
                                     weights_only=True, verbose=False)[0]}


def test_ddp_cpu_run_equals_a_single_process_evaluation(tmp_path):
    run = tmp_path / "ddp"
    result = run_cli(["seglab-train", "trainer=ddp_cpu", *ODD_SPLITS, f"hydra.run.dir={run}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    torch.set_num_threads(1)  # as each DDP process: the same arithmetic, to the last bit
    single = _single_process_scores(compose_config("train", tmp_path / "single", ODD_SPLITS),
                                    metrics["checkpoint"])
    for key in ("val/mIoU", "val/pixel_acc", "val/loss", "test/mIoU", "test/pixel_acc",
                "test/loss", "test/iou_background"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-6), key
    # speed and memory: each process's figure, and their sum (each process tests 7 or 6
    # images in two batches: the second is timed)
    assert metrics["test/speed_batches"] == 1 and metrics["peak_memory_kind"] == "rss"
    for key in ("test/images_per_s", "train/peak_memory_mib", "test/peak_memory_mib",
                "peak_memory_mib"):
        per_process = metrics[f"{key}_per_process"]
        assert len(per_process) == 2 and min(per_process) > 0, key
        assert metrics[key] == pytest.approx(sum(per_process), abs=0.05), key
    # the end-of-run work happened once, on rank zero; rank one logged to its own file
    assert result.stdout.count("run folder:") == 1
    assert (run / "train.rank1.log").is_file()
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == \
        ["best.ckpt", "last.ckpt"]


# What a user runs: the default model, loss (CE + Dice), precision, progress bar and CSV logger;
# odd validation and test splits (8 + 7 and 7 + 6 samples), two epochs. Before the fix, rank
# zero's progress bar synchronised the logged values at each epoch's end while the other rank
# was already in the next collective: gloo aborted (5 runs in 5).
USER_DEFAULTS = ["trainer=ddp_cpu", "trainer.max_epochs=2", "data.input_size=[32,32]",
                 "data.lengths={train:32,val:15,test:13}", "data.batch_size=8"]
MATRIX_SCORES = ("mIoU", "pixel_acc", "dice", "iou_background", "iou_disc", "iou_box",
                 "iou_triangle")


def test_ddp_with_the_defaults_equals_a_single_process_seglab_eval(tmp_path):
    run, evaluated = tmp_path / "ddp", tmp_path / "eval"
    one_thread = {"OMP_NUM_THREADS": "1"}
    trained = run_cli(["seglab-train", *USER_DEFAULTS, f"hydra.run.dir={run}"], cwd=tmp_path,
                      **one_thread)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header + both epochs

    checked = run_cli(["seglab-eval", f"ckpt_path={metrics['checkpoint']}", "trainer=cpu",
                       f"hydra.run.dir={evaluated}"], cwd=tmp_path, **one_thread)
    assert checked.returncode == 0, checked.stderr[-3000:]
    single = json.loads((evaluated / "metrics.json").read_text())
    for score in MATRIX_SCORES:  # from the summed confusion matrix: exact
        assert metrics[f"test/{score}"] == single[f"test/{score}"], score
    # per-image counts gathered from both processes (7 + 6 images), back in the split's order
    gathered = read_per_image(run / "test_per_image.npz")
    alone = read_per_image(evaluated / "test_per_image.npz")
    assert gathered.ids == alone.ids == [f"test_{index:06d}" for index in range(13)]
    for name in ("intersection", "union", "pixels"):
        assert np.array_equal(getattr(gathered, name), getattr(alone, name)), name
    assert metrics["test/mIoU_ci95"] == single["test/mIoU_ci95"]
    # Dice is a ratio per batch: the mean loss depends on how the split is batched (here 4 per
    # process against 8), so the loss agrees only roughly
    assert metrics["test/loss"] == pytest.approx(single["test/loss"], rel=0.05)


def test_the_global_batch_must_divide_by_the_processes(tiny_train_cfg):
    cfg = tiny_train_cfg("odd", ["trainer=ddp_cpu", "data.batch_size=7"])
    with pytest.raises(ConfigError, match="data.batch_size: 7 is the global batch and must "
                                          "divide by the 2 processes"):
        train(cfg)


def test_a_multirun_of_ddp_jobs_gives_each_job_its_folder(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["seglab-train", "-m", "trainer=ddp_cpu", "seed=0,1", *TINY,
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0", "1"]
    for job, seed in (("0", 0), ("1", 1)):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert (metrics["status"], metrics["seed"]) == ("completed", seed)
        assert (sweep / job / "train.rank1.log").is_file()
    assert "sweep: 2 jobs, 2 completed" in result.stdout + result.stderr
