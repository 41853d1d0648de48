"""BatchNorm statistics when fine-tuning: fixed, or re-measured on the new data.

Google's TFLite weights have BN folded into the convolutions, so their BN layers hold identity
statistics (mean 0, variance 1). Trained with batch statistics from there, every BN suddenly
normalises activations of arbitrary scale to unit variance and the network's function is lost;
trained with the identity statistics fixed, nothing normalises the activations any more and a
learning rate that suits BN networks (0.02 for SGD at batch 64) destroys the features within a
hundred steps (docs/log/2026-12-01-results-history.md). ``renormalise_batchnorm`` avoids both: it measures each BN
layer's input statistics on the new data and rewrites the layer so that it normalises with them
while computing exactly the same function as before.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BatchNorm = nn.modules.batchnorm._BatchNorm


def fix_bn_statistics(model: nn.Module) -> None:
    """BN normalises with its running statistics and stops updating them (its scale and shift still learn).

    The usual choice for small data sets, and the default when fine-tuning ``--weights``.
    """
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.eval()


@torch.no_grad()
def renormalise_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Give every affine BN layer its input's mean and variance over ``batches``, keeping the function.

    A layer computing ``w * (x - m) / s + b`` (``s = sqrt(v + eps)``) whose input has mean ``mu``
    and variance ``var`` on the data becomes ``w' * (x - mu) / s' + b'`` with ``s' = sqrt(var + eps)``,
    ``w' = w * s' / s`` and ``b' = b + w * (mu - m) / s``: the same outputs in eval mode, and in
    train mode (batch statistics) the same outputs on data like ``batches``. All layers are measured
    in one eval-mode pass, which the rewrite does not change. Returns how many layers were rewritten.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.affine and m.running_mean is not None]
    moments: dict[nn.Module, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def measure(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].double()
        dims = [d for d in range(x.dim()) if d != 1]
        total, squares, count = moments.get(module, (0.0, 0.0, 0))
        moments[module] = (total + x.sum(dims), squares + x.square().sum(dims), count + x.numel() // x.shape[1])

    handles = [layer.register_forward_pre_hook(measure) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        for images in batches:
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for layer in layers:
        if layer not in moments:
            continue
        total, squares, count = moments[layer]
        mean = total / count
        var = (squares / count - mean.square()).clamp_min(0)
        old_scale = (layer.running_var.double() + layer.eps).sqrt()
        new_scale = (var + layer.eps).sqrt()
        weight = layer.weight.double()
        layer.bias.copy_(layer.bias.double() + weight * (mean - layer.running_mean.double()) / old_scale)
        layer.weight.copy_(weight * new_scale / old_scale)
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
    return len(moments)


@torch.no_grad()
def equalise_filter_norms(model: nn.Module) -> int:
    """Rescale every convolution followed by BN to He initialisation's filter norm, keeping the function.

    Google's folded weights leave some layers' filters far smaller than others (V2's and V3's
    expansions at about a tenth of the norm He initialisation gives, V1's smallest at a half).
    Behind BN, a filter's gradient grows as its norm shrinks, so one learning rate moves those
    layers by more than their own size each step. Scaling each output channel's filter by
    ``c = sqrt(2) / |w|`` (He-normal's expected norm) and its BN's running mean by ``c``, variance
    by ``c**2`` and weight by ``sqrt(c**2 v + eps) / (c sqrt(v + eps))`` keeps the eval-mode outputs
    and, BN normalising batches either way, the train-mode ones. Returns how many convolutions
    were rescaled (units with ``conv`` and ``bn`` children, as :class:`~mobilenet.models.layers.ConvBNAct`).
    """
    count = 0
    for unit in model.modules():
        conv, bn = getattr(unit, "conv", None), getattr(unit, "bn", None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, _BatchNorm) or conv.bias is not None:
            continue
        if not bn.affine or bn.running_var is None:
            continue
        weight = conv.weight.double()
        norms = weight.flatten(1).norm(dim=1)
        scale = torch.where(norms > 0, 2.0**0.5 / norms, torch.ones_like(norms))
        var = bn.running_var.double()
        bn.weight.copy_(bn.weight.double() * (scale.square() * var + bn.eps).sqrt() / (scale * (var + bn.eps).sqrt()))
        bn.running_mean.copy_(bn.running_mean.double() * scale)
        bn.running_var.copy_(var * scale.square())
        conv.weight.copy_(weight * scale.view(-1, *[1] * (weight.dim() - 1)))
        count += 1
    return count
