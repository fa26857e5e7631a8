"""Segmentation networks behind one interface; see `build_model`."""

from seglab.models.base import SegmentationNet
from seglab.models.complexity import count_gflops, count_parameters
from seglab.models.registry import MODELS, build_model, check_pair, supported_encoders

__all__ = ["MODELS", "SegmentationNet", "build_model", "check_pair", "count_gflops",
           "count_parameters", "supported_encoders"]
