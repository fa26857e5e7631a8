"""The benchmark harness (`make bench`): its measuring core on hand-made numbers, its options,
and one whole run at toy size, so it cannot rot."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from benchmarks.__main__ import parse_arguments
from benchmarks.measure import compare, interleaved, single

from conftest import toy_benchmark

ROOT = Path(__file__).resolve().parents[1]
MACHINE_KEYS = {"cpu", "logical_cores", "usable_cores", "torch_threads", "gpu", "versions",
                "git_commit"}
# the toy run's cases of training, inference, startup and memory (the switches run at the
# config's own precision, which depends on the machine)
EXPECTED_CASES = {
    "training": ["train 32²×4 fp32", "validate 32²×4 fp32",
                 "validate vs forward only 32²×4 fp32", "channels_last vs plain, train 32²×4",
                 "normalize_on_device vs plain, train 32²×4"],
    "inference": ["predict vs hand-written script batch 8",
                  "predict vs hand-written script batch 1", "predict vs bare model(x) batch 8",
                  "predict vs bare model(x) batch 1",
                  "predict with overlays vs masks only batch 8", "predict slide"],
    "startup": ["seglab-train --help", "seglab-train model=unett", "seglab-train --cfg job",
                "python -c 'import seglab'"],
    "memory": ["peak RSS, seglab-train, toy run"],
    "significance": ["test stage, 16 scenes 64², 4 classes",
                     "confusion-matrix update with per-image counts vs alone, 8×64², 20 classes",
                     "write per-image file + intervals, 200×20", "seglab-compare 2 runs × 200×20",
                     "seglab-compare 3 runs × 16 images"],
}


def counting(name: str, calls: list[str]):
    """A side that records its calls and returns 1, 2, 3... in turn."""
    def measure() -> float:
        calls.append(name)
        return float(calls.count(name))
    return measure


def test_interleaved_alternates_the_sides_after_the_warmup():
    calls: list[str] = []
    figures = interleaved({"a": counting("a", calls), "b": counting("b", calls)}, repeats=3,
                          warmup=2)
    assert calls == ["a", "b"] * 5
    assert figures == {"a": [3.0, 4.0, 5.0], "b": [3.0, 4.0, 5.0]}


def test_compare_takes_the_ratio_of_the_medians():
    figures = {"seglab": [95.0, 10.0, 99.0], "bare": [100.0, 100.0, 1.0]}
    row = compare("training", "case", "img/s", figures, goal=0.97)
    assert row.values == {"seglab": 95.0, "bare": 100.0}
    assert row.ratio == pytest.approx(0.95)
    assert (row.goal, row.met) == ("≥ 0.97", False)
    assert row.repeats[1] == {"seglab": 10.0, "bare": 100.0}
    lower = compare("memory", "case", "MiB", figures, goal=1.0, higher_is_better=False)
    assert (lower.goal, lower.met) == ("≤ 1", True)


def test_single_checks_the_median_against_an_absolute_goal():
    row = single("startup", "--help", "s", [1.2, 9.0, 1.4], goal=1.5)
    assert (row.values, row.ratio, row.goal, row.met) == ({"value": 1.4}, None, "< 1.5 s", True)


def test_toy_defaults_give_way_to_the_options_given():
    args, modules = parse_arguments(["--only", "startup", "--toy", "--repeats", "4"])
    assert list(modules) == ["startup"]
    assert (args.size, args.batch, args.repeats) == ([32], [4], 4)
    with pytest.raises(SystemExit):
        parse_arguments(["--only", "startup", "--size", "64", "--batch", "16", "8"])


@pytest.mark.slow
def test_toy_run_prints_the_table_and_writes_every_row(tmp_path: Path):
    path, results, finished = toy_benchmark("benchmarks", tmp_path)
    assert path.name.endswith(f"-{date.today().isoformat()}.json")
    assert MACHINE_KEYS <= results["machine"].keys()
    rows = results["rows"]
    for benchmark, cases in EXPECTED_CASES.items():
        found = [row["case"] for row in rows if row["benchmark"] == benchmark]
        assert len(found) == len(cases), found
        for case in cases:
            assert any(label.startswith(case) for label in found), (case, found)
    assert {row["benchmark"] for row in rows} >= {"data"}
    added = [row for row in rows if row["benchmark"] == "significance"]
    assert added[0]["extra"]["seconds_added"] == pytest.approx(
        added[0]["values"]["with per-image counts"] - added[0]["values"]["without"])
    assert 0 < added[2]["extra"]["file_mib"] < 1
    for row in rows:
        assert all(value > 0 for value in row["values"].values()), row
        assert (row["ratio"] is not None and row["ratio"] > 0) == (len(row["values"]) == 2), row
    table = [line for line in finished.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| benchmark | case | side A | side B | ratio | goal | met |")
    assert len(table) == 1 + len(rows)
