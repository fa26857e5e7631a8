"""seglab-compare: run folders written by hand become a table, a CSV and a chart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from seglab.cli.compare import main
from seglab.reports.compare import build_comparison
from seglab.reports.compare_chart import MARKERS, chart_figure, point_styles, render_chart
from seglab.reports.run_folders import find_runs, read_runs

BIN = Path(sys.executable).parent
CLASSES = ["background", "cat"]
OUTPUTS = ("comparison.md", "comparison.csv", "comparison.png")


def write_run(folder: Path, status: str | None = "completed", overrides: tuple = (),
              **metrics) -> Path:
    """A run folder: `.hydra/` files and, unless status is None, a metrics.json."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {override}\n" for override in overrides))
    (folder / ".hydra" / "config.yaml").write_text(
        "model:\n  name: fcn\nencoder:\n  name: resnet50\ndata:\n  name: voc\n")
    if status == "completed":
        metrics = {"model": "unet", "encoder": "resnet18", "data": "pets", "seed": 1,
                   "class_names": CLASSES, "params": 14_000_000, "gflops": 10.0,
                   "train_seconds": 300.0, "epochs": 10, "best_epoch": 7, "val/mIoU": 0.4,
                   "val/mIoU_best": 0.5, "val/loss": 0.3, "test/mIoU": 0.45,
                   "test/pixel_acc": 0.9, "test/iou_background": 0.8, "test/iou_cat": 0.1,
                   "versions": {"torch": "2"}, "checkpoint": "x.ckpt", **metrics}
    if status is not None:
        (folder / "metrics.json").write_text(json.dumps({"status": status, **metrics}))
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Six jobs of an optimizer × seed sweep: three completed, one failed, one killed while
    running, one that never wrote metrics.json; `trainer.max_epochs` is the same in all."""
    root = tmp_path / "sweep"

    def job(optimizer: str, seed: int) -> tuple:
        return ("model=unet", f"optimizer={optimizer}", f"seed={seed}", "trainer.max_epochs=9")

    write_run(root / "0", overrides=job("adam", 1), **{"val/mIoU_best": 0.5, "test/iou_cat": 0.2})
    write_run(root / "1", overrides=job("adam", 2), **{"val/mIoU_best": 0.7})
    write_run(root / "2", overrides=job("sgd", 1),
              **{"val/mIoU_best": 0.55, "params": 3_500_000, "train_seconds": 90.0})
    write_run(root / "3", "failed", job("sgd", 2),
              error="CUDA out of memory.\nTried to allocate 2.00 GiB")
    write_run(root / "10", "running", job("adam", 3), model="unet", encoder="resnet18",
              data="pets")
    write_run(root / "11", None, job("sgd", 3))
    (root / "multirun.yaml").write_text("hydra: {}\n")
    (root / "0" / "checkpoints" / "nested").mkdir(parents=True)
    (root / "0" / "checkpoints" / "nested" / "metrics.json").write_text("not json")
    return root


def read_csv(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "comparison.csv", dtype={"run": str})


def test_sweep_becomes_table_csv_and_chart(sweep, capsys):
    main([str(sweep)])
    table = read_csv(sweep)
    assert table["run"].tolist() == ["1", "2", "0", "3", "10", "11"]
    assert table["status"].tolist() == ["completed"] * 3 + ["failed", "running", "unfinished"]
    assert table.columns.tolist() == [
        "run", "status", "model", "encoder", "data", "optimizer", "seed", "params_M", "gflops",
        "images_per_s", "peak_memory_mib", "epochs", "train_seconds", "val_mIoU_best",
        "test_mIoU", "test_pixel_acc", "iou_background", "iou_cat", "reproduces", "error",
        "run_dir"]
    first = table.iloc[0]
    assert first["params_M"] == pytest.approx(14.0) and first["train_seconds"] == 300.0
    assert table.set_index("run").loc["0", "iou_cat"] == pytest.approx(0.2)
    failed = table.iloc[3]
    assert failed["error"] == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert table.iloc[3:][["val_mIoU_best", "params_M", "test_mIoU"]].isna().all().all()
    assert table.iloc[5][["model", "encoder", "data"]].tolist() == ["fcn", "resnet50", "voc"]
    assert table["run_dir"].iloc[0] == str(sweep.resolve() / "1")

    png = (sweep / "comparison.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    out = capsys.readouterr().out
    assert "6 runs: 3 completed, 1 failed, 1 running, 1 unfinished" in out
    assert [line for line in out.splitlines() if line.startswith("wrote")] == [
        f"wrote {sweep / name}" for name in OUTPUTS]


def markdown_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the Markdown table in `path`, as header → cell text."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    header, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def test_markdown_marks_the_best_of_each_column(sweep):
    main([str(sweep)])
    cell = {row["run"]: row for row in markdown_rows(sweep / "comparison.md")}
    assert list(cell) == ["1", "2", "0", "3", "10", "11"]
    assert cell["1"]["best val mIoU"] == "**0.7000**" and cell["0"]["best val mIoU"] == "0.5000"
    assert cell["2"]["params (M)"] == "**3.50**" and cell["1"]["params (M)"] == "14.00"
    assert cell["2"]["train time"] == "**1m30s**" and cell["1"]["train time"] == "5m00s"
    assert cell["0"]["IoU cat"] == "**0.2000**"
    assert "**" not in cell["1"]["test mIoU"] + cell["1"]["epochs"]  # all equal / not a score
    assert cell["3"]["status"] == "failed" and cell["3"]["error"].startswith("CUDA out of")
    assert cell["10"]["status"] == "running" and cell["10"]["best val mIoU"] == ""
    assert cell["11"]["status"] == "unfinished"
    assert "optimizer" in cell["1"] and "trainer.max_epochs" not in cell["1"]


def test_speed_and_memory_are_columns_left_blank_for_runs_without_them(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "new", overrides=("seed=1",),
              **{"test/images_per_s": 250.0, "peak_memory_mib": 1800.0})
    write_run(runs / "faster", overrides=("seed=2",),
              **{"test/images_per_s": 400.5, "peak_memory_mib": 2100.4})
    write_run(runs / "old", overrides=("seed=3",))  # from before they were measured
    main([str(runs)])
    table = read_csv(runs).set_index("run")
    assert table.loc["faster", "images_per_s"] == 400.5
    assert table.loc["new", "peak_memory_mib"] == 1800.0
    assert table.loc["old", ["images_per_s", "peak_memory_mib"]].isna().all()
    cell = {row["run"]: row for row in markdown_rows(runs / "comparison.md")}
    assert cell["faster"]["images/s"] == "**400.5**" and cell["new"]["images/s"] == "250.0"
    assert cell["new"]["peak MiB"] == "**1800**" and cell["faster"]["peak MiB"] == "2100"
    assert cell["old"]["images/s"] == cell["old"]["peak MiB"] == ""
    assert "images/s: the test's forward passes alone" in (runs / "comparison.md").read_text()
    figure = chart_figure(build_comparison(read_runs(find_runs([str(runs)]))))
    panels = figure.axes[1:]
    assert [axes.get_xlabel() for axes in panels] == [
        "parameters (M)", "train time (min)", "test images/s"]
    assert sum(len(bars.lines[0].get_xdata()) for bars in panels[2].containers) == 2


def test_runs_without_speed_keep_the_three_chart_panels_and_no_cost_note(sweep):
    main([str(sweep)])
    markdown = (sweep / "comparison.md").read_text()
    assert "images/s:" not in markdown and "| images/s" not in markdown
    assert len(chart_figure(build_comparison(read_runs(find_runs([str(sweep)])))).axes) == 3


def test_group_by_seed_gives_mean_std_and_n(sweep):
    main([str(sweep), "--group-by", "seed"])
    table = read_csv(sweep)
    assert "seed" not in table.columns and "run" not in table.columns
    assert {"n", "n_failed", "n_unfinished", "val_mIoU_best_mean", "val_mIoU_best_std",
            "test_mIoU_mean", "runs"} <= set(table.columns)
    adam = table.set_index("optimizer").loc["adam"]
    assert adam["val_mIoU_best_mean"] == pytest.approx(0.6)
    assert adam["val_mIoU_best_std"] == pytest.approx(0.14142, abs=1e-5)
    assert (adam["n"], adam["n_failed"], adam["n_unfinished"]) == (2, 0, 1)
    assert adam["runs"] == "0 1 10"
    sgd = table.set_index("optimizer").loc[["sgd"]]
    assert sgd["n"].tolist() == [1, 0] and sgd["n_failed"].tolist() == [0, 1]
    assert pd.isna(sgd["val_mIoU_best_std"].iloc[0])  # one run: no std
    assert table["n"].tolist() == [2, 1, 0]  # best mean first, the group without results last
    adam_row, sgd_row, _ = markdown_rows(sweep / "comparison.md")
    assert adam_row["best val mIoU"] == "**0.6000 ± 0.1414**" and adam_row["n"] == "2"
    assert sgd_row["best val mIoU"] == "0.5500" and adam_row["failed"] == ""
    assert adam_row["params (M)"] == "14.00"  # std 0 is not shown


def test_reproduced_run_follows_its_source(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "a", overrides=("seed=1",), **{"val/mIoU_best": 0.9})
    source = write_run(runs / "b", overrides=("seed=2",), **{"val/mIoU_best": 0.5})
    write_run(runs / "c", overrides=("seed=3",), **{"val/mIoU_best": 0.7})
    write_run(runs / "d", overrides=("seed=2",), reproduces=str(source),
              **{"val/mIoU_best": 0.51})
    main([str(runs), "--out", str(tmp_path / "report")])
    table = read_csv(tmp_path / "report")
    assert table["run"].tolist() == ["a", "c", "b", "d"]
    assert table.set_index("run").loc["d", "reproduces"] == "b"
    assert not (runs / "comparison.md").exists()


def test_sort_accepts_csv_names_and_metrics_keys(sweep):
    main([str(sweep), "--sort", "test/pixel_acc"])
    by_key = read_csv(sweep)["run"].tolist()
    main([str(sweep), "--sort", "test_pixel_acc"])
    assert read_csv(sweep)["run"].tolist() == by_key == ["0", "1", "2", "3", "10", "11"]
    main([str(sweep), "--sort", "run"])
    assert read_csv(sweep)["run"].tolist() == ["0", "1", "2", "3", "10", "11"]
    main([str(sweep), "--sort", "params", "--metric", "val/loss"])
    table = read_csv(sweep)
    assert table["run"].tolist()[:3] == ["2", "0", "1"]  # fewest parameters first
    assert "val_loss" in table.columns


def test_glob_over_two_sweeps_labels_runs_and_writes_to_their_parent(tmp_path):
    for sweep in ("sweepA", "sweepB"):
        for job in (2, 10):
            write_run(tmp_path / "multirun" / sweep / str(job), overrides=(f"seed={job}",),
                      **{"val/mIoU_best": job / 100})
    main([str(tmp_path / "multirun" / "sweep*"), "--sort", "run"])
    table = read_csv(tmp_path / "multirun")
    assert table["run"].tolist() == ["sweepA/2", "sweepA/10", "sweepB/2", "sweepB/10"]
    assert "seed" in table.columns and "optimizer" not in table.columns


def test_terminal_view_fits_100_columns_and_names_what_it_hides(sweep, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the view still fits 100
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    main([str(sweep)])
    lines = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out).splitlines()
    assert max(len(line) for line in lines) <= 100
    note = next(line for line in lines if line.startswith("not shown (see comparison.md): "))
    assert "per-class IoU" in note and "epochs" in note
    assert any(line.split()[:2] == ["1", "completed"] for line in lines)
    assert not any("|" in line for line in lines)
    assert "IoU cat" in (sweep / "comparison.md").read_text()  # hidden on screen only


def test_evaluation_folders_show_their_test_scores(tmp_path, capsys):
    for name, miou in (("eval_a", 0.61), ("eval_b", 0.66)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"status": "completed", "model": "unet", "encoder": name, "data": "pets",
             "class_names": CLASSES, "test/mIoU": miou, "test/iou_cat": miou,
             "evaluated_run": "/runs/x"}))
    main([str(tmp_path)])
    rows = markdown_rows(tmp_path / "comparison.md")
    assert [row["run"] for row in rows] == ["eval_b", "eval_a"]  # headline: test/mIoU
    assert rows[0]["test mIoU"] == "**0.6600**" and rows[1]["IoU cat"] == "0.6100"
    assert "best val mIoU" not in rows[0] and "params (M)" not in rows[0]
    assert "Sorted by test mIoU (best first)" in (tmp_path / "comparison.md").read_text()


def test_point_styles_give_a_colour_per_model_and_a_marker_per_encoder():
    frame = pd.DataFrame({"model": ["unet", "fcn", "unet"],
                          "encoder": ["resnet18", "resnet18", "resnet34"]}, index=[4, 7, 9])
    styles = point_styles(frame)
    assert styles.index.tolist() == [4, 7, 9]
    assert styles.loc[4, "colour"] == styles.loc[9, "colour"] != styles.loc[7, "colour"]
    assert styles.loc[4, "marker"] == styles.loc[7, "marker"] != styles.loc[9, "marker"]


def test_point_styles_cycle_the_markers_in_natural_order():
    encoders = [f"resnet{depth}" for depth in range(len(MARKERS) + 1)][::-1]
    styles = point_styles(pd.DataFrame({"model": "unet", "encoder": encoders}))
    assert styles["marker"].tolist() == [*MARKERS, MARKERS[0]][::-1]  # resnet12 gets "o"


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"model": ["unet"], "data": ["pets"]}),
    pd.DataFrame({"model": ["unet", "fcn"], "encoder": ["resnet18", None]}),
])
def test_point_styles_need_a_model_and_encoder_in_every_row(frame):
    assert point_styles(frame) is None


@pytest.fixture
def model_runs(tmp_path: Path) -> list:
    """Five completed runs of three model-encoder pairs, two seeds each for two of them, and a
    failed pspnet run (no point, so not in the legend)."""
    root = tmp_path / "models"
    jobs = [("unet", "resnet18", 1, 0.6), ("unet", "resnet18", 2, 0.64),
            ("unet", "resnet34", 1, 0.62), ("fcn", "resnet18", 1, 0.5),
            ("fcn", "resnet18", 2, 0.52)]
    for label, (model, encoder, seed, miou) in enumerate(jobs):
        write_run(root / str(label), overrides=(f"model={model}", f"encoder={encoder}",
                                                f"seed={seed}"),
                  model=model, encoder=encoder, **{"val/mIoU_best": miou})
    write_run(root / "5", "failed", ("model=pspnet", "encoder=resnet50", "seed=1"),
              model="pspnet", encoder="resnet50", data="pets")
    return read_runs(find_runs([str(root)]))


def legend_entries(figure) -> dict[str, list[str]]:
    return {legend.get_title().get_text(): [text.get_text() for text in legend.get_texts()]
            for legend in figure.legends}


def scatter_notes(figure) -> list[str]:
    """The texts written into the two scatter panels."""
    return sorted(text.get_text() for axes in figure.axes[1:] for text in axes.texts)


@pytest.mark.parametrize(("group_by", "points"), [((), 5), (("seed",), 3)])
def test_chart_points_are_named_by_colour_and_marker(model_runs, group_by, points):
    comparison = build_comparison(model_runs, group_by=group_by)
    figure = chart_figure(comparison)
    assert legend_entries(figure) == {"model": ["fcn", "unet"],
                                      "encoder": ["resnet18", "resnet34"]}
    assert scatter_notes(figure) == []
    for axes in figure.axes[1:]:
        assert sum(len(bars.lines[0].get_xdata()) for bars in axes.containers) == points
        assert all(bars.has_yerr == bool(group_by) for bars in axes.containers)
    assert render_chart(comparison).startswith(b"\x89PNG")


def test_chart_labels_points_when_a_row_has_no_encoder(model_runs):
    comparison = build_comparison(model_runs)
    comparison.frame.loc[0, "encoder"] = None
    figure = chart_figure(comparison)
    assert figure.legends == []
    assert scatter_notes(figure) == sorted(["0", "1", "2", "3", "4"] * 2)


def test_chart_grouped_by_model_labels_points_with_the_group(model_runs):
    comparison = build_comparison(model_runs, group_by=["model", "seed"])
    figure = chart_figure(comparison)
    assert figure.legends == []
    assert scatter_notes(figure) == ["resnet18", "resnet18", "resnet34", "resnet34"]
    assert render_chart(comparison).startswith(b"\x89PNG")


@pytest.mark.parametrize(("arguments", "code", "message"), [
    (["missing"], 2, "no such folder: {root}/missing"),
    (["nothing*"], 2, "no folder matches '{root}/nothing*'"),
    (["empty"], 2, "no run folders (metrics.json or .hydra/config.yaml) below {root}/empty"),
    (["broken"], 1, "{root}/broken/0/metrics.json: not readable JSON"),
    (["foreign"], 1, "{root}/foreign/0/metrics.json: not a seglab metrics.json"),
    (["listless"], 1, "{root}/listless/0/.hydra/overrides.yaml: expected a YAML list"),
    (["sweep", "--sort", "speed"], 2, "unknown --sort key 'speed'; valid: run, status"),
    (["sweep", "--group-by", "seed,lr"], 2,
     "unknown --group-by key 'lr'; valid: model, encoder, data, optimizer, seed"),
    (["sweep", "--metric", "test/dice"], 2, "unknown --metric key 'test/dice'; valid: "),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, sweep, capsys, arguments, code,
                                                  message):
    root = tmp_path
    (root / "empty" / "logs").mkdir(parents=True)
    (write_run(root / "broken" / "0") / "metrics.json").write_text("{not json")
    (write_run(root / "foreign" / "0") / "metrics.json").write_text('{"loss": 1}')
    (write_run(root / "listless" / "0") / ".hydra" / "overrides.yaml").write_text("seed: 1")
    before = sorted(root.rglob("*"))
    paths = [str(root / arguments[0]), *arguments[1:]]
    with pytest.raises(SystemExit) as raised:
        main(paths)
    assert raised.value.code == code
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: " + message.format(root=root))
    assert sorted(root.rglob("*")) == before


def test_console_script_prints_grepable_lines_without_importing_torch(sweep, tmp_path):
    result = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "seglab-compare"),
                             str(sweep), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("| 3 "))
    assert "| failed " in row and "CUDA out of memory" in row
    assert f"wrote {tmp_path / 'out' / 'comparison.png'}" in result.stdout
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pandas" in imported and "seglab.reports.compare" in imported
    assert not imported & {"torch", "lightning", "hydra", "omegaconf"}
