"""Training: the configuration and recipes, one loop over a state object, checkpoints, distributed set-up."""

from mobilenet.training.checkpoint import CheckpointError
from mobilenet.training.config import TrainConfig, resolve_config
from mobilenet.training.recipes import RECIPES
from mobilenet.training.trainer import Loop, TrainingError, TrainState, fit, resume_config, train

__all__ = [
    "RECIPES",
    "CheckpointError",
    "Loop",
    "TrainConfig",
    "TrainState",
    "TrainingError",
    "fit",
    "resolve_config",
    "resume_config",
    "train",
]
