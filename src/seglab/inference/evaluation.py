"""Evaluation: test a trained run's checkpoint again, from the run's own saved config, or
published weights as they were published (their classes, resize and normalisation)."""

from __future__ import annotations

import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.core.checkpoints import trusted
from seglab.core.distributed import distributed_job
from seglab.core.errors import ConfigError
from seglab.data.problems import stop_on_data_problems
from seglab.engine.builders import build_datamodule, build_loggers, build_module, build_trainer
from seglab.engine.confusion_plots import write_confusion_outputs
from seglab.engine.speed_memory import SpeedAndMemory
from seglab.inference.loading import describe_network, published_card
from seglab.models.weights import check_fits, network_weights
from seglab.runs.folder import completed_record, finish_run, start_run
from seglab.runs.per_image import keep_per_image
from seglab.runs.run_config import checkpoint_run_config

# Sections that say where this evaluation writes: taken from the eval config, not the run's.
EVAL_OWNED = ("paths", "logger", "task_name", "ckpt_path")


def published_eval_config(cfg: DictConfig) -> tuple[DictConfig, str]:
    """The eval config for published weights (`model.weights` without `ckpt_path`): the data
    preprocessed as the weights' own transform does (shorter side resized, their mean and
    std, one image per batch since sizes differ), after checking the classes match; and the
    weights' name."""
    card = published_card(cfg)
    if cfg.data.num_classes != card.num_classes:
        raise ConfigError(
            f"model.weights={cfg.model.weights} predicts {card.num_classes} classes "
            f"({', '.join(card.class_names[:3])}, ...) but data={cfg.data.name} has "
            f"data.num_classes={cfg.data.num_classes}; evaluate on data=voc, or data=coco "
            f"data.categories=voc data.num_classes={card.num_classes}")
    with open_dict(cfg):
        cfg.data.mean, cfg.data.std = card.mean, card.std
        if card.resize is not None:
            cfg.data.input_size = [card.resize, card.resize]
            cfg.data.eval_sizing = "shorter_side"
            cfg.data.batch_size = 1
    return cfg, card.source


def evaluate(cfg: DictConfig) -> tuple[dict, dict]:
    """Test `cfg.ckpt_path` on its run's test split, or published weights named by
    `model.weights` on the configured data's test split; writes metrics.json (with the test
    intervals), the confusion matrix and test_per_image.npz in the eval folder."""
    checkpoint = None
    if cfg.get("ckpt_path"):
        ckpt_path = Path(cfg.ckpt_path).expanduser().resolve()
        cfg, checkpoint = checkpoint_run_config(ckpt_path, cfg, EVAL_OWNED)
        source = {"checkpoint": str(ckpt_path), "evaluated_run": str(ckpt_path.parent.parent)}
    elif OmegaConf.select(cfg, "model.weights"):
        cfg, weights = published_eval_config(cfg)
        source = {"weights": weights}
    else:
        raise ConfigError("seglab-eval needs ckpt_path=<run>/checkpoints/best.ckpt, or "
                          "published weights and a dataset, such as model=deeplabv3 "
                          "encoder=resnet50 model.weights=COCO_WITH_VOC_LABELS_V1 data=voc "
                          "data.root=<folder>")
    run = start_run(cfg)

    datamodule = build_datamodule(cfg)
    class_names = datamodule.class_names
    if datamodule.reads_files:  # the same samples as training saw, bad ones skipped alike
        stop_on_data_problems(datamodule, class_names)
    module = build_module(cfg, class_names, datamodule)
    already_read, tested = {}, None
    if checkpoint is not None:  # a one-line error now, rather than Lightning's strict load
        check_fits(module.net, network_weights(checkpoint.contents, checkpoint.path, "ckpt_path"),
                   f"ckpt_path: {checkpoint.path} does not fit {describe_network(cfg)}")
        already_read, tested = {checkpoint.path: checkpoint.contents}, str(checkpoint.path)
        del checkpoint  # Lightning takes the contents; nothing else keeps them
    costs = SpeedAndMemory()
    trainer = build_trainer(cfg, callbacks=[costs], loggers=build_loggers(cfg),
                            already_read=already_read)
    with distributed_job(), warnings.catch_warnings():
        # the training callbacks are left out on purpose: nothing for a user to add
        warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, "
                                "callbacks used to create the checkpoint")
        trainer.test(module, datamodule=datamodule, ckpt_path=tested,
                     weights_only=not trusted(cfg), verbose=False)
    objects = {"datamodule": datamodule, "module": module, "trainer": trainer}
    if not trainer.is_global_zero:  # under DDP, rank zero alone writes the folder
        return {}, objects
    if module.test_confusion is not None:
        write_confusion_outputs(module.test_confusion, class_names, run.folder)
    intervals = keep_per_image(run.folder, module.test_per_image)

    metrics = completed_record(cfg, run.folder, class_names,
                               {"test": dict(trainer.callback_metrics)},
                               {**source, **costs.figures, **intervals})
    finish_run(run, metrics)
    return metrics, objects
