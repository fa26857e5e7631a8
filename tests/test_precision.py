"""`${auto_precision:}` on a CPU: bf16 only where it has bf16 instructions and a measured
step says bf16 is faster; measured once per machine and kept."""

import json

import pytest
import torch

from seglab.runs import precision


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """A CPU without CUDA whose flags and step times the test sets; the cache in tmp_path."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    state = {"flags": "fpu sse avx512f avx512_bf16", "times": (0.03, 0.02), "measured": 0}

    def info(field):
        return state["flags"] if field == "flags" else "Test CPU 9000"

    def measure():
        state["measured"] += 1
        return state["times"]
    monkeypatch.setattr(precision, "cpu_info", info)
    monkeypatch.setattr(precision, "measure_conv_steps", measure)
    precision.cpu_bf16_is_faster.cache_clear()
    yield state
    precision.cpu_bf16_is_faster.cache_clear()


def another_process() -> None:
    """What a new process starts with: nothing asked yet."""
    precision.cpu_bf16_is_faster.cache_clear()


def test_a_cpu_without_bf16_instructions_trains_in_fp32_unmeasured(cpu):
    cpu["flags"] = "fpu sse avx2 avx512f"
    assert precision.auto_precision("auto") == "32-true"
    assert cpu["measured"] == 0


@pytest.mark.parametrize(("times", "expected"), [((0.03, 0.02), "bf16-mixed"),
                                                 ((0.03, 0.029), "32-true"),
                                                 ((0.0121, 0.0214), "32-true")])
def test_bf16_only_where_it_measures_faster_and_the_answer_is_kept(cpu, tmp_path, times,
                                                                   expected):
    cpu["times"] = times
    assert precision.auto_precision("cpu") == expected
    assert precision.auto_precision("auto") == expected  # asked once in a process
    another_process()
    assert precision.auto_precision("auto") == expected
    assert cpu["measured"] == 1  # the second process read the cache
    kept = json.loads((tmp_path / "seglab" / "cpu_precision.json").read_text())
    (key, answer), = kept.items()
    assert key.startswith("Test CPU 9000 | torch ") and key.endswith(" threads")
    assert answer["bf16"] == (expected == "bf16-mixed")
    assert (answer["fp32_ms"], answer["bf16_ms"]) == (round(times[0] * 1e3, 2),
                                                      round(times[1] * 1e3, 2))


def test_an_unwritable_cache_still_answers(cpu, tmp_path):
    (tmp_path / "seglab").write_text("a file where the cache folder would go")
    assert precision.auto_precision("cpu") == "bf16-mixed"
    assert precision.auto_precision("cpu") == "bf16-mixed"
    assert cpu["measured"] == 1
    another_process()
    assert precision.auto_precision("cpu") == "bf16-mixed"
    assert cpu["measured"] == 2


@pytest.mark.parametrize("stored", ["[1, 2]", "null", "{", '{"KEY": {}}', '{"KEY": 1}'])
def test_a_damaged_cache_is_measured_again_and_replaced(cpu, tmp_path, stored):
    key = f"Test CPU 9000 | torch {torch.__version__} | {torch.get_num_threads()} threads"
    (tmp_path / "seglab").mkdir()
    (tmp_path / "seglab" / "cpu_precision.json").write_text(stored.replace("KEY", key))
    assert precision.auto_precision("cpu") == "bf16-mixed"
    assert cpu["measured"] == 1
    kept = json.loads((tmp_path / "seglab" / "cpu_precision.json").read_text())
    assert kept[key]["bf16"] is True


def test_the_measurement_times_both_precisions_and_leaves_the_random_state():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    fp32, bf16 = precision.measure_conv_steps()
    assert 0 < fp32 < 5 and 0 < bf16 < 5
    assert torch.equal(torch.rand(3), expected)
