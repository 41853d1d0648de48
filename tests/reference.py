"""What the weight-conversion tests share: reference models made hard to convert by accident."""

from __future__ import annotations

import torch


def randomize_bn(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BN statistics, small variances included, so that any epsilon or mapping slip shows."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.weight.data = torch.rand(n, generator=generator) + 0.5
            module.bias.data = torch.randn(n, generator=generator) * 0.1
            module.running_mean = torch.randn(n, generator=generator) * 0.1
            module.running_var = torch.rand(n, generator=generator) * 0.95 + 0.05
