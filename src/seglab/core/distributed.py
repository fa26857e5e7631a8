"""DDP inside Hydra jobs: each process of a job runs that job, and a multirun's jobs each get
their own process group.

Lightning's DDP strategy starts processes 1..N-1 of a run by re-running the command line
(`_SubprocessScriptLauncher`). Under Hydra it re-runs `sys.argv` as it was, which inside a
multirun starts the whole sweep again in every process (lightning-hydra-template #393:
duplicate output folders, then a hang). `job_subprocess_command` replaces that one function
so each process re-runs exactly its job: the job's own overrides, into the job's folder.
`distributed_job` then undoes what the launch left in the parent process (the process group
and the rendezvous variables) so the next job of the sweep starts its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.strategies.launchers import subprocess_script as pytorch_launcher

# What Lightning's launcher sets in the parent's environment for its children.
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def is_rank_zero() -> bool:
    """Whether this process writes the run's files: the only process, or global rank 0 of a
    DDP job (ranks come from the environment: Lightning's children, torchrun, SLURM, and
    NODE_RANK for nodes started by hand)."""
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


def job_subprocess_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command line of process `local_rank` of this Hydra job, and its working folder:
    the entry point named by the job's config (`seglab.cli.train` for train.yaml), whatever
    runs the job (a console script, submitit's or Ray's worker)."""
    hydra = HydraConfig.get()
    command = [sys.executable, "-m", f"seglab.cli.{hydra.job.config_name}"]
    searchpath = [item for item in hydra.overrides.hydra if item.startswith("hydra.searchpath")]
    command += [*hydra.overrides.task, *searchpath, f'hydra.run.dir="{hydra.runtime.output_dir}"',
                f"hydra.job.name={hydra.job.name}", "hydra.output_subdir=null"]
    return command, get_original_cwd()


def log_suffix() -> str:
    """`${log_suffix:}` (conf/hydra/default.yaml): rank zero logs to <run>/train.log, the other
    processes of a DDP run (started by Lightning, torchrun or SLURM) to train.rank<N>.log."""
    return "" if is_rank_zero() else f".rank{rank_zero_only.rank}"


fabric_launcher._hydra_subprocess_cmd = job_subprocess_command
pytorch_launcher._hydra_subprocess_cmd = job_subprocess_command


@contextmanager
def distributed_job() -> Iterator[None]:
    """Run one job; afterwards destroy its process group and restore the rendezvous
    variables Lightning's launcher set, so the next job in this process launches its own
    processes on a fresh port instead of waiting for the last job's."""
    saved = {name: os.environ.get(name) for name in RENDEZVOUS_VARIABLES}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
