"""The data-pipeline and inference benchmarks of `make bench`, at their toy sizes: the rows
they give, the files they write, and the reference pipeline they compare against."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks import data_pipeline, inference
from benchmarks.__main__ import parse_arguments
from benchmarks.measure import Row
from PIL import Image

from seglab.data.voc import voc_dataset


def toy_args(benchmark: str) -> argparse.Namespace:
    """The options of `python -m benchmarks --only <benchmark> --toy --repeats 1`."""
    return parse_arguments(["--only", benchmark, "--toy", "--repeats", "1"])[0]


def check_comparison(row: Row, benchmark: str, unit: str, goal: str | None) -> None:
    """Positive figures for both sides, their ratio, and the goal's verdict on it."""
    assert (row.benchmark, row.unit, row.goal) == (benchmark, unit, goal)
    first, second = row.values.values()
    assert first > 0 and second > 0
    assert row.ratio == pytest.approx(first / second)
    assert row.met == (None if goal is None else row.ratio >= float(goal.split()[-1]))
    assert len(row.repeats) == 1


def test_voc_folder_is_the_official_layout_and_seglab_reads_it(tmp_path):
    files = data_pipeline.write_voc(tmp_path, count=4)
    base = tmp_path / "VOCdevkit" / "VOC2012"
    ids = (base / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert ids == [image.stem for image, _ in files]
    assert [(image, mask) for image, mask in files] == [
        (base / "JPEGImages" / f"{name}.jpg", base / "SegmentationClass" / f"{name}.png")
        for name in ids]
    for image, mask in files:
        with Image.open(image) as picture, Image.open(mask) as labels:
            assert (picture.format, picture.mode, picture.size) == ("JPEG", "RGB", (500, 375))
            assert (labels.format, labels.mode, labels.size) == ("PNG", "P", (500, 375))
            values = set(np.unique(np.asarray(labels)).tolist())
        assert 255 in values and values <= {0, *data_pipeline.LABELS, 255}
        assert image.stat().st_size > 40_000  # noise: not trivially compressible
    dataset = voc_dataset(str(tmp_path), "train")
    assert len(dataset) == 4 and dataset.problems == []
    assert dataset.load(0)["mask"].shape == (375, 500)


def test_reference_pipeline_gives_normalised_480_crops(tmp_path):
    image, mask = data_pipeline.write_voc(tmp_path, count=1)[0]
    sample = data_pipeline.reference_sample(image, mask, data_pipeline.reference_transform())
    assert sample["image"].shape == (3, 480, 480) and sample["image"].dtype == torch.float32
    assert sample["image"].min() < 0  # normalised
    assert sample["mask"].shape == (1, 480, 480) and sample["mask"].dtype == torch.int64
    assert set(sample["mask"].unique().tolist()) <= {0, *data_pipeline.LABELS, 255}


def test_data_benchmark_rows():
    rows = data_pipeline.run(toy_args("data"))
    # voc trains on 320×320 crops normalised on the device: a second row compares it like for
    # like, at the reference's 480 and normalised in the workers
    assert [row.case.split(" vs ")[0] for row in rows] == [
        "voc 320×320 uint8", "voc 480×480 normalised in workers", "voc 320×320 uint8"]
    assert all("16 pairs 500×375, 2 workers, batch 8" in row.case for row in rows)
    for row in rows[:2]:
        assert list(row.values) == ["seglab", "reference"]
        check_comparison(row, "data", "samples/s", "≥ 1.5")
    assert list(rows[2].values) == ["seglab", "decode-only"]
    check_comparison(rows[2], "data", "samples/s", None)


@pytest.mark.slow
def test_inference_benchmark_rows():
    rows = inference.run(toy_args("inference"))
    assert len(rows) == 6
    setting = "2 JPEGs 80×60 → 64×64, unet resnet18"
    for row, batch in zip(rows[:2], (8, 1), strict=True):  # the goal: against the script
        assert row.case == f"predict vs hand-written script batch {batch}, {setting}"
        assert list(row.values) == ["seglab-predict", "script"]
        check_comparison(row, "inference", "images/s", "≥ 1")
    for row, batch in zip(rows[2:4], (8, 1), strict=True):  # the ceiling, reported
        assert row.case == f"predict vs bare model(x) batch {batch}, {setting}"
        assert list(row.values) == ["seglab-predict", "bare"]
        check_comparison(row, "inference", "images/s", None)
    assert rows[0].values["seglab-predict"] == rows[2].values["seglab-predict"]
    assert list(rows[4].values) == ["overlays", "masks only"]
    check_comparison(rows[4], "inference", "images/s", None)
    memory = rows[5]
    assert (memory.benchmark, memory.unit, memory.ratio) == ("inference", "MiB", None)
    assert "slide 400×300" in memory.case
    assert 100 < memory.values["value"] < 8192


def test_crash_rate_names_the_signal_and_faulthandlers_report(tmp_path):
    from benchmarks.crash_rate import outcome
    (tmp_path / "crash.log").write_text("Fatal Python error: Segmentation fault\n\nThread 0x1\n")
    assert outcome(0, tmp_path) == "completed"
    assert outcome(1, tmp_path) == "exit 1"
    assert outcome(-11, tmp_path) == "SIGSEGV: Segmentation fault (see crash.log)"
    assert outcome(-9, tmp_path / "nothing") == "SIGKILL"


@pytest.mark.slow
def test_crash_rate_runs_the_command_and_counts(tmp_path, capsys, monkeypatch):
    from benchmarks.crash_rate import main
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the tests' faults module
    tiny = ["trainer=debug", "data.input_size=[32,32]", "data.batch_size=4", "logger=none",
            "trainer.enable_progress_bar=false", "+callbacks.kill._target_=faults.KillAt",
            "+callbacks.kill.where=train_batch", "+callbacks.kill.step=1",
            "+callbacks.kill.how=abort"]
    assert main(["--runs", "2", "--parallel", "2", "--keep", str(tmp_path / "kept"),
                 *tiny]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sorted(out[:2]) == ["run 1: SIGABRT: Aborted (see crash.log)",
                               "run 2: SIGABRT: Aborted (see crash.log)"]
    assert out[2].startswith("2 of 2 runs did not complete (seglab-train trainer=debug")
    assert len(list((tmp_path / "kept").iterdir())) == 2
