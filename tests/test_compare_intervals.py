"""seglab-compare's test intervals and paired tests, on run folders whose per-image counts are
written by hand: the numbers are those of `seglab.core.significance` (checked against scipy in
test_significance.py), placed in the right rows, marked and explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seglab.cli.compare import main
from seglab.core.significance import Counts, bootstrap_intervals, holm, paired_test, pooled
from seglab.reports.compare import build_comparison
from seglab.reports.compare_chart import chart_figure
from seglab.reports.run_folders import find_runs, read_runs
from seglab.runs.per_image import PerImageCounts, read_per_image, write_per_image
from test_compare import markdown_rows, read_csv, write_run

CLASSES = ["background", "cat"]
IMAGES = 40


def counts_of(quality: float, seed: int, images: int = IMAGES) -> Counts:
    """Per-image counts of a model that gets about `quality` of each class's union right."""
    rng = np.random.default_rng(seed)
    union = rng.integers(200, 400, (images, 2))
    intersection = np.floor(union * np.clip(rng.normal(quality, 0.08, (images, 2)), 0, 1))
    return Counts(intersection, union, union.sum(1) + 50)


def write_tested_run(folder: Path, counts: Counts, ids: list[str] | None = None,
                     overrides: tuple = (), model: str = "unet") -> Path:
    """A completed run folder with these per-image counts and the scores they give."""
    write_run(folder, overrides=overrides, model=model,
              **{"test/mIoU": counts.mean_iou(), "test/pixel_acc": counts.pixel_accuracy()})
    ids = ids or [f"test_{index:06d}" for index in range(counts.images)]
    write_per_image(folder, PerImageCounts(ids, CLASSES, counts.intersection.astype(np.int64),
                                           counts.union.astype(np.int64),
                                           counts.pixels.astype(np.int64)))
    return folder


@pytest.fixture
def tested_runs(tmp_path: Path) -> tuple[Path, dict[str, Counts]]:
    """Three runs on the same 40 images: a best, one a hair below it, one clearly below."""
    counts = {"best": counts_of(0.80, 0), "close": counts_of(0.80, 3), "worse": counts_of(0.6, 2)}
    for name, run_counts in counts.items():
        write_tested_run(tmp_path / "sweep" / name, run_counts, overrides=(f"model={name}",))
    return tmp_path / "sweep", counts


def test_per_image_file_round_trips_in_its_smallest_type(tmp_path):
    counts = counts_of(0.7, 5)
    ids = [f"image {index}" for index in range(IMAGES)]
    write_tested_run(tmp_path, counts, ids)
    with np.load(tmp_path / "test_per_image.npz") as arrays:
        assert arrays["union"].dtype == np.uint16 and arrays["pixels"].dtype == np.uint16
    back = read_per_image(tmp_path / "test_per_image.npz")
    assert back.ids == ids and back.class_names == CLASSES
    assert np.array_equal(back.intersection, counts.intersection)
    assert np.array_equal(back.pixels, counts.pixels)


def test_a_broken_per_image_file_is_one_line_naming_it(tmp_path, capsys):
    write_tested_run(tmp_path / "sweep" / "a", counts_of(0.7, 1))
    broken = tmp_path / "sweep" / "b" / "test_per_image.npz"
    write_run(broken.parent)
    np.savez(broken, ids=np.array(["x"]))
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "sweep")])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert error == f"error: {broken}: not a seglab per-image file (no class_names, " \
                    "intersection, union, pixels; expected arrays ids, class_names, " \
                    "intersection, union, pixels)\n"
    assert not (tmp_path / "sweep" / "comparison.csv").exists()


