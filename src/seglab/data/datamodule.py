"""The LightningDataModule shared by every dataset: splits, transforms and loaders."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, get_worker_info

from seglab.data.dataset import SegmentationDataset
from seglab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

SPLITS = ("train", "val", "test")


def _seed_worker_transform(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream, new every epoch, reproducible."""
    info = get_worker_info()
    if info is not None and info.dataset.transform is not None:
        info.dataset.transform.set_random_seed(info.seed % 2**32)


class SegmentationDataModule(LightningDataModule):
    """Builds the train/val/test splits of one dataset and serves them in batches.

    `dataset` is a callable `(split, transform) -> SegmentationDataset` (a Hydra partial).
    `class_names` defaults to the dataset's own; `input_size` (height, width) is the size images
    reach the network at, used for GFLOPs.
    """

    def __init__(self, name: str, dataset: Callable[..., SegmentationDataset], num_classes: int,
                 input_size: Sequence[int], class_names: Sequence[str] | None = None,
                 ignore_index: int = 255, batch_size: int = 16, num_workers: int = 0,
                 resize: Sequence[int] | None = None, hflip: float = 0.0, vflip: float = 0.0,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 seed: int = 0, pin_memory: bool = False) -> None:
        super().__init__()
        self.name = name
        self.dataset_factory = dataset
        self.num_classes = num_classes
        self.input_size = tuple(input_size)
        self._class_names = list(class_names) if class_names is not None else None
        self.ignore_index = ignore_index
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.transform_options = {"resize": resize, "hflip": hflip, "vflip": vflip,
                                  "mean": mean, "std": std}
        self.datasets: dict[str, SegmentationDataset] = {}

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

    def split(self, name: str) -> SegmentationDataset:
        """The dataset of split `name`, built on first use with its transform."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        if name not in self.datasets:
            transform = build_transform(train=name == "train", seed=self.seed,
                                        **self.transform_options)
            self.datasets[name] = self.dataset_factory(split=name, transform=transform)
        return self.datasets[name]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": ("test",)}.get(stage, SPLITS)
        for name in wanted:
            self.split(name)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.split(split), batch_size=self.batch_size, shuffle=shuffle,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
            drop_last=shuffle and len(self.split(split)) > self.batch_size,
            generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=_seed_worker_transform,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
