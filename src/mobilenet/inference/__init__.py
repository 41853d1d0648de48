"""Inference: what ``mobilenet predict`` and a server share, over a PyTorch model or an exported-file runner."""

from mobilenet.inference.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
