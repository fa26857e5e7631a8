"""The GPU check (benchmarks/gpu.py): its one-line refusal without CUDA, its step arithmetic
and options, and one whole `--toy` run on the CPU, so that it works the one time a GPU runs
it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from benchmarks.gpu import PARTS, TOY_FCN8S_RUNS, merged, parse_arguments
from benchmarks.gpu_speed import CLASSES, MMSEG_FPS, NETS, TOY_NETS, step_figures

from conftest import toy_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_refuses_in_one_line_without_cuda():
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    finished = subprocess.run([sys.executable, "-m", "benchmarks.gpu"], cwd=ROOT,
                              env=environment, capture_output=True, text=True, timeout=120)
    lines = (finished.stdout + finished.stderr).strip().splitlines()
    assert finished.returncode == 2, lines
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "--toy" in lines[0]


def test_step_figures_leave_out_the_warmup_and_split_off_the_data_wait():
    started, ended = [0.5, 1.6, 2.7, 3.8], [1.5, 2.5, 3.5, 4.5]
    figures = step_figures(started, ended, warmup=1, batch=10)
    assert figures["images_per_s"] == pytest.approx(10.0)  # 30 images from 1.5 s to 4.5 s
    assert figures["data_wait_share"] == pytest.approx(0.2)  # 0.1 + 0.2 + 0.3 of 3 s
    assert figures["step_ms"] == pytest.approx(1000.0)
    assert figures["compute_ms"] == pytest.approx(800.0)  # median of 0.9, 0.8, 0.7
    assert figures["warmup_extra_s"] == pytest.approx(0.2)  # 1.0 s against a steady 0.8 s
    with pytest.raises(ValueError):
        step_figures(started[:1], ended[:1], warmup=1, batch=10)


def test_parts_are_chosen_by_name_or_number_and_run_in_order():
    assert parse_arguments(["--only", "predict", "1"]).parts == ["training", "predict"]
    assert parse_arguments([]).parts == list(PARTS)
    with pytest.raises(SystemExit):
        parse_arguments(["--only", "7"])


def test_toy_overrides_replace_the_keys_they_set():
    assert merged(["a=1", "+b=2", "c=3"], ["b=5", "++a=0"]) == ["c=3", "b=5", "++a=0"]


def test_every_network_has_mmsegmentations_figure_for_each_dataset():
    for net in NETS:
        for dataset in CLASSES:
            config, fps = MMSEG_FPS[(net.model, dataset)]
            assert config.startswith(f"{net.model}_r50-d8_") and fps > 0


@pytest.mark.slow
def test_toy_run_writes_every_part_and_prints_the_table(tmp_path: Path):
    path, results, finished = toy_benchmark("benchmarks.gpu", tmp_path)
    assert path.name == f"cpu-toy-{date.today().isoformat()}.json"
    assert results["complete"] and results["machine"]["gpu_details"]["available"] is False
    assert list(results["parts"]) == list(PARTS)
    assert {name: part["status"] for name, part in results["parts"].items()} == \
        dict.fromkeys(PARTS, "ok"), results["parts"]
    rows = {part: [row for row in results["rows"] if row["benchmark"] == part]
            for part in PARTS}
    assert len(rows["training"]) == 5  # the scenes, then the four cases
    assert all(row["values"]["value"] > 0 for row in rows["training"]), rows["training"]
    assert rows["training"][-1]["extra"]["compiled"] is True
    assert len(rows["inference"]) == len(TOY_NETS) * 2 * 2  # two sizes, two precisions
    assert all(row["ratio"] > 0 and row["extra"]["params_run"] > 0
               for row in rows["inference"]), rows["inference"]
    assert rows["default_run"][0]["extra"]["test/mIoU"] is not None
    assert rows["default_run"][0]["extra"]["test/images_per_s"] > 0
    assert rows["default_run"][0]["extra"]["peak_memory_kind"] == "rss"
    assert "equal" in rows["ddp"][-1]["extra"]
    assert rows["fcn8s"][0]["extra"]["exit_statuses"] == [0] * TOY_FCN8S_RUNS
    assert len(rows["predict"]) == 4 and all(row["values"] for row in rows["predict"])
    table = [line for line in finished.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(PARTS) + len(results["rows"])
