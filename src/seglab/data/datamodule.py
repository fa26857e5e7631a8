"""The LightningDataModule shared by every dataset: splits, transforms and loaders."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from lightning import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info
from torch.utils.data.dataloader import default_collate
from torchdata.stateful_dataloader import StatefulDataLoader

from seglab.core.errors import ConfigError
from seglab.data.checks import SplitReport, check_split
from seglab.data.dataset import SegmentationDataset
from seglab.data.paired import PairedDataset
from seglab.data.palette import class_palette
from seglab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    normalization_tensors,
    normalize_images,
)

log = logging.getLogger(__name__)
# torchdata 0.11 calls an API torch 2.14 deprecated, once per loader iterator: noise for users
warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)

SPLITS = ("train", "val", "test")
MAX_AUTO_WORKERS = 8
EVAL_MODES = ("whole", "slide")


def loader_workers(num_workers: int | str, local_processes: int = 1) -> int:
    """`data.num_workers`: a count, or "auto": the CPU cores this process may run on (its
    affinity, which SLURM and containers narrow), shared among the `local_processes` (DDP
    processes of this machine), capped at MAX_AUTO_WORKERS."""
    if num_workers != "auto":
        return int(num_workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_AUTO_WORKERS, (cores or 1) // max(1, local_processes)))


def _seed_worker_transform(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream, new every epoch, reproducible."""
    info = get_worker_info()
    if info is not None and info.dataset.transform is not None:
        info.dataset.transform.set_random_seed(info.seed % 2**32)


def _transform_generators(transform) -> Iterator:
    """Every random generator pair of an albumentations pipeline: each transform owns its own
    (plain functions inside it, such as a Lambda's, have none)."""
    if hasattr(transform, "random_generator") and hasattr(transform, "py_random"):
        yield transform.random_generator, transform.py_random
    for child in getattr(transform, "transforms", ()):
        yield from _transform_generators(child)


def collate_by_size(samples: list[dict]) -> dict | list[dict]:
    """An evaluation batch: the samples stacked, or, when their sizes differ (images kept at
    their own size by `eval_sizing: null`), a list of stacked batches, one per size."""
    groups: dict[tuple[int, ...], list[dict]] = {}
    for sample in samples:
        groups.setdefault(tuple(sample["image"].shape[-2:]), []).append(sample)
    batches = [default_collate(group) for group in groups.values()]
    return batches[0] if len(batches) == 1 else batches


