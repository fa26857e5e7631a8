"""`seglab-train`, top to bottom: start the run folder (config checked, or a resumed run's own),
build the data, module and trainer, fit, test the best checkpoint, finish the folder."""

from __future__ import annotations

import math
import time

from lightning import Trainer
from omegaconf import DictConfig

from seglab.core.checkpoints import trusted
from seglab.core.distributed import distributed_job
from seglab.data.problems import stop_on_data_problems
from seglab.engine.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_module,
    build_trainer,
)
from seglab.engine.confusion_plots import write_confusion_outputs
from seglab.engine.plots import plot_predictions
from seglab.engine.pruning import TrialReport
from seglab.engine.speed_memory import SpeedAndMemory
from seglab.models import count_gflops, count_parameters
from seglab.runs.folder import Run, check_free_space, completed_record, finish_run, start_run
from seglab.runs.hparams import log_final_results
from seglab.runs.per_image import keep_per_image
from seglab.runs.reproduction import reproduction_record
from seglab.runs.search_trial import current as current_trial
from seglab.runs.search_trial import in_trial


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Train, test the best checkpoint, write metrics.json, the test confusion matrix, the
    per-image test counts (test_per_image.npz, with the bootstrap intervals they give in
    metrics.json) and plots.

    metrics.json also gets the test's forward throughput and each stage's peak memory
    (`SpeedAndMemory`). In a search trial every validation reports the optimized metric to
    the trial; a trial its pruner stops ends there, untested, with metrics.json status
    "pruned".

    With `resume=<run folder>` the run continues from its last.ckpt with its own config.
    Under DDP every process trains and tests; only global rank zero writes the run's files.
    Returns (metrics, objects): the metrics.json contents (empty on the other ranks) and the
    built datamodule, module and trainer, so tests and sweeps can inspect them.
    """
    run = start_run(cfg)
    cfg = run.cfg

    datamodule = build_datamodule(cfg)
    class_names = datamodule.class_names
    if datamodule.reads_files:
        stop_on_data_problems(datamodule, class_names)
    module = build_module(cfg, class_names, datamodule)
    check_free_space(run.folder, checkpoint_bytes(module))
    pruning = TrialReport(cfg.optimized_metric) if in_trial() else None
    costs = SpeedAndMemory()
    trainer = build_trainer(cfg, [*build_callbacks(cfg), costs, *([pruning] if pruning else [])],
                            build_loggers(cfg), run.already_read)
    datamodule.batch_share(trainer.world_size)
    objects = {"datamodule": datamodule, "module": module, "trainer": trainer}

    with distributed_job():
        started = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=run.resume_from,
                    weights_only=not trusted(cfg))
        train_seconds = time.perf_counter() - started
        val_logged = dict(module.val_scores)  # also when a resumed run only had to finish
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        pruned = pruning is not None and pruning.pruned
        if not pruned:  # a pruned trial ends at once: no test
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None,
                         weights_only=not trusted(cfg), verbose=False)
        test_logged = {} if pruned else dict(trainer.callback_metrics)
    if not trainer.is_global_zero:  # under DDP, rank zero alone writes the folder
        return {}, objects

    intervals = keep_per_image(run.folder, module.test_per_image)
    metrics = completed_record(cfg, run.folder, class_names,
                               {"val": val_logged, "test": test_logged}, {
        "params": count_parameters(module.net),
        "gflops": count_gflops(module.net, *datamodule.input_size),
        "input_size": list(datamodule.input_size),
        "train_seconds": round(train_seconds, 2),
        **costs.figures,
        "epochs": epochs_trained(trainer),
        "best_epoch": module.best_val_epoch,
        "steps": trainer.global_step,
        "best_step": module.best_val_step,
        "skipped_samples": len(datamodule.skipped),
        "checkpoint": best or None,
        **reproduction_record(cfg),
        **intervals,
    })
    if pruned:
        metrics = {**metrics, "status": "pruned", "pruned": current_trial().pruned}
    log_final_results(trainer.loggers, cfg, metrics)
    write_pictures(run, module, datamodule)
    finish_run(run, metrics)
    return metrics, objects


def epochs_trained(trainer: Trainer) -> int:
    """The epochs the run trained in, the last one possibly in part (a run counted in steps
    stops mid-epoch), from the batches it trained: the same for a resumed run, whose last
    epoch Lightning never ends when the checkpoint it resumed from already had every step."""
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    return math.ceil(batches / trainer.num_training_batches) if batches else 0


def write_pictures(run: Run, module, datamodule) -> None:
    """The test confusion matrix (CSV and plots) and predictions on validation scenes."""
    class_names = datamodule.class_names
    if module.test_confusion is not None:
        write_confusion_outputs(module.test_confusion, class_names, run.folder)
    plot_predictions(module.net, datamodule.split("val"), class_names,
                     run.folder / "predictions.png", ignore_index=datamodule.ignore_index,
                     palette=datamodule.palette, prepare=datamodule.prepare_images)


def checkpoint_bytes(module) -> int:
    """About the size of one checkpoint: the weights and two optimizer moments per weight."""
    return 3 * sum(parameter.numel() * parameter.element_size()
                   for parameter in module.parameters())
