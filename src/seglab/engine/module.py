"""SegmentationModule: the one LightningModule, whatever network it trains."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import partial

import torch
from lightning import LightningModule
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn
from torchmetrics import MeanMetric

from seglab import __version__
from seglab.core.errors import ConfigError
from seglab.engine.metrics import ConfusionMatrix, predicted_classes, segmentation_scores
from seglab.engine.per_image import PerImageScores
from seglab.engine.schedule import SchedulerSpec, validates_by_steps
from seglab.engine.sliding import slide_logits
from seglab.models import SegmentationNet
from seglab.runs.per_image import PerImageCounts

STAGES = ("train", "val", "test")
# Every epoch value this module logs is already summed over processes when it is logged (see
# `_log_scores`), so Lightning's advice to log it with sync_dist=True does not apply here.
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting",
                        category=PossibleUserWarning)


def by_size(batch: dict | list[dict]) -> list[dict]:
    """An evaluation batch as the list of its same-size batches (`collate_by_size`)."""
    return batch if isinstance(batch, list) else [batch]


class TrainingDiverged(ConfigError):
    """The training loss became NaN or infinite: the run stops before the step is applied."""


class SegmentationModule(LightningModule):
    """Trains and evaluates a `SegmentationNet` with one confusion matrix per stage.

    Logs, at each epoch's end, `<stage>/loss`, `<stage>/mIoU`, `pixel_acc`, `dice` and
    `iou_<class>`, plus `val/mIoU_best` (and `train/aux_loss` for nets with an auxiliary
    head); a run that validates by steps logs its train scores at each validation instead,
    over the steps since the one before. The matrices and the mean losses are torchmetrics
    states, so under DDP they are summed over processes before any metric is derived (exact
    for any split size); the last test's summed matrix is kept as `test_confusion` (CPU
    int64, [true, predicted]) for the run folder, and its per-image counts, gathered from
    every process in the split's order, as `test_per_image` (`PerImageScores`). Validation
    and test run the net on whole images, or with `slide_window` (tile, stride) on
    overlapping tiles whose logits are averaged (`slide_logits`, `tiles_per_pass` at once); a
    batch of images of different sizes comes as a list of batches, one per size. Losses are
    computed in fp32 whatever the precision, and a NaN or infinite training loss stops the
    run (`TrainingDiverged`) before its step.

    Under DDP every collective this module issues happens in `_log_scores`, in the same order
    on every process; what it logs is already synchronised and logged without `sync_dist`.
    A value logged for Lightning to synchronise (a Metric object, or `sync_dist=True`) is
    synchronised when first read, and rank zero's progress bar reads the epoch's values
    before the module's epoch-end hook runs, which the other ranks reach first: the
    processes would issue different collectives, and gloo aborts.
    """

    def __init__(self, net: SegmentationNet, loss: nn.Module,
                 optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: SchedulerSpec | None, class_names: Sequence[str],
                 ignore_index: int = 255, encoder_lr_mult: float = 1.0,
                 slide_window: tuple[Sequence[int], Sequence[int]] | None = None,
                 tiles_per_pass: int = 8) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.encoder_lr_mult = encoder_lr_mult
        self.scheduler_spec = scheduler
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        self.slide_window = slide_window
        self.tiles_per_pass = tiles_per_pass
        self.confmats = nn.ModuleDict({
            f"{stage}_confmat": ConfusionMatrix(len(self.class_names), ignore_index)
            for stage in STAGES
        })
        self.mean_losses = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in STAGES})
        self.mean_aux_loss = MeanMetric()
        self.per_image = PerImageScores(len(self.class_names))
        self.best_val_miou = -math.inf
        self.best_val_epoch: int | None = None
        self.best_val_step: int | None = None
        self.val_scores: dict[str, float] = {}  # the last validation's, for metrics.json
        self.test_confusion: Tensor | None = None
        self.test_per_image: PerImageCounts | None = None
        self._restored_train_epoch: int | None = None

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def fp32_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The loss in fp32 outside autocast: sums over many pixels (Dice) overflow fp16."""
        with torch.autocast(logits.device.type, enabled=False):
            return self.loss(logits.float(), target)

    def evaluation_logits(self, images: Tensor) -> Tensor:
        """Validation and test logits: of whole images, or averaged over sliding tiles."""
        if self.slide_window is None:
            return self.net(images)
        return slide_logits(self.net, images, *self.slide_window, batch_size=self.tiles_per_pass)

    def _step(self, batch: dict, stage: str) -> Tensor:
        images = batch["image"]
        logits = self.net(images) if stage == "train" else self.evaluation_logits(images)
        loss = self.fp32_loss(logits, batch["mask"])
        batch_size = images.shape[0]
        if stage == "train":
            auxiliary = self.net.auxiliary_loss(self.fp32_loss, batch["mask"])
            if auxiliary is not None:
                self.mean_aux_loss.update(auxiliary.detach(), batch_size)
                loss = loss + auxiliary
        each_image = partial(self.per_image.update, batch=batch) if stage == "test" else None
        self.confmats[f"{stage}_confmat"].update(predicted_classes(logits), batch["mask"],
                                                 each_image)
        self.mean_losses[f"{stage}_loss"].update(loss.detach(), batch_size)
        if stage == "train":
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True,
                     batch_size=batch_size)
        return loss

    def _stop_if_diverged(self, loss: Tensor, batch_idx: int) -> None:
        """Every DDP process decides together (one NaN anywhere stops them all), so none is left
        waiting in the gradient all-reduce for a process that stopped."""
        if self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            return
        completed = self.trainer.fit_loop.epoch_progress.current.completed
        last_good = f"epoch {completed - 1}" if completed else "none (in the first epoch)"
        best = "" if self.best_val_epoch is None else \
            f"; best val/mIoU {self.best_val_miou:.4f} at {self._best_at()}, its checkpoint kept"
        raise TrainingDiverged(
            f"training diverged: the loss is {loss.item()} at step {self.global_step} (epoch "
            f"{self.current_epoch}, batch {batch_idx}); last completed epoch: {last_good}{best}; "
            "try a lower optimizer.lr or trainer.gradient_clip_val=1.0")

    def _best_at(self) -> str:
        """When the best validation ran, as the run counts: its epoch, or its step."""
        if validates_by_steps(self.trainer):
            return f"step {self.best_val_step} (epoch {self.best_val_epoch})"
        return f"epoch {self.best_val_epoch}"

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        self._stop_if_diverged(loss.detach(), batch_idx)
        return loss

    def validation_step(self, batch: dict | list[dict], batch_idx: int) -> None:
        for part in by_size(batch):
            self._step(part, "val")

    def test_step(self, batch: dict | list[dict], batch_idx: int) -> None:
        for part in by_size(batch):
            self._step(part, "test")

    def predict_step(self, batch: dict | list[dict], batch_idx: int) -> Tensor | list[Tensor]:
        """Class-index masks [N, H, W], computed as the test computes them; a list of them,
        one per size, for a batch of images of different sizes."""
        masks = [predicted_classes(self.evaluation_logits(part["image"]))
                 for part in by_size(batch)]
        return masks if isinstance(batch, list) else masks[0]

    def _log_scores(self, stage: str) -> None:
        """The stage's epoch scores, from states summed over processes here, in one fixed order
        on every process; logged as plain, already synchronised values."""
        confmat = self.confmats[f"{stage}_confmat"].compute()  # summed over processes
        if stage == "test":
            self.test_confusion = confmat.detach().to("cpu", torch.int64, copy=True)
            self.test_per_image = self.per_image.gathered(self._trainer, self.class_names)
        scores = {f"{stage}/{key}": value
                  for key, value in segmentation_scores(confmat, self.class_names).items()}
        scores[f"{stage}/loss"] = float(self.mean_losses[f"{stage}_loss"].compute())
        if stage == "train" and self.mean_aux_loss.update_called:  # the same on every process
            scores["train/aux_loss"] = float(self.mean_aux_loss.compute())
        if stage == "val":
            if not self.trainer.sanity_checking and scores["val/mIoU"] > self.best_val_miou:
                self.best_val_miou = scores["val/mIoU"]
                self.best_val_epoch, self.best_val_step = self.current_epoch, self.global_step
            scores["val/mIoU_best"] = max(self.best_val_miou, scores["val/mIoU"])
            if not self.trainer.sanity_checking:
                self.val_scores = dict(scores)
        self.log(f"{stage}/mIoU", scores.pop(f"{stage}/mIoU"), prog_bar=True)
        self.log_dict(scores)

    def _fresh_states(self, stage: str) -> None:
        """Start a stage with new state tensors, owned by this process alone: a module handed
        to spawned workers arrives with tensors in shared memory, which ranks would share."""
        self.confmats[f"{stage}_confmat"].reset()
        self.mean_losses[f"{stage}_loss"].reset()
        if stage == "train":
            self.mean_aux_loss.reset()
        if stage == "test":
            self.per_image.reset()

    def on_train_start(self) -> None:
        """By steps, train states start here and after each validation, unless a checkpoint
        brought the steps taken since the last validation."""
        if validates_by_steps(self.trainer) and self._restored_train_epoch is None:
            self._fresh_states("train")

    def on_train_epoch_start(self) -> None:
        """A fresh epoch's states, unless a checkpoint written in this epoch brought the steps it
        had already taken."""
        if not validates_by_steps(self.trainer) and \
                self._restored_train_epoch != self.current_epoch:
            self._fresh_states("train")
        self._restored_train_epoch = None

    def on_validation_epoch_start(self) -> None:
        self._fresh_states("val")

    def on_test_epoch_start(self) -> None:
        self._fresh_states("test")

    def on_train_epoch_end(self) -> None:
        if not validates_by_steps(self.trainer):
            self._log_scores("train")

    def on_validation_epoch_end(self) -> None:
        """By steps, also the train scores of the steps since the last validation, and the
        plateau schedules' step (before this validation's checkpoints are written)."""
        by_steps = validates_by_steps(self.trainer) and not self.trainer.sanity_checking
        if by_steps:
            self._log_scores("train")
            self._fresh_states("train")
        self._log_scores("val")
        if by_steps:
            self._step_plateaus()

    def _step_plateaus(self) -> None:
        """Plateau schedules watch this validation's score (SchedulerSpec: a val/ key)."""
        for config in self.trainer.lr_scheduler_configs:
            if config.reduce_on_plateau:
                config.scheduler.step(self.val_scores[config.monitor])

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Lightning steps plateau schedules at epochs' ends; by steps they are stepped at each
        validation instead (`_step_plateaus`)."""
        if metric is None or not validates_by_steps(self.trainer):
            super().lr_scheduler_step(scheduler, metric)

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def encoder_param_group(self) -> dict:
        """The encoder's parameters with their learning rate: the optimizer's times
        `encoder_lr_mult` (filled in by the optimizer when no `lr` is given)."""
        group = {"params": self.net.parameter_groups()["encoder"], "name": "encoder"}
        base_lr = self.optimizer_factory.keywords.get("lr") \
            if hasattr(self.optimizer_factory, "keywords") else None
        if base_lr is not None:
            group["lr"] = base_lr * self.encoder_lr_mult
        return group

    def configure_optimizers(self) -> dict:
        """Head and encoder as separate parameter groups; a frozen encoder is left out (the
        `UnfreezeEncoder` callback adds it when its epoch comes)."""
        groups = [{"params": self.net.parameter_groups()["head"], "name": "head"}]
        if not self.net.encoder_frozen:
            groups.append(self.encoder_param_group())
        optimizer = self.optimizer_factory(params=groups)
        if self.scheduler_spec is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer,
                "lr_scheduler": self.scheduler_spec.build(optimizer, self.trainer)}

    def _train_metrics(self) -> dict:
        return {"confmat": self.confmats["train_confmat"],
                "loss": self.mean_losses["train_loss"], "aux_loss": self.mean_aux_loss}

    def _train_states(self) -> dict:
        """The epoch's train metric states so far, summed over processes (a collective: every
        process saves each checkpoint), with how many steps updated them."""
        strategy = self.trainer.strategy
        return {name: {"count": metric._update_count,  # torchmetrics' count of updates
                       "states": {key: strategy.reduce(value.clone(), reduce_op="sum")
                                  for key, value in metric.metric_state.items()}}
                for name, metric in self._train_metrics().items()}

    def _restore_train_states(self, saved: dict) -> None:
        """Put a checkpoint's train states back: on global rank zero, which then holds every
        process's share of the steps taken; the other processes start from zero."""
        keep = self._trainer is None or self._trainer.global_rank == 0
        for name, metric in self._train_metrics().items():
            metric.reset()
            if keep and name in saved:
                metric.merge_state(saved[name]["states"])
                metric._update_count = saved[name]["count"]  # compute warns at zero

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["seglab"] = {"version": __version__, "class_names": self.class_names,
                                "best_val_miou": self.best_val_miou,
                                "best_val_epoch": self.best_val_epoch,
                                "best_val_step": self.best_val_step,
                                "val_scores": self.val_scores,
                                "train_epoch": self.current_epoch,
                                "train_states": self._train_states()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """What a resumed run needs besides the weights: the best epoch, the last validation's
        scores (metrics.json's val keys, also when only the test was left to run) and the
        interrupted epoch's train metric states."""
        saved = checkpoint.get("seglab", {})
        self.best_val_miou = saved.get("best_val_miou", -math.inf)
        self.best_val_epoch = saved.get("best_val_epoch")
        self.best_val_step = saved.get("best_val_step")
        self.val_scores = dict(saved.get("val_scores", {}))
        if "train_states" in saved:
            self._restore_train_states(saved["train_states"])
            self._restored_train_epoch = saved["train_epoch"]
