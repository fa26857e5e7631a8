"""From a model to pictures: loading a model for inference, whole/slide/TTA prediction,
reading images and videos, writing masks, overlays and pseudo-label datasets."""
