"""Data problems are found before training, reported with their files, and can be skipped."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import compose_config, run_cli
from fixtures import ART_COLOURS, write_bdd, write_folder, write_kitti_road, write_pets, write_voc
from seglab.data.files import DataError
from seglab.engine.training import train
from seglab.inference.evaluation import evaluate

SMALL = ["data.input_size=[32,32]", "data.batch_size=2", "data.num_workers=0",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none",
         "encoder=mobilenet_v2", "data.split_fractions={train:0.5,val:0.25,test:0.25}"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))


def write_broken(root: Path) -> dict[str, str]:
    """A folder dataset of 12 samples with four kinds of damage; returns file -> problem."""
    write_folder(root, count=12)
    images, masks = root / "images", root / "masks"
    data = (images / "painting_000.jpg").read_bytes()
    (images / "painting_000.jpg").write_bytes(data[: len(data) // 3])
    mask = np.asarray(Image.open(masks / "painting_001.png")).copy()
    mask[0, 0] = 37
    Image.fromarray(mask).save(masks / "painting_001.png")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(masks / "painting_002.png")
    (masks / "painting_003.png").unlink()
    return {"painting_000.jpg": "unreadable or truncated",
            "painting_001.png": "mask values [37] outside the classes 0..1",
            "painting_002.jpg": "image is 40×52 but its mask",
            "painting_003.jpg": "no mask with stem 'painting_003'"}


BROKEN_ARGS = ["data=folder", "data.split_fractions={train:0.5,val:0.25,test:0.25}"]


def test_check_data_reports_every_problem_with_its_file(tmp_path):
    expected = write_broken(tmp_path / "data")
    result = run_cli(["seglab-check-data", *BROKEN_ARGS, f"data.root={tmp_path}/data",
                      f"hydra.run.dir={tmp_path}/check"], cwd=tmp_path,
                     SEGLAB_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 1, result.stderr
    report = (tmp_path / "check" / "data_report.txt").read_text()
    for text in (report, result.stdout):  # off a terminal: one whole line per problem
        for file, problem in expected.items():
            line = next((line for line in text.splitlines() if file in line), "")
            assert line.startswith(f"problem: {tmp_path}/data/") and problem in line, (file, text)
    assert "4 problem(s):" in report and "class pixel share" in report


def test_check_data_on_clean_data_exits_zero(tmp_path):
    write_voc(tmp_path / "voc")
    result = run_cli(["seglab-check-data", "data=voc", f"data.root={tmp_path}/voc",
                      f"hydra.run.dir={tmp_path}/check"], cwd=tmp_path,
                     SEGLAB_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "data check" in result.stdout and "person" in result.stdout


def test_training_stops_before_the_first_step(tmp_path):
    write_broken(tmp_path / "data")
    cfg = compose_config("train", tmp_path / "run",
                         [*SMALL, *BROKEN_ARGS[:1], f"data.root={tmp_path}/data",
                          "trainer=debug"])
    with pytest.raises(DataError, match="the data check found 4 problem"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_skip_trains_on_the_rest_and_counts_the_skipped(tmp_path):
    write_broken(tmp_path / "data")
    cfg = compose_config("train", tmp_path / "run",
                         [*SMALL, *BROKEN_ARGS[:1], f"data.root={tmp_path}/data",
                          "data.on_error=skip", "trainer.max_epochs=1"])
    metrics, objects = train(cfg)
    assert metrics["status"] == "completed"
    assert metrics["skipped_samples"] == 3  # the fourth problem has no pair to skip
    kept = sum(len(objects["datamodule"].split(s)) for s in ("train", "val", "test"))
    assert kept == 11 - 3
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["skipped_samples"] == 3
    evaluated, _ = evaluate(compose_config(
        "eval", tmp_path / "eval", [f"ckpt_path={tmp_path}/run/checkpoints/best.ckpt"]))
    for key in ("test/mIoU", "test/loss", "test/pixel_acc"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-4), key


def test_checks_are_cached_by_size_and_mtime(tmp_path):
    write_folder(tmp_path / "data", count=6)
    cfg = compose_config("train", tmp_path / "run", [*SMALL, "data=folder",
                                                     f"data.root={tmp_path}/data"])
    from seglab.engine.builders import build_datamodule
    first = build_datamodule(cfg).check(progress=False)
    assert list((tmp_path / "cache" / "checks").glob("*.json"))
    mask = tmp_path / "data/masks/painting_000.png"
    values = np.asarray(Image.open(mask)).copy()
    values[0, 0] = 9
    Image.fromarray(values).save(mask)
    second = build_datamodule(cfg).check(progress=False)
    assert sum(len(r.problems) for r in first) == 0
    assert any("painting_000.png: mask values [9]" in p for r in second for p in r.problems)


WRITERS = {
    "voc": lambda root: write_voc(root, count=8),
    "pets": lambda root: write_pets(root),
    "bdd": lambda root: write_bdd(root),
    "kitti_road": lambda root: write_kitti_road(root),
    "art": lambda root: write_folder(root, colours=ART_COLOURS),
    "folder": lambda root: write_folder(root),
}


@pytest.mark.parametrize("name", WRITERS)
def test_fast_dev_run_on_each_dataset(tmp_path, name):
    WRITERS[name](tmp_path / "data")
    overrides = [*SMALL[:-1], f"data={name}", f"data.root={tmp_path}/data", "trainer=debug"]
    if name in ("kitti_road", "folder", "art"):
        overrides.append(SMALL[-1])
    metrics, _ = train(compose_config("train", tmp_path / "run", overrides))
    assert metrics["status"] == "completed" and metrics["data"] == name
    assert metrics["num_classes"] == len(metrics["class_names"])
    assert (tmp_path / "run" / "predictions.png").is_file()


def test_odd_but_valid_files_pass_the_check_and_train(tmp_path):
    write_folder(tmp_path / "data", count=8)
    images = tmp_path / "data" / "images"
    Image.open(images / "painting_000.jpg").convert("CMYK").save(images / "painting_000.jpg")
    Image.open(images / "painting_001.jpg").convert("L").save(images / "painting_001.jpg")
    Image.open(images / "painting_002.jpg").convert("RGBA").save(images / "painting_002.jpg",
                                                                 format="PNG")
    cfg = compose_config("train", tmp_path / "run", [
        *SMALL, "data=folder", f"data.root={tmp_path}/data", "trainer=debug"])
    metrics, objects = train(cfg)
    assert metrics["status"] == "completed" and metrics["skipped_samples"] == 0
    reports = objects["datamodule"].check(progress=False)
    assert sum(len(report.problems) for report in reports) == 0
