"""seglab: a Hydra-configured PyTorch Lightning framework for semantic segmentation."""

__version__ = "0.1.0"
