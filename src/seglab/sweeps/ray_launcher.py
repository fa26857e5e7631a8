"""seglab's Ray launcher (`hydra/launcher=ray`, conf/hydra/launcher/ray.yaml; Hydra finds it
through the shim in `hydra_plugins/`): each job of a multirun is one Ray task, on an existing
Ray cluster or on a Ray started here.

The published hydra-ray-launcher 1.2.2 sets `object_store_memory`, which `ray.init` refuses
when it connects to an existing cluster, and needs boto3 (for its AWS launcher), which holds
python-dateutil below 3. This launcher keeps its config keys (`ray.init`, `ray.remote`) and runs
each job with Hydra's own `run_job`, as Hydra's basic launcher does. Ray is imported when a
sweep starts, so other commands never import it."""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def _run_job(hydra_context: HydraContext, sweep_config: DictConfig,
             task_function: TaskFunction, singleton_state: dict[Any, Any]) -> JobReturn:
    """One job, inside a Ray worker: Hydra's state as the driver had it, then Hydra's run_job."""
    import ray

    setup_globals()
    Singleton.set_state(singleton_state)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = ray.get_runtime_context().get_task_id()
    return run_job(hydra_context=hydra_context, task_function=task_function,
                   config=sweep_config, job_dir_key="hydra.sweep.dir",
                   job_subdir_key="hydra.sweep.subdir")


class RayLauncher(Launcher):
    """`ray.init(**ray.init)` once, then every job as `ray.remote(**ray.remote)`; waits for all."""

    def __init__(self, ray: DictConfig) -> None:
        if importlib.util.find_spec("ray") is None:
            raise ImportError("hydra/launcher=ray needs ray: pip install 'seglab[cluster]'")
        self.init = OmegaConf.to_container(ray.init, resolve=True)
        self.remote = OmegaConf.to_container(ray.remote, resolve=True)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        # absolute, so that workers whose working directory differs write where the driver reads
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(**self.init)
        log.info(f"Ray launcher: {len(job_overrides)} jobs, sweep folder {sweep_dir}")
        _check_resources(self.remote, ray.cluster_resources(), self.init.get("address") is None)
        job = ray.remote(**self.remote)(_run_job)
        submitted = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.sweep.dir = str(sweep_dir)
                sweep_config.hydra.job.num = idx
            future = job.options(name=f"job {idx}").remote(
                self.hydra_context, sweep_config, self.task_function, Singleton.get_state())
            submitted.append((future, sweep_config))
        return [_result(future, sweep_config) for future, sweep_config in submitted]


def _check_resources(remote: dict[str, Any], cluster: dict[str, float], local: bool) -> None:
    """Ray keeps a job that asks for more than the cluster has waiting, without a word: refuse
    it on a Ray started here, which never grows; warn on a cluster, which may."""
    for key, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        if (remote.get(key) or 0) > cluster.get(resource, 0):
            message = (f"hydra.launcher.ray.remote.{key}={remote[key]}: each job asks for more "
                       f"{resource}s than the Ray cluster has ({cluster.get(resource, 0):g})")
            if local:
                raise CompactHydraException(message)
            log.warning(f"{message}; the jobs wait until it has them")


def _result(future: Any, sweep_config: DictConfig) -> JobReturn:
    """The job's JobReturn. When Ray lost it (its worker died, or could not unpickle it) the
    result is NaN, as seglab's jobs return for a failure: the other jobs go on, and the sweep
    summary lists the lost job as unfinished (its metrics.json still says running)."""
    import ray

    try:
        return ray.get(future)
    except ray.exceptions.RayError as error:
        log.error(f"job {sweep_config.hydra.job.num} did not finish: "
                  f"{str(error).strip().splitlines()[-1]}")
        return JobReturn(overrides=list(sweep_config.hydra.overrides.task), cfg=sweep_config,
                         status=JobStatus.COMPLETED, _return_value=math.nan)