def slide_window(mode: str, tile: Sequence[int] | None, stride: Sequence[int] | None,
                 input_size: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(tile, stride) of sliding-window evaluation (`eval_mode: slide`), None for whole images:
    the tile defaults to `input_size`, the stride to two thirds of the tile (as
    MMSegmentation's 512-pixel crops every 341 pixels)."""
    if mode not in EVAL_MODES:
        raise ValueError(f"data.eval_mode must be one of {EVAL_MODES}, got {mode!r}")
    if mode == "whole":
        return None
    tile = tuple(tile or input_size)
    stride = tuple(stride or (max(1, side * 2 // 3) for side in tile))
    if any(step > side for step, side in zip(stride, tile, strict=True)):
        raise ValueError(f"data.eval_stride {list(stride)} must not exceed the tile "
                         f"{list(tile)} on either side, or pixels between tiles go unpredicted")
    return tile, stride


class ResumableSplit(Dataset):
    """A split whose augmentation state travels in checkpoints (torchdata's StatefulDataLoader
    saves it per loader worker), so a run resumed mid-epoch draws the augmentations the
    uninterrupted run would have drawn."""

    def __init__(self, dataset: SegmentationDataset) -> None:
        self.dataset = dataset

    @property
    def transform(self):
        return self.dataset.transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index]

    def state_dict(self) -> dict:
        if self.transform is None:
            return {}
        return {"generators": [(numpy.bit_generator.state, python.getstate())
                               for numpy, python in _transform_generators(self.transform)]}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("generators", [])
        generators = list(_transform_generators(self.transform)) if saved else []
        for (numpy, python), (numpy_state, python_state) in zip(generators, saved, strict=True):
            numpy.bit_generator.state = numpy_state
            version, internal, gauss = python_state
            python.setstate((version, tuple(internal), gauss))


class SegmentationDataModule(LightningDataModule):
    """Builds the train/val/test splits of one dataset and serves them in batches.

    `dataset` is a callable `(split, transform) -> SegmentationDataset` (a Hydra partial).
    `class_names` defaults to the dataset's own; `input_size` (height, width) is the size
    batches have and the network sees (GFLOPs are counted there). `on_error` says what a data
    problem found by `check` does: "raise" stops before training, "skip" drops the bad samples.
    The augmentation options are those of `build_transform`. `num_workers` "auto" takes the
    cores this process may use, capped (`loader_workers`); `pin_memory` None pins when a GPU
    is present; `normalize_on_device` ships images as uint8 and normalises them after the
    transfer (`prepare_images`). `eval_mode`, `eval_tile` and `eval_stride` say how
    validation and test compute logits (`slide_window`; the LightningModule is built with
    it); evaluation batches of images of different sizes come as one batch per size
    (`collate_by_size`). Any other keyword (`year`,
    `mode`, `subset`, `split_fractions`, `download`...) is an option of the dataset and is
    passed to it, with `root`.
    """

    def __init__(self, name: str, dataset: Callable[..., SegmentationDataset], num_classes: int,
                 input_size: Sequence[int], class_names: Sequence[str] | None = None,
                 ignore_index: int = 255, batch_size: int = 16, num_workers: int | str = 0,
                 root: str | None = None, on_error: str = "raise",
                 eval_sizing: str | None = None, scale: Sequence[float] | None = None,
                 crop: bool = False, hflip: float = 0.0, vflip: float = 0.0,
                 color_jitter: float = 0.0, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, seed: int = 0,
                 pin_memory: bool | None = None, normalize_on_device: bool = False,
                 eval_mode: str = "whole", eval_tile: Sequence[int] | None = None,
                 eval_stride: Sequence[int] | None = None, **dataset_options) -> None:
        super().__init__()
        self.name = name
        self.dataset_factory = dataset
        self.num_classes = num_classes
        self.input_size = tuple(input_size)
        self.slide_window = slide_window(eval_mode, eval_tile, eval_stride, self.input_size)
        self._class_names = list(class_names) if class_names is not None else None
        self.ignore_index = ignore_index
        self.batch_size = batch_size
        self.num_workers_option = num_workers
        self._saved_num_workers: int | None = None
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self._normalization: dict[torch.device, tuple[Tensor, Tensor]] = {}
        if on_error not in ("raise", "skip"):
            raise ValueError(f"data.on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = root
        self.dataset_options = dict(dataset_options)
        if root is not None:
            self.dataset_options["root"] = root
        self.on_error = on_error
        self.transform_options = {
            "input_size": self.input_size, "eval_sizing": eval_sizing, "scale": scale,
            "crop": crop, "hflip": hflip, "vflip": vflip, "color_jitter": color_jitter,
            "mean": mean, "std": std, "ignore_index": ignore_index,
            "normalize": not normalize_on_device}
        self.datasets: dict[str, SegmentationDataset] = {}
        self.skipped: list[str] = []
        self._train_loader: StatefulDataLoader | None = None
        self._train_loader_state: dict | None = None
        self._train_loader_epoch = 0

    @property
    def class_names(self) -> list[str]:
        """Class names from config, else the dataset's own, checked against num_classes."""
        names = self._class_names
        if names is None:
            names = list(self.split("val").class_names)
        if len(names) != self.num_classes:
            raise ValueError(f"data.class_names has {len(names)} names {names} but "
                             f"data.num_classes is {self.num_classes}")
        return names

    @property
    def palette(self):
        """Class colours for plots: the dataset's own where it has them, else VOC's."""
        own = getattr(self.split("val"), "palette", None)
        return own if own is not None else class_palette(self.num_classes)

    @property
    def reads_files(self) -> bool:
        """Whether the samples come from files (and so can be broken), not from a generator."""
        return isinstance(self.split("train"), PairedDataset)

    def _cache_key(self, split: str) -> str:
        factory = self.dataset_factory
        options = sorted({**getattr(factory, "keywords", {}), **self.dataset_options}.items())
        target = getattr(getattr(factory, "func", factory), "__qualname__", str(factory))
        return f"{self.name}|{target}|{options}|{split}|{self.num_classes}|{self.ignore_index}"

    def split_report(self, split: str, progress: bool = False) -> SplitReport:
        """Sizes, class pixel counts and problems of one split (cached per file)."""
        return check_split(self.split(split), split, self.num_classes, self.ignore_index,
                           self._cache_key(split), progress)

    def check(self, progress: bool = True) -> list[SplitReport]:
        """Scan every split (file-based datasets cached by file size and mtime). Under
        `on_error: skip` the bad samples are dropped, each logged and listed in `skipped`."""
        reports, seen = [], set()
        for name in SPLITS:
            dataset = self.split(name)
            report = self.split_report(name, progress)
            # splits cut from one folder all see its listing problems: report each once
            report.problems = [p for p in dict.fromkeys(report.problems) if p not in seen]
            seen.update(report.problems)
            if self.on_error == "skip" and report.bad_ids:
                for problem in report.problems:
                    log.warning("skipping: %s", problem)
                self.skipped += sorted(report.bad_ids)
                dataset.without(report.bad_ids)
            reports.append(report)
        return reports

    def split(self, name: str) -> SegmentationDataset:
        """The dataset of split `name`, built on first use with its transform."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        if name not in self.datasets:
            transform = build_transform(train=name == "train", seed=self.seed,
                                        **self.transform_options)
            self.datasets[name] = self.dataset_factory(split=name, transform=transform,
                                                       **self.dataset_options)
        return self.datasets[name]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",)}.get(stage, SPLITS)
        for name in wanted:
            self.split(name)

    @property
    def num_workers(self) -> int:
        """Loader processes: `data.num_workers`, "auto" resolved for this machine's share of
        the run; a resumed run keeps the count its loader state was saved with."""
        if self._saved_num_workers is not None:
            return self._saved_num_workers
        devices = self.trainer.num_devices if self.trainer is not None else 1
        return loader_workers(self.num_workers_option, devices)

    @property
    def processes(self) -> int:
        """How many processes share each batch: the trainer's world size under DDP, else 1."""
        trainer = self.trainer
        return trainer.world_size if trainer is not None else 1

    def batch_share(self, processes: int) -> int:
        """`batch_size` is the global batch; each of the DDP `processes` loads its share."""
        if self.batch_size % processes:
            raise ConfigError(f"data.batch_size: {self.batch_size} is the global batch and must "
                              f"divide by the {processes} processes of this run; expected a "
                              f"multiple of {processes}")
        return self.batch_size // processes

    def _loader(self, split: str, loader_class: type[DataLoader] = DataLoader,
                **options) -> DataLoader:
        return loader_class(
            split, batch_size=self.batch_share(self.processes), num_workers=self.num_workers,
            pin_memory=self.pin_memory, generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=_seed_worker_transform, persistent_workers=self.num_workers > 0,
            **options)

    def _rank(self) -> int:
        return self.trainer.global_rank if self.processes > 1 else 0

    def _evaluation_loader(self, split: str) -> DataLoader:
        """In order; under DDP each sample goes to exactly one process, none repeated to even
        out the shares (Lightning's default sampler pads them, counting samples twice)."""
        dataset = self.split(split)
        sampler = None
        if self.processes > 1:
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=self.processes,
                                                   rank=self._rank(), shuffle=False)
        return self._loader(dataset, sampler=sampler, collate_fn=collate_by_size)

    def train_dataloader(self) -> DataLoader:
        """Shuffled with a permutation drawn from (seed, epoch) (Lightning sets the epoch), each
        DDP process taking its share; resumable mid-epoch: the position in the epoch and the
        augmentation state are saved in every checkpoint."""
        dataset = self.split("train")
        sampler = DistributedSampler(dataset, num_replicas=self.processes, rank=self._rank(),
                                     shuffle=True, seed=self.seed)
        loader = self._loader(ResumableSplit(dataset), StatefulDataLoader, sampler=sampler,
                              drop_last=len(dataset) > self.batch_size)
        if self._train_loader_state is not None:
            # the restored loader skips what its epoch's permutation already gave, and Lightning
            # makes the iterator before it sets the sampler's epoch: set it first
            sampler.set_epoch(self._train_loader_epoch)
            loader.load_state_dict(self._train_loader_state)
            self._train_loader_state = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict:
        """The train loader's position and augmentation state, saved in checkpoints. (Lightning
        saves it too, but restores it only into a loader made after the restore, and the
        schedulers' `estimated_stepping_batches` makes the loader before.)"""
        if self._train_loader is None:
            return {}
        state, epoch = self._train_loader.state_dict(), self._train_loader.sampler.epoch
        if self._epoch_consumed():  # the restored loader starts the next epoch
            state, epoch = {**state, "_iterator_finished": True}, epoch + 1
        # `epoch`: the epoch of the next batch, whose permutation the sampler must draw
        return {"train_loader": state, "num_workers": self.num_workers, "epoch": epoch}

    def _epoch_consumed(self) -> bool:
        """Whether the train loader gave its epoch's last batch. An epoch-end checkpoint is
        written after it but before the loader ends its iterator: restored as it is, that
        iterator would give the next epoch no batch at all."""
        trainer = self.trainer
        return trainer is not None and \
            trainer.fit_loop.epoch_loop.batch_progress.current.ready >= \
            trainer.num_training_batches

    def load_state_dict(self, state_dict: dict) -> None:
        """Restored before the train loader is made: it starts where the checkpoint was."""
        self._train_loader_state = state_dict.get("train_loader")
        self._saved_num_workers = state_dict.get("num_workers")
        self._train_loader_epoch = state_dict.get("epoch", 0)

    def prepare_images(self, images: Tensor) -> Tensor:
        """Network inputs from a batch's (or a sample's) images: uint8 ones, from splits
        under `normalize_on_device`, normalised where they are; float ones as they are."""
        if images.dtype != torch.uint8:
            return images
        if images.device not in self._normalization:  # one host-to-device copy per device
            self._normalization[images.device] = normalization_tensors(
                self.transform_options["mean"], self.transform_options["std"], images.device)
        return normalize_images(images, *self._normalization[images.device])

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Sample batches (and each of a list of them, one per size) get network inputs;
        anything else (Lightning also passes the model summary's example input through here)
        is left as it is."""
        if isinstance(batch, list):
            return [self.on_after_batch_transfer(part, dataloader_idx) for part in batch]
        if not isinstance(batch, dict) or "image" not in batch:
            return batch
        return {**batch, "image": self.prepare_images(batch["image"])}

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")
