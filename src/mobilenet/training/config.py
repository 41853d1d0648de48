"""The training configuration: one dataclass, every knob visible, resolved from a recipe and flags.

A recipe (:mod:`mobilenet.training.recipes`) is a set of overrides of the defaults; every
command-line flag overrides the recipe. The resolved configuration is saved as ``config.json``
in the output folder, and ``--resume`` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from mobilenet.errors import ConfigError
from mobilenet.training.recipes import RECIPES

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
SCHEDULES = ("cosine", "step", "exponential")
AMP_MODES = ("none", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``None`` means "the model's or data set's own"."""

    # data
    data: str = ""
    val_data: str | None = None
    data_root: str | None = None
    val_fraction: float = 0.0
    download: bool = False
    strict: bool = False
    augment: bool = True
    auto_augment: str | None = None  # None | "trivial" | "rand" | "imagenet"
    random_erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    workers: int = -1  # -1: automatic
    # model
    model: str = "mobilenet_v1"
    width_mult: float | None = None
    resolution: int | None = None
    in_chans: int | None = None
    stem_stride: int | None = None
    act: str | None = None
    dropout: float | None = None
    weights: str | None = None  # pretrained weights to fine-tune (any format mobilenet.weights reads)
    freeze_epochs: int = 0  # fine-tuning: train only the new classifier for this many epochs
    body_lr_scale: float = 1.0  # fine-tuning: the body's learning rate as a fraction of --lr
    freeze_bn: bool | None = None  # keep BN statistics fixed (None: yes when fine-tuning --weights)
    equalise_filters: bool = False  # fine-tuning: filters rescaled to He initialisation's norm first
    # optimisation
    epochs: int = 10
    batch_size: int = 128  # global: split across processes
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    rmsprop_eps: float = 1.0  # TF-slim's RMSprop epsilon, inside the square root as TensorFlow does
    weight_decay: float = 4e-5
    decay_bn: bool = False
    decay_bias: bool = False
    decay_depthwise: bool = False
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    step_epochs: float = 30.0
    step_gamma: float = 0.1
    exp_gamma: float = 0.94
    exp_epochs: float = 2.5
    label_smoothing: float = 0.0
    clip_grad: float | None = None
    ema_decay: float | None = None
    # execution
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    device: str = "auto"
    seed: int = 0
    steps_per_epoch: int | None = None  # cap (for smoke runs and tests)
    stop_after: int | None = None  # stop after this many epochs of this invocation; --resume continues
    progress: bool = True
    qat: bool = False  # quantization-aware training of --weights (mobilenet.export.qat between the same loop)
    # bookkeeping
    out: str = ""
    recipe: str | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a value no run can use."""
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}"),
            (0 <= self.val_fraction < 1, f"--val-fraction must be in [0, 1), got {self.val_fraction}"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "--ema-decay must be in (0, 1)"),
            (self.body_lr_scale >= 0, "--body-lr-scale must be >= 0"),
            (self.freeze_epochs == 0 or self.weights, "--freeze-epochs needs --weights to fine-tune from"),
            (not self.equalise_filters or self.weights, "--equalise-filters needs --weights to fine-tune from"),
            (not self.qat or self.weights, "--qat needs --weights: the float checkpoint to quantize"),
            (bool(self.data), "--data is required: a folder or a data set name (fashion-mnist, cifar10, flowers17)"),
            (bool(self.out), "--out is required: the folder for checkpoints and metrics"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_json(self) -> str:
        """The configuration as saved in ``config.json``."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        """Read ``config.json``; unreadable JSON, unknown keys (from a newer version) and wrong types are an error."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # ValueError: bad UTF-8 or JSON
            raise ConfigError(f"{path} is not a readable config.json ({str(err).splitlines()[0]})") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of settings, found {type(data).__name__}")
        hints = get_type_hints(cls)
        unknown = set(data) - set(hints)
        if unknown:
            raise ConfigError(f"{path} has unknown settings {sorted(unknown)}: written by a newer version?")
        wrong = [key for key, value in data.items() if not _of_type(value, hints[key])]
        if wrong:
            raise ConfigError(f"{path}: {wrong[0]} is {data[wrong[0]]!r}, expected {hints[wrong[0]]}")
        return cls(**data)


def _of_type(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (an int fits a float field; a bool fits only a bool)."""
    allowed = get_args(hint) or (hint,)
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, tuple(t for t in allowed if isinstance(t, type)))


def resolve_config(recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the recipe, then explicit overrides (``None`` values are ignored)."""
    if recipe is not None and recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}: use one of {', '.join(RECIPES)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown training settings {sorted(unknown)}")
    values = {**RECIPES.get(recipe or "", {}), **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(recipe=recipe, **values)
