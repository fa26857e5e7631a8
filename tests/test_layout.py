"""The house in rooms: src/seglab's packages import only the packages below them in the
pipeline (README's "Layout" section is the same map)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import seglab

SOURCE = Path(seglab.__file__).resolve().parent
# each package and the seglab packages it may import (besides itself)
MAY_IMPORT = {
    "core": set(),
    "data": {"core"},
    "models": {"core"},
    "runs": {"core", "models"},
    "engine": {"core", "models", "data", "runs"},
    "inference": {"core", "models", "data", "runs", "engine"},
    "reports": {"core", "runs"},
    "sweeps": {"core", "runs"},
    "cli": {"core", "models", "data", "runs", "engine", "inference", "reports", "sweeps"},
}


def seglab_imports(path: Path) -> set[str]:
    """The seglab packages a module imports, at its top or inside functions ("relative" for a
    relative import, which seglab does not use: every import names its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("relative")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] if node.module != "seglab" else \
                [f"seglab.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        names.update(module.split(".")[1] for module in modules
                     if module.startswith("seglab.") and module != "seglab.__version__")
    return names - {"__version__"}


def test_the_top_of_src_seglab_is_a_handful_of_packages():
    entries = sorted(path.name for path in SOURCE.iterdir() if path.name != "__pycache__")
    assert entries == sorted(["__init__.py", *MAY_IMPORT])


def test_every_package_imports_only_the_packages_below_it():
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((SOURCE / package).rglob("*.py")):
            for name in sorted(seglab_imports(path) - allowed - {package}):
                wrong.append(f"{path.relative_to(SOURCE)} imports seglab.{name}")
    assert wrong == []


def test_the_check_sees_an_import_that_goes_up(tmp_path):
    module = tmp_path / "up.py"
    module.write_text("def f():\n    from seglab.engine.module import SegmentationModule\n"
                      "from seglab import cli\nimport seglab.runs.results\nfrom . import x\n")
    assert seglab_imports(module) == {"engine", "cli", "runs", "relative"}


def test_a_run_folder_saved_before_the_move_names_the_new_modules(tmp_path):
    from hydra.utils import get_class

    from seglab.runs.config import read_saved_config

    saved = tmp_path / "config.yaml"
    saved.write_text("loss:\n  _target_: seglab.losses.WeightedSum\n"
                     "scheduler:\n  _target_:   seglab.schedule.SchedulerSpec\n"
                     "callbacks:\n  history:\n    _target_: seglab.callbacks.EpochHistory\n"
                     "data:\n  _target_: seglab.data.datamodule.SegmentationDataModule\n")
    cfg = read_saved_config(saved, "resume")
    assert [get_class(node._target_).__module__ for node in
            (cfg.loss, cfg.scheduler, cfg.callbacks.history, cfg.data)] == [
        "seglab.engine.losses", "seglab.engine.schedule", "seglab.engine.callbacks",
        "seglab.data.datamodule"]


def test_a_saved_config_that_is_not_yaml_is_one_line(tmp_path):
    from seglab.core.errors import ConfigError
    from seglab.runs.config import read_saved_config

    saved = tmp_path / "config.yaml"
    saved.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^resume: the run's config .*config.yaml is not "
                                          r"readable YAML \(\w+\)"):
        read_saved_config(saved, "resume")
