"""Sweeps beyond one machine: Hydra's submitit launcher (SLURM up to sbatch, and on this machine)
and seglab's Ray launcher (on a Ray started here), each with a two-job sweep of seglab-train."""

from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.errors import CompactHydraException

from conftest import TINY, run_cli
from seglab.runs.config import config_dir, unknown_choice
from seglab.runs.results import read_metrics
from seglab.sweeps.ray_launcher import _check_resources

FAST = [*TINY, "encoder=mobilenet_v2", "trainer=debug"]  # one batch of each split


def _assert_two_completed(sweep: Path, stdout: str) -> None:
    records = [read_metrics(sweep / str(job) / "metrics.json") for job in (0, 1)]
    assert [(record["status"], record["seed"]) for record in records] == \
        [("completed", 0), ("completed", 1)]
    assert "sweep: 2 jobs, 2 completed, 0 failed, 0 unfinished" in stdout


@pytest.mark.parametrize("argument", ["hydra/launcher=submitit_slurm",
                                      "hydra/launcher=submitit_local", "hydra/launcher=ray",
                                      "hydra.launcher.ray.init.address=auto"])
def test_launcher_choices_pass_the_unknown_choice_check(argument):
    assert unknown_choice([argument, "model=unet,fcn"]) is None


def test_a_slurm_ddp_job_asks_for_one_task_per_gpu(tmp_path, monkeypatch):
    """The README's SLURM command up to sbatch, without SLURM: the script the jobs would get."""
    sweep = tmp_path / "sweep"
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=[
            "hydra/launcher=submitit_slurm", f"hydra.sweep.dir={sweep}",
            "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=720",
            "hydra.launcher.mem_gb=64", "hydra.launcher.cpus_per_task=8",
            "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.tasks_per_node=4", "trainer=ddp", "trainer.devices=4",
            "trainer.num_nodes=2"])
    scripts = []

    def submit(executor, function, *arguments):
        scripts.append(executor._executor._make_submission_file_text("<command>", "<uid>"))
        return []

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # srun
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", submit)
    launcher = Plugins.instance().instantiate_launcher(hydra_context=None, task_function=None,
                                                       config=cfg)
    launcher.launch([["model=unet", "seed=0"], ["model=unet", "seed=1"]], initial_job_idx=0)
    flags = {line.split("=")[0]: line.split("=", 1)[1] for line in scripts[0].splitlines()
             if line.startswith("#SBATCH --") and "=" in line}
    assert flags["#SBATCH --nodes"] == str(cfg.trainer.num_nodes) == "2"
    assert flags["#SBATCH --gpus-per-node"] == flags["#SBATCH --ntasks-per-node"] == \
        str(cfg.trainer.devices) == "4"
    assert (flags["#SBATCH --partition"], flags["#SBATCH --time"], flags["#SBATCH --mem"],
            flags["#SBATCH --cpus-per-task"]) == ("gpu", "720", "64GB", "8")
    assert flags["#SBATCH --output"].startswith(f"{sweep}/.submitit/")


def test_ray_jobs_that_ask_for_more_than_ray_has_are_refused_here_and_warned_on_a_cluster(
        caplog):
    job, cluster = {"num_cpus": 1, "num_gpus": 1}, {"CPU": 2.0, "memory": 1e9}
    with pytest.raises(CompactHydraException, match=r"^hydra.launcher.ray.remote.num_gpus=1: "
                       r"each job asks for more GPUs than the Ray cluster has \(0\)$"):
        _check_resources(job, cluster, local=True)
    _check_resources(job, cluster, local=False)
    assert "the jobs wait until it has them" in caplog.text
    _check_resources({"num_cpus": 2, "num_gpus": 0}, cluster, local=True)


@pytest.mark.slow
def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["seglab-train", "-m", *FAST, "seed=0,1", "hydra/launcher=submitit_local",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_two_completed(sweep, result.stdout)
    assert list((sweep / ".submitit").glob("*/*_0_log.out"))  # each job's own output


@pytest.mark.slow
def test_ray_runs_a_two_job_sweep_on_a_local_ray(tmp_path):
    # a relative sweep folder: the Ray workers write where the driver reads
    result = run_cli(["seglab-train", "-m", *FAST, "seed=0,1", "hydra/launcher=ray",
                      "hydra.launcher.ray.init.num_cpus=2",
                      "hydra.launcher.ray.init.include_dashboard=false", "hydra.sweep.dir=sweep"],
                     cwd=tmp_path, RAY_USAGE_STATS_ENABLED="0")
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_two_completed(tmp_path / "sweep", result.stdout)
    output = result.stdout + result.stderr  # the workers' lines, prefixed by Ray
    assert "(job 0 pid=" in output and "(job 1 pid=" in output  # Ray tasks