def test_intervals_and_holm_adjusted_tests_against_the_best(tested_runs):
    sweep, counts = tested_runs
    main([str(sweep), "--metric", "test/mIoU"])
    table = read_csv(sweep).set_index("run")
    assert table.index.tolist() == ["best", "close", "worse"]
    for name, run_counts in counts.items():
        interval = bootstrap_intervals(run_counts)
        assert table.loc[name, ["test_mIoU_low", "test_mIoU_high"]].tolist() == \
            pytest.approx(interval["mIoU"], abs=1e-12)
        assert table.loc[name, ["test_pixel_acc_low", "test_pixel_acc_high"]].tolist() == \
            pytest.approx(interval["pixel_acc"], abs=1e-12)
    tests = {name: paired_test(counts[name], counts["best"]) for name in ("close", "worse")}
    adjusted = holm([tests["close"].p_value, tests["worse"].p_value])
    for name, p_holm in zip(("close", "worse"), adjusted, strict=True):
        row = table.loc[name]
        assert row["mIoU_vs_best"] == pytest.approx(tests[name].difference, abs=1e-12)
        assert [row["mIoU_vs_best_low"], row["mIoU_vs_best_high"]] == \
            pytest.approx([tests[name].low, tests[name].high], abs=1e-12)
        assert row["p_value"] == pytest.approx(tests[name].p_value)
        assert row["p_holm"] == pytest.approx(p_holm)
    assert table.loc["best", "mIoU_vs_best"] == 0 and pd.isna(table.loc["best", "p_value"])
    assert table["same_as_best"].tolist() == [True, True, False]
    assert adjusted[0] >= 0.05 > adjusted[1]  # the case is what its names say

    cells = {row["run"]: row for row in markdown_rows(sweep / "comparison.md")}
    low, high = bootstrap_intervals(counts["best"])["mIoU"]
    assert cells["best"]["test mIoU"] == f"**{counts['best'].mean_iou():.4f} [{low:.4f}, " \
                                         f"{high:.4f}]**"
    assert cells["close"]["test mIoU"].startswith("**")
    assert not cells["worse"]["test mIoU"].startswith("**")
    assert [cells[name]["p vs best"] for name in ("best", "worse")] == ["best", "0.002"]
    text = (sweep / "comparison.md").read_text()
    assert "95% percentile-bootstrap interval over the test images (2000 resamples, seed 0" in text
    assert "Holm-adjusted" in text


def test_resamples_option_changes_the_draws(tested_runs):
    sweep, counts = tested_runs
    main([str(sweep), "--resamples", "500"])
    table = read_csv(sweep).set_index("run")
    assert table.loc["worse", ["test_mIoU_low", "test_mIoU_high"]].tolist() == \
        pytest.approx(bootstrap_intervals(counts["worse"], resamples=500)["mIoU"], abs=1e-12)
    assert "(500 resamples, seed 0" in (sweep / "comparison.md").read_text()


def test_runs_tested_on_other_images_are_not_paired_and_say_so(tested_runs, capsys):
    sweep, counts = tested_runs
    ids = [f"test_{index:06d}" for index in range(1, IMAGES + 1)]
    write_tested_run(sweep / "shifted", counts["worse"], ids, overrides=("model=shifted",))
    main([str(sweep)])
    table = read_csv(sweep).set_index("run")
    assert table.loc["shifted", ["test_mIoU_low", "test_mIoU_high"]].notna().all()
    assert table.loc["shifted", ["p_value", "same_as_best"]].isna().all()
    assert table.loc["worse", "same_as_best"] == False  # noqa: E712 (a pandas cell)
    note = "note: shifted tested on other images than best, close, worse (40 vs 40 images, " \
           "e.g. 'test_000000' only in one): not paired with them"
    printed = capsys.readouterr().out.splitlines()
    assert note in printed
    assert "[low, high]: 95% interval; marked test mIoU: not significantly below the best " \
           "(see comparison.md)" in printed
    assert f"Note: {note.removeprefix('note: ')}." in (sweep / "comparison.md").read_text()


def test_the_same_images_in_another_order_pair_by_id(tested_runs):
    sweep, counts = tested_runs
    reverse = slice(None, None, -1)
    ids = [f"test_{index:06d}" for index in range(IMAGES)][reverse]
    worse = counts["worse"]
    write_tested_run(sweep / "reversed", Counts(worse.intersection[reverse], worse.union[reverse],
                                                worse.pixels[reverse]), ids,
                     overrides=("model=reversed",))
    main([str(sweep)])
    table = read_csv(sweep).set_index("run")
    assert table.loc["reversed", "mIoU_vs_best"] == table.loc["worse", "mIoU_vs_best"]
    assert table.loc["reversed", "p_value"] == table.loc["worse", "p_value"]


