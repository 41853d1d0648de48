"""Optimisers, weight-decay groups and learning-rate schedules.

The paper trains with RMSprop (Section 4) and applies "very little or no weight decay (l2
regularization) on the depthwise filters since there are so few parameters in them". By default
weight decay here falls on convolution and linear weights only: not on batch norm parameters,
biases or depthwise filters; each exclusion can be switched off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from mobilenet.training.config import TrainConfig


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop as TensorFlow computes it (the paper's optimiser, TF-slim's defaults).

    Two differences from ``torch.optim.RMSprop``: epsilon sits inside the square root
    (``g / sqrt(ms + eps)``), and the mean square starts at 1, not 0. With TF-slim's epsilon of
    1.0 this damps the first steps; PyTorch's RMSprop with the same numbers diverges.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        alpha: float = 0.9,
        eps: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                square_avg = state["square_avg"].mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
                update = grad / (square_avg + group["eps"]).sqrt_()
                buf = state["momentum_buffer"].mul_(group["momentum"]).add_(update, alpha=group["lr"])
                p.sub_(buf)
        return loss


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Parameters grouped by weight decay (per the config's exclusions) and learning rate.

    The classifier learns at ``lr``; the rest of the network at ``lr * body_lr_scale`` (1 unless
    fine-tuning). Empty groups are left out.
    """
    head = {id(p) for p in getattr(model, "classifier", nn.Identity()).parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
            is_bias = name == "bias"
            is_dw = isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
            excluded = (
                (is_bn and not config.decay_bn)
                or (is_bias and not is_bn and not config.decay_bias)
                or (is_dw and not config.decay_depthwise)
            )
            groups.setdefault((not excluded, id(param) in head), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": config.weight_decay if decayed else 0.0,
            "lr": config.lr * (1.0 if is_head else config.body_lr_scale),
        }
        for (decayed, is_head), params in sorted(groups.items(), reverse=True)
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), the paper's RMSprop (TF epsilon) or AdamW."""
    groups = param_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "rmsprop":
        return RMSpropTF(groups, lr=config.lr, eps=config.rmsprop_eps, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule as a multiplier of ``lr`` per optimisation step (linear warm-up first)."""
    warmup = round(config.warmup_epochs * steps_per_epoch)
    total = config.epochs * steps_per_epoch
    floor = config.min_lr / config.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        epoch = step / steps_per_epoch
        if config.schedule == "cosine":
            progress = (step - warmup) / max(total - warmup, 1)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if config.schedule == "step":
            return config.step_gamma ** math.floor(epoch / config.step_epochs)
        return config.exp_gamma ** math.floor(epoch / config.exp_epochs)  # TF-slim's staircase decay

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
