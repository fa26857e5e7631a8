"""A checkpoint is read once per command: eval, predict, export and a resumed training run
each open the file they start from one time (Lightning's own loads included)."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, compose_config
from seglab.engine.training import train
from seglab.inference.evaluation import evaluate
from seglab.inference.export import export
from seglab.inference.prediction import predict


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny finished training run (best.ckpt and last.ckpt)."""
    output = tmp_path_factory.mktemp("reads") / "run"
    train(compose_config("train", output, TINY))
    return output


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """How many times each file is given to torch.load."""
    counted, load = Counter(), torch.load

    def counting_load(path, *args, **kwargs):
        counted[Path(path).resolve()] += 1
        return load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return counted


def test_eval_reads_its_checkpoint_once(run, tmp_path, reads):
    best = (run / "checkpoints" / "best.ckpt").resolve()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics, _ = evaluate(compose_config("eval", tmp_path / "eval", [
            f"ckpt_path={best}", "trainer.enable_progress_bar=false", "logger=none"]))
    assert metrics["test/mIoU"] == json.loads((run / "metrics.json").read_text())["test/mIoU"]
    assert reads == {best: 1}
    # testing without the training callbacks is the point: Lightning's notice is not shown
    assert not [w for w in caught if "callbacks used to create the checkpoint" in str(w.message)]


def test_predict_and_export_read_their_checkpoint_once(run, tmp_path, reads):
    best = (run / "checkpoints" / "best.ckpt").resolve()
    (tmp_path / "pictures").mkdir()
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "pictures" / "a.png")
    predict(compose_config("predict", tmp_path / "predicted", [
        f"ckpt_path={best}", f"input={tmp_path / 'pictures'}", "predict.num_workers=0"]))
    assert reads == {best: 1}
    export(compose_config("export", tmp_path / "exported", [
        f"ckpt_path={best}", "format=torchscript"]))
    assert reads == {best: 2}


def test_a_resumed_run_reads_its_last_checkpoint_once(run, tmp_path, reads):
    copy = shutil.copytree(run, tmp_path / "run")
    record = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**record, "status": "failed"}))
    saved = copy / ".hydra" / "config.yaml"
    saved.write_text(saved.read_text().replace(str(run), str(copy)))
    metrics, _ = train(compose_config("train", tmp_path / "ignored", [f"resume={copy}"]))
    assert metrics["status"] == "completed"
    assert reads[(copy / "checkpoints" / "last.ckpt").resolve()] == 1