def test_runs_that_cannot_be_told_apart_are_all_marked(tmp_path):
    sweep = tmp_path / "sweep"
    for name, seed in (("a", 0), ("b", 3)):
        write_tested_run(sweep / name, counts_of(0.80, seed), overrides=(f"model={name}",))
    main([str(sweep)])
    assert read_csv(sweep)["same_as_best"].tolist() == [True, True]
    cells = [row["test mIoU"] for row in markdown_rows(sweep / "comparison.md")]
    assert all(cell.startswith("**") for cell in cells), cells


def test_group_by_seed_gives_the_spread_and_the_pooled_interval(tmp_path):
    sweep, members = tmp_path / "sweep", {}
    for index, (model, quality) in enumerate([("a", 0.8), ("a", 0.8), ("b", 0.6), ("b", 0.62)]):
        members.setdefault(model, []).append(counts_of(quality, index))
        write_tested_run(sweep / str(index), members[model][-1], overrides=(f"seed={index}",),
                         model=model)
    comparison = build_comparison(read_runs(find_runs([str(sweep)])), "test/mIoU",
                                  group_by=["seed"])
    frame = comparison.frame.set_index("model")
    for model, runs in members.items():
        together = pooled(runs)
        assert frame.loc[model, "test_mIoU_pooled"] == pytest.approx(together.mean_iou())
        assert frame.loc[model, ["test_mIoU_low", "test_mIoU_high"]].tolist() == \
            pytest.approx(bootstrap_intervals(together)["mIoU"], abs=1e-12)
        assert frame.loc[model, "test_mIoU_mean"] == \
            pytest.approx(np.mean([run.mean_iou() for run in runs]))
    assert frame.loc["b", "p_value"] == pytest.approx(
        paired_test(pooled(members["b"]), pooled(members["a"])).p_value)
    main([str(sweep), "--group-by", "seed"])
    cells = {row["model"]: row for row in markdown_rows(sweep / "comparison.md")}
    assert cells["a"]["pooled test mIoU"].startswith("**") and " ± " in cells["a"]["test mIoU"]
    assert "[" not in cells["a"]["test mIoU"]
    assert "A group's `pooled test mIoU`" in (sweep / "comparison.md").read_text()


def test_a_group_with_a_run_without_counts_gets_no_pooled_interval(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_tested_run(sweep / "0", counts_of(0.8, 0), overrides=("seed=0",))
    write_run(sweep / "1", overrides=("seed=1",), **{"test/mIoU": 0.7})  # an older run
    main([str(sweep), "--group-by", "seed"])
    assert "note: 0 1: no pooled interval, 1 kept no per-image counts" in \
        capsys.readouterr().out.splitlines()
    assert "test_mIoU_low" not in read_csv(sweep).columns


def test_chart_draws_each_interval_as_an_error_bar(tested_runs):
    sweep, counts = tested_runs
    comparison = build_comparison(read_runs(find_runs([str(sweep)])))
    figure = chart_figure(comparison)
    panel = figure.axes[-1]
    assert panel.get_title() == "test mIoU, 95% interval (dark: not below the best)"
    bars = [line for line in panel.get_children() if type(line).__name__ == "LineCollection"]
    spans = sorted(tuple(np.round(segment[:, 0], 6)) for collection in bars
                   for segment in collection.get_segments())
    expected = sorted(tuple(np.round(bootstrap_intervals(run)["mIoU"], 6))
                      for run in counts.values())
    assert spans == expected


def test_runs_without_per_image_counts_get_no_interval_columns(tmp_path):
    write_run(tmp_path / "sweep" / "0")
    write_run(tmp_path / "sweep" / "1", **{"test/mIoU": 0.5})
    main([str(tmp_path / "sweep")])
    assert "test_mIoU_low" not in read_csv(tmp_path / "sweep").columns
    assert "bootstrap" not in (tmp_path / "sweep" / "comparison.md").read_text()
