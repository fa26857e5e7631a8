"""Compose the real configs with tiny limits and tmp_path outputs (as lightning-hydra-template)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

if "PYTEST_XDIST_WORKER" in os.environ:  # two workers share two cores: one thread each, and
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the command-line runs they start inherit it

import pytest
from omegaconf import DictConfig

from seglab.runs.config import compose_config, config_dir  # noqa: F401 (compose_config: for the tests)

# Small enough for seconds on a CPU, large enough that every class appears.
TINY = [
    "data.lengths={train:32,val:16,test:16}",
    "data.input_size=[32,32]",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
]
BIN = Path(sys.executable).parent
# metrics.json's measurements of the machine (train_seconds, and seglab.engine.speed_memory's):
# two otherwise identical runs differ in them; under DDP each has a `<key>_per_process` list too
MEASURED = ("train_seconds", "test/images_per_s", "test/speed_batches", "train/peak_memory_mib",
            "test/peak_memory_mib", "peak_memory_mib", "peak_memory_kind")


def measured(key: str) -> bool:
    """Whether a metrics.json key is a measurement of the machine (see MEASURED)."""
    return key.removesuffix("_per_process") in MEASURED


@pytest.fixture
def tiny_train_cfg(tmp_path: Path):
    """A factory: tiny train config writing to tmp_path/<name>, plus extra overrides."""
    def make(name: str = "run", overrides: list[str] = ()) -> DictConfig:
        return compose_config("train", tmp_path / name, [*TINY, *overrides])
    return make


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a seglab console script in a subprocess, as a user would."""
    full_env = {**os.environ, **env}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)


def toy_benchmark(module: str, output: Path) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """`python -m <module> --toy --output <output>` run from the repository root, as the test
    suite runs the benchmark harnesses: its one JSON file, what it holds, and the process."""
    finished = subprocess.run([sys.executable, "-m", module, "--toy", "--output", str(output)],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True,
                              text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    [path] = output.glob("*.json")
    return path, json.loads(path.read_text()), finished


def wandb_records(run_file: Path) -> list:
    """The protobuf records of a wandb offline run file (LevelDB log format after a 7-byte
    header: 32 KiB blocks of records with a 7-byte header each). wandb 0.31 has no Python
    reader of its own (its DataStore went with the move to wandb-core)."""
    from wandb.proto import wandb_internal_pb2
    data, records, pending, position = run_file.read_bytes(), [], b"", 7
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # block trailer
            position += 32768 - position % 32768
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), \
            data[position + 6]
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4) and pending:  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records
