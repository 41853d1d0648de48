"""Training: the configuration and recipes, the loop, checkpoints and the distributed set-up."""

from mobilenet.training.checkpoint import CheckpointError, load_model
from mobilenet.training.config import RECIPES, TrainConfig, resolve_config
from mobilenet.training.loop import TrainingError, resume_config, train

__all__ = [
    "RECIPES",
    "CheckpointError",
    "TrainConfig",
    "TrainingError",
    "load_model",
    "resolve_config",
    "resume_config",
    "train",
]
