"""seglab-reproduce: a run folder reruns into a new folder with identical metrics on the CPU."""

import json

import pytest
import yaml

from conftest import TINY, compose_config, measured, run_cli
from seglab.cli.reproduce import main
from seglab.engine.training import train
from seglab.runs.reproduction import rebase_paths, version_differences


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A finished tiny CPU run (deterministic algorithms on)."""
    output = tmp_path_factory.mktemp("source") / "run"
    cfg = compose_config("train", output, [*TINY, "trainer=cpu", "trainer.max_epochs=2",
                                           "trainer.enable_progress_bar=false", "seed=3"])
    metrics, _ = train(cfg)
    return output, metrics


def test_reproduction_gives_identical_metrics_and_records_its_source(source_run, tmp_path,
                                                                     capsys):
    source, original = source_run
    before = {name: (source / name).read_bytes()
              for name in ("metrics.json", "checkpoints/best.ckpt", ".hydra/config.yaml")}
    main([str(source), "--out", str(tmp_path / "again")])
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    compared = [key for key in original
                if key.startswith(("val/", "test/")) and not measured(key)]
    assert len(compared) >= 16
    assert {key: again[key] for key in compared} == {key: original[key] for key in compared}
    assert again["reproduces"] == str(source) and again["status"] == "completed"
    assert (tmp_path / "again" / "checkpoints" / "best.ckpt").is_file()
    saved = yaml.safe_load((tmp_path / "again" / ".hydra" / "config.yaml").read_text())
    assert saved["callbacks"]["model_checkpoint"]["dirpath"] == f"{tmp_path}/again/checkpoints"
    assert saved["seed"] == 3
    assert (tmp_path / "again" / ".hydra" / "overrides.yaml").read_text() == \
        (source / ".hydra" / "overrides.yaml").read_text()
    assert f"reproduces: {source}" in capsys.readouterr().out
    for name, content in before.items():  # the source run is never touched
        assert (source / name).read_bytes() == content


def test_other_versions_are_said_before_starting_and_both_recorded(source_run, tmp_path,
                                                                   capsys):
    source, _ = source_run
    copy = tmp_path / "old"
    (copy / ".hydra").mkdir(parents=True)
    (copy / ".hydra" / "config.yaml").write_bytes((source / ".hydra" / "config.yaml")
                                                   .read_bytes())
    metrics = json.loads((source / "metrics.json").read_text())
    metrics["versions"].update(torch="2.13.0", git={"commit": "0123456789abcdef", "dirty": True})
    (copy / "metrics.json").write_text(json.dumps(metrics))
    main([str(copy), "trainer.max_epochs=1", "--out", str(tmp_path / "again")])
    out = capsys.readouterr().out
    note = next(line for line in out.splitlines() if line.startswith("note:"))
    assert "torch 2.13.0 → 2.14.1" in note and "seglab commit 0123456789 (dirty) →" in note
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["source_versions"]["torch"] == "2.13.0"
    assert again["versions"]["torch"].startswith("2.14.1")
    assert again["epochs"] == 1  # the override applied
    assert yaml.safe_load((tmp_path / "again" / ".hydra" / "overrides.yaml").read_text()) == [
        "trainer.max_epochs=1"]


def test_rebase_moves_only_paths_under_the_old_folder():
    node = {"a": "/runs/x/checkpoints", "b": ["/runs/x", "/runs/xy/z", "/runs/x/y"], "c": 3}
    assert rebase_paths(node, "/runs/x", "/new") == {
        "a": "/new/checkpoints", "b": ["/new", "/runs/xy/z", "/new/y"], "c": 3}


def test_version_differences_name_each_change():
    same = {"torch": "2.14.1", "git": {"commit": "abc", "dirty": False}}
    assert version_differences(same, same) == []
    assert version_differences({**same, "smp": "0.5.0"}, {**same, "smp": "0.6.0"}) == [
        "smp 0.5.0 → 0.6.0"]


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nothing"], "is not a seglab run folder: {tmp}/nothing/.hydra/config.yaml is missing"),
    (["{src}", "trainer.max_epochz=3"], "the run's config has no key 'trainer.max_epochz'"),
    (["{src}", "model=fcn"], "model is a whole config group"),
    (["{src}", "seed"], "override 'seed': expected key=value"),
])
def test_bad_input_is_one_line(source_run, tmp_path, capsys, args, message):
    source, _ = source_run
    fill = {"tmp": tmp_path, "src": source}
    with pytest.raises(SystemExit) as stopped:
        main([arg.format(**fill) for arg in args] + ["--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message.format(**fill) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_console_script_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli(["seglab-reproduce", str(tmp_path)], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path} is not a seglab run folder")
    assert "Traceback" not in result.stderr
