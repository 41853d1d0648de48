"""Named training recipes: overrides of :class:`~mobilenet.training.config.TrainConfig`'s defaults.

Each reaches the figures recorded in docs/RESULTS.md with the command shown there; every
command-line flag overrides the recipe it is given with.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "fashion-mnist": {
        # One run of 2 h 10 min on the 2-core CPU, 94.26% test, 94.47% with `eval --tta flip`
        # (docs/RESULTS.md).
        "data": "fashion-mnist",
        "width_mult": 0.75,
        "stem_stride": 1,
        "channels_last": True,
        "epochs": 44,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "random_erasing": 0.1,
        "ema_decay": 0.999,
        "dropout": 0.0,
        "val_fraction": 0.05,
    },
    "fashion-mnist-finetune": {
        # Fine-tuning ImageNet weights (give them with --weights: Google's 0.75-192 TFLite model),
        # 1 h 53 min on the 2-core CPU, 94.52% test, 94.73% with `eval --tta flip`
        # (docs/RESULTS.md): grayscale repeated to 3 channels and upsampled 28 -> 56 px, so the
        # stride-2 stem gives the from-scratch recipe's feature-map sizes at the same cost an epoch;
        # one warm-up epoch instead of a head-only one, BN statistics re-measured on Fashion-MNIST.
        "data": "fashion-mnist",
        "resolution": 56,
        "channels_last": True,
        "epochs": 40,
        "batch_size": 128,
        "lr": 0.04,
        "freeze_epochs": 0,
        "freeze_bn": False,
        "body_lr_scale": 1.0,
        "weight_decay": 4e-5,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "random_erasing": 0.25,
        "ema_decay": 0.999,
        "val_fraction": 0.05,
    },
    "cifar10": {
        "data": "cifar10",
        "stem_stride": 1,
        "epochs": 60,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 5e-5,
        "decay_depthwise": False,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "auto_augment": "trivial",
        "random_erasing": 0.25,
        "ema_decay": 0.999,
        "dropout": 0.1,
        "val_fraction": 0.05,
    },
    "cifar10-finetune": {
        # Fine-tuning ImageNet weights (give them with --weights: Google's 0.75-192 TFLite model),
        # 1 h 36 min on the 2-core CPU, 90.20% test, 90.89% with `eval --tta flip`
        # (docs/RESULTS.md): CIFAR-10 upsampled to 128 px, the new classifier alone for one epoch,
        # then everything at the full rate with BN statistics re-measured on CIFAR-10.
        # (96 px for 19 epochs: 90.15% in 1 h 51 min.)
        "data": "cifar10",
        "resolution": 128,
        "channels_last": True,
        "epochs": 10,
        "batch_size": 64,
        "lr": 0.02,
        "freeze_epochs": 1,
        "freeze_bn": False,
        "body_lr_scale": 1.0,
        "weight_decay": 5e-5,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "label_smoothing": 0.1,
        "random_erasing": 0.25,
        "ema_decay": 0.999,
        "val_fraction": 0.05,
    },
    "flowers17": {
        # From scratch, sized for a 2-core CPU (about 10 minutes): alpha 0.5 at 128 px.
        "data": "flowers17",
        "width_mult": 0.5,
        "resolution": 128,
        "epochs": 60,
        "batch_size": 32,
        "lr": 0.05,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup_epochs": 2,
        "label_smoothing": 0.1,
        "auto_augment": "trivial",
        "ema_decay": 0.99,
        "dropout": 0.2,
    },
    "flowers17-finetune": {
        # Fine-tuning ImageNet weights (give them with --weights, e.g. Google's 0.75-192 TFLite
        # model): a new classifier trained alone for one epoch, then the body at a tenth of its rate.
        "data": "flowers17",
        "epochs": 8,
        "batch_size": 32,
        "lr": 0.02,
        "body_lr_scale": 0.1,
        "freeze_epochs": 1,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "label_smoothing": 0.1,
        "dropout": 0.2,
    },
    "imagenet": {
        # The paper's setting (Section 4): RMSprop, TF-slim's epsilon 1.0, lr 0.045 decayed 0.94
        # every 2.5 epochs (TF-slim's train_image_classifier defaults for MobileNet), little or
        # no weight decay on the depthwise filters, label smoothing 0.1.
        "optimizer": "rmsprop",
        "lr": 0.045,
        "momentum": 0.9,
        "rmsprop_eps": 1.0,
        "batch_size": 96,
        "weight_decay": 4e-5,
        "schedule": "exponential",
        "exp_gamma": 0.94,
        "exp_epochs": 2.5,
        "epochs": 300,
        "label_smoothing": 0.1,
        "ema_decay": 0.9999,
        "resolution": 224,
    },
    "imagenet-v3-large": {
        # torchvision's recipe for its MobileNetV3-Large (references/classification, 74.0% top-1):
        # RMSprop lr 0.064 for a batch of 1024 (8 processes of 128; scale the rate with the batch),
        # alpha and momentum 0.9, epsilon 0.0316 outside the square root, here 0.001 inside it as
        # TensorFlow places it; weight decay 1e-5 on every parameter but BN's; lr x0.973 every 2
        # epochs for 600; AutoAugment's ImageNet policy and random erasing 0.2.
        "model": "mobilenet_v3_large",
        "optimizer": "rmsprop",
        "lr": 0.064,
        "momentum": 0.9,
        "rmsprop_eps": 0.001,
        "batch_size": 1024,
        "weight_decay": 1e-5,
        "decay_bias": True,
        "decay_depthwise": True,
        "schedule": "exponential",
        "exp_gamma": 0.973,
        "exp_epochs": 2.0,
        "epochs": 600,
        "auto_augment": "imagenet",
        "random_erasing": 0.2,
        "resolution": 224,
    },
}
RECIPES["flowers17-finetune-v3"] = {
    # Fine-tuning Google's V3 files (V3-Small, V3-Large-minimalistic; give them with --weights).
    # Their convolutions carry BN folded in: trained as folded (--freeze-bn) the body has no
    # normalisation, and SGD ended at 94.85%, AdamW with clipping at 95.59%. Here BN is re-measured
    # on Flowers-17 first and trains with batch statistics, and the longer schedule has
    # TrivialAugment and an EMA of the weights: on valid at the last epoch V3-Small 97.79%,
    # V3-Large-minimalistic 98.53% (docs/RESULTS.md).
    **RECIPES["flowers17-finetune"],
    "freeze_bn": False,
    "epochs": 20,
    "auto_augment": "trivial",
    "ema_decay": 0.998,
}
# The MobileNetV2 paper (Section 6.1) trains as V1's recipe does (RMSprop with decay and momentum 0.9,
# TF-slim's epsilon, lr 0.045, weight decay 4e-5, batch 96) but decays the rate by 0.98 every epoch;
# it names neither label smoothing nor an EMA, nor an epoch count (torchvision's recipe: 300).
RECIPES["imagenet-v2"] = {
    **RECIPES["imagenet"],
    "model": "mobilenet_v2",
    "exp_gamma": 0.98,
    "exp_epochs": 1.0,
    "label_smoothing": 0.0,
    "ema_decay": None,
}
# torchvision trains its V3-Small with V3-Large's recipe (67.7% top-1).
RECIPES["imagenet-v3-small"] = {**RECIPES["imagenet-v3-large"], "model": "mobilenet_v3_small"}
# Flowers-17 from scratch per architecture: the V1 recipe's schedule, augmentation and regularisation
# unchanged, each V3 at its own width 1.0, so the figures compare the architectures.
RECIPES["flowers17-v3-large"] = {**RECIPES["flowers17"], "model": "mobilenet_v3_large", "width_mult": 1.0}
RECIPES["flowers17-v3-small"] = {**RECIPES["flowers17"], "model": "mobilenet_v3_small", "width_mult": 1.0}
# CIFAR-10 from Google's V3-Large-minimalistic weights (give them with --weights): the V1 fine-tune
# with every filter first rescaled to He initialisation's norm (BN takes the factor; the function is
# kept) and a longer cosine. Folding left this network's expansion filters at ~0.12 of that norm, where
# the V1 recipe's rate moves them by more than their size: in a 450-step pilot (--epochs 3
# --steps-per-epoch 150) equalising lifted val from 74.04% to 82.12% (V1 0.75-192 81.68%, 82.48%
# equalised), at V1's speed, from weights 5 points better on ImageNet. 10 epochs: 91.52% test, val
# still rising; 14 epochs: 92.22% test, 92.60% with flip TTA, 1 h 44 min on 2 cores (docs/RESULTS.md).
RECIPES["cifar10-finetune-v3-large-minimal"] = {**RECIPES["cifar10-finetune"], "equalise_filters": True, "epochs": 14}
