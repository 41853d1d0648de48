"""``mobilenet train``: train or fine-tune on an image data set, or ``--resume`` a run.

Multi-GPU on one node:  ``torchrun --nproc-per-node 8 -m mobilenet train ...``
Several nodes:          ``torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d
                        --rdzv-endpoint HOST:29500 -m mobilenet train ...``
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields

from mobilenet.errors import ConfigError
from mobilenet.training import RECIPES, TrainConfig, resolve_config, resume_config, train
from mobilenet.training.config import AMP_MODES, OPTIMIZERS, SCHEDULES

# flag -> (type, help). Every flag defaults to None so that only what the user gives
# overrides the recipe; booleans come as --flag / --no-flag pairs.
VALUE_FLAGS: dict[str, tuple[type, str]] = {
    "data": (
        str,
        "folder (root/<class>/<image>, or with train/ and valid/) or a name: fashion-mnist, cifar10, flowers17",
    ),
    "val_data": (str, "separate validation folder"),
    "data_root": (str, "where named data sets live (default $MOBILENET_DATA or ../shared/data)"),
    "val_fraction": (float, "fraction of the training images held out for validation (fixed seed)"),
    "model": (str, "registry name (mobilenet models), default mobilenet_v1"),
    "width_mult": (float, "the paper's alpha"),
    "resolution": (int, "input size, the paper's rho"),
    "in_chans": (int, "1 keeps grayscale, 3 repeats it"),
    "stem_stride": (int, "1 for 28-32 px images"),
    "act": (str, "relu6 (default) or relu"),
    "dropout": (float, "dropout before the classifier"),
    "weights": (str, "fine-tune from these weights (any format, a tag: timm / hf / keras, or a training run)"),
    "freeze_epochs": (int, "fine-tuning: epochs training only the new classifier"),
    "body_lr_scale": (float, "fine-tuning: the body's learning rate as a fraction of --lr"),
    "epochs": (int, "epochs to train (with --resume: the new total)"),
    "batch_size": (int, "global batch size, split across processes"),
    "lr": (float, "peak learning rate"),
    "optimizer": (str, f"one of {', '.join(OPTIMIZERS)}"),
    "momentum": (float, "SGD / RMSprop momentum"),
    "rmsprop_eps": (float, "RMSprop epsilon (inside the square root, as TensorFlow)"),
    "weight_decay": (float, "L2 weight decay on conv and linear weights"),
    "schedule": (str, f"one of {', '.join(SCHEDULES)}"),
    "warmup_epochs": (float, "linear warm-up epochs"),
    "min_lr": (float, "final learning rate of the cosine schedule"),
    "step_epochs": (float, "step schedule: epochs between decays"),
    "step_gamma": (float, "step schedule: decay factor"),
    "exp_gamma": (float, "exponential schedule: decay factor (TF-slim 0.94)"),
    "exp_epochs": (float, "exponential schedule: epochs between decays (TF-slim 2.5)"),
    "label_smoothing": (float, "label smoothing"),
    "clip_grad": (float, "clip the gradient norm to this"),
    "ema_decay": (float, "keep an EMA of the weights with this decay, evaluated alongside"),
    "auto_augment": (str, "trivial, rand or imagenet (AutoAugment's ImageNet policy)"),
    "random_erasing": (float, "random erasing probability"),
    "mixup": (float, "mixup alpha"),
    "cutmix": (float, "cutmix alpha"),
    "workers": (int, "data loader processes (default: automatic)"),
    "amp": (str, f"mixed precision: one of {', '.join(AMP_MODES)}"),
    "device": (str, "auto (CUDA if present), cpu, cuda, cuda:N"),
    "seed": (int, "seed of initialisation, data order and augmentation"),
    "steps_per_epoch": (int, "cap on steps per epoch (smoke runs)"),
    "stop_after": (int, "stop after this many epochs; --resume continues"),
}
BOOL_FLAGS: dict[str, str] = {
    "augment": "data augmentation (--no-augment: none)",
    "nesterov": "Nesterov momentum for SGD",
    "decay_bn": "weight decay on batch norm parameters",
    "decay_bias": "weight decay on biases",
    "decay_depthwise": "weight decay on depthwise filters",
    "channels_last": "channels_last memory format",
    "compile": "torch.compile the model",
    "sync_bn": "synchronised batch norm across processes",
    "freeze_bn": "fixed BN statistics (default: on when fine-tuning --weights)",
    "equalise_filters": "fine-tuning: rescale each filter to He initialisation's norm first (same function)",
    "download": "let torchvision download fashion-mnist / cifar10",
    "strict": "a corrupt image is an error instead of a warning",
    "progress": "progress bar",
    "qat": "quantization-aware training of the float --weights; writes <out>/model_int8.pt2",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``."""
    p = sub.add_parser("train", help="train on an image data set, or --resume a run", description=__doc__)
    p.add_argument("--recipe", choices=sorted(RECIPES), help="named preset; every flag overrides it")
    p.add_argument("--out", help="output folder: checkpoints, metrics.jsonl, config.json")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    for name, (kind, text) in VALUE_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    for name, text in BOOL_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction, help=text)
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    known = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in known and k != "recipe" and v is not None}
    if args.resume:
        extra = sorted(set(given) - {"epochs", "out"})
        if extra:
            raise ConfigError(f"--resume continues a saved configuration; only --epochs can change (got {extra})")
        config = resume_config(args.resume, given.get("epochs"))
        config.out = args.resume
    else:
        config = resolve_config(args.recipe, **given)
    if config.qat and args.resume:
        raise ConfigError("--qat runs cannot be resumed: start it again")
    result = train(config, resume=bool(args.resume))
    if result and not config.qat and os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"done: checkpoints in {config.out} (best.safetensors, last.safetensors), metrics in metrics.jsonl")
    return 0
