"""The inference graph every export path starts from: batch norm folded, TF-SAME padding frozen.

At inference a batch norm is an affine map per channel, ``gamma * (y - mean) / sqrt(var + eps) +
beta``, so it merges into the convolution before it: the weights are scaled per output channel
and a bias is added (V1's Figure 3 unit becomes conv -> ReLU6). Google's TFSameConv2d
computes its padding from the input's shape; for a file exported at one resolution that padding
is a constant and is written as such, so no runtime computes shapes to pad.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mobilenet.errors import ExportError
from mobilenet.models import MobileNet
from mobilenet.models.layers import ConvBNAct, TFSameConv2d, tf_same_padding


def check_exportable(model: nn.Module) -> MobileNet:
    """``model`` itself if it is one of the family's classifiers; an :class:`ExportError` otherwise."""
    if not isinstance(model, MobileNet):
        raise ExportError(
            f"can only export this package's models, got {type(model).__name__}: "
            "load one with mobilenet.load or build one with mobilenet.create_model"
        )
    if model.features_only:
        raise ExportError("cannot export a features_only model: export the classifier (num_classes=0 for features)")
    return model


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` (same class) with ``bn``'s eval-mode affine map folded into weight and bias.

    The arithmetic is done in float64 so that the folded model differs from the unfused one only
    by float32 rounding of the result.
    """
    fused = copy.deepcopy(conv)
    scale = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    fused.bias = nn.Parameter((bn.bias.double() + (bias - bn.running_mean.double()) * scale).to(conv.weight.dtype))
    return fused


def fold_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every conv + BN is one convolution with a bias.

    Every :class:`ConvBNAct` keeps its activation and gets ``bn = Identity``: V1's stem, depthwise
    and pointwise convolutions and head convolution; the expansion, depthwise and linear projection
    of V2's and V3's inverted residuals and their head convolutions. Squeeze-and-excite's two 1x1
    convolutions and V3's ``head_fc`` have a bias and no batch norm, so they are left as they are.
    The original is left untouched. Outputs equal the unfused model's in eval mode up to float32
    rounding.
    """
    folded = copy.deepcopy(model).eval()
    for unit in folded.modules():
        if isinstance(unit, ConvBNAct) and isinstance(unit.bn, nn.BatchNorm2d):
            unit.conv = fuse_conv_bn(unit.conv, unit.bn)
            unit.bn = nn.Identity()
    return folded


def static_conv(conv: TFSameConv2d, height: int, width: int) -> nn.Module:
    """``conv`` with TF-SAME padding for a ``height x width`` input written as constant padding.

    A plain ``Conv2d`` when the padding is symmetric, else a ``ZeroPad2d`` then a ``Conv2d``.
    """
    top, bottom = tf_same_padding(height, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
    left, right = tf_same_padding(width, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
    symmetric = top == bottom and left == right
    plain = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        (top, left) if symmetric else 0,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    plain.load_state_dict(conv.state_dict())
    return plain if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), plain)


@torch.no_grad()
def freeze_padding(model: nn.Module, resolution: int, in_chans: int = 3) -> nn.Module:
    """``model`` (changed in place and returned) with every TFSameConv2d padded for ``resolution``.

    The input size each convolution sees is recorded in one forward pass; the model then only
    accepts ``resolution x resolution`` inputs, which is what an exported file is for.
    """
    sizes: dict[nn.Module, tuple[int, int]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        sizes[module] = tuple(args[0].shape[-2:])

    hooks = [module.register_forward_pre_hook(record) for module in model.modules() if isinstance(module, TFSameConv2d)]
    try:
        model.eval()(torch.zeros(1, in_chans, resolution, resolution))
    finally:
        for hook in hooks:
            hook.remove()
    for unit in model.modules():
        if isinstance(unit, ConvBNAct) and isinstance(unit.conv, TFSameConv2d):
            unit.conv = static_conv(unit.conv, *sizes[unit.conv])
    return model


def inference_model(model: nn.Module, resolution: int) -> MobileNet:
    """What every export path exports: ``model`` checked, BN folded, TF-SAME padding frozen at ``resolution``."""
    model = check_exportable(model)
    if resolution < model.min_input_size:
        raise ExportError(
            f"resolution {resolution} is below the model's minimum {model.min_input_size} (its total stride)"
        )
    return freeze_padding(fold_bn(model), resolution, model.in_chans)
