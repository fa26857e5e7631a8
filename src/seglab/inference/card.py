"""What a picture needs besides the network: class names and colours, and preprocessing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass
class ModelCard:
    """Everything about a model that its outputs and inputs depend on, kept with exports.

    `resize` is the preprocessing size: None keeps the picture's own size, an int resizes its
    shorter side to that many pixels (torchvision's published weights), [h, w] resizes to that
    size. `input_size` is the size the model was trained at (the default slide-mode tile).
    `colour_masks`: the training data's masks were RGB colours (art, KITTI), so pseudo-label
    masks are written in the palette's colours rather than as class indices.
    """

    class_names: list[str]
    palette: list[list[int]]
    mean: list[float]
    std: list[float]
    input_size: list[int]
    resize: int | list[int] | None = None
    colour_masks: bool = False
    model: str | None = None
    encoder: str | None = None
    source: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls(**json.loads(text))
