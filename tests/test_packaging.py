"""A plain `pip install .` ships the configs, and they are found from any directory."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_installed_wheel_finds_its_packaged_configs(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    wheel = next((tmp_path / "dist").glob("seglab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "seglab/conf/train.yaml" in names and "seglab/conf/model/unet.yaml" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True)
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    where = subprocess.run([sys.executable, "-c",
                            "import seglab.runs.config as c; print(c.config_dir())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(tmp_path / "site" / "seglab" / "conf")
    composed = subprocess.run([sys.executable, "-m", "seglab.cli.train", "--cfg", "job",
                               "encoder=mobilenet_v2"], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
    assert composed.returncode == 0, composed.stderr
    assert "name: mobilenet_v2" in composed.stdout
