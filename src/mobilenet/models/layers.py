"""Building blocks shared by the MobileNet family.

A convolution with batch norm and activation (:class:`ConvBNAct`), the depthwise separable
convolution of MobileNetV1 Section 3.1 (:class:`DepthwiseSeparable`), MobileNetV2's inverted
residual with a linear bottleneck (:class:`InvertedResidual`, Section 3.3 and Figure 3), which
MobileNetV3 extends with squeeze-and-excite (:class:`SqueezeExcite`, V3 Section 5.3) and
hard-swish (V3 Section 5.2), and the channel rounding both later papers use
(:func:`make_divisible`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mobilenet.errors import ConfigError

Padding = Literal["torch", "tf_same"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu6": nn.ReLU6,
    "relu": nn.ReLU,
    "hard_swish": nn.Hardswish,  # x * ReLU6(x + 3) / 6 (V3 Section 5.2)
    "identity": nn.Identity,  # V2's linear bottleneck: no activation after the projection
}
PADDINGS: tuple[str, ...] = ("torch", "tf_same")


def make_activation(name: str) -> nn.Module:
    """Return the activation called ``name``: ``relu6``, ``relu``, ``hard_swish`` or ``identity``."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]() if name == "identity" else ACTIVATIONS[name](inplace=True)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below 90% of ``value``.

    The rule of MobileNetV2 and V3 (TF-slim's ``_make_divisible``): channels scaled by a width
    multiplier are rounded to multiples of 8, and rounded up by one more step when rounding
    would lose more than 10%. ``min_value`` (default ``divisor``) is the smallest result.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding of one spatial dimension, as (before, after).

    The output has ``ceil(size / stride)`` positions; the padding needed to get there is split
    with the extra pixel, if any, *after* (bottom/right). A stride-2 3x3 convolution on an even
    size therefore pads 0 before and 1 after, where PyTorch's symmetric padding pads 1 and 1.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """A ``Conv2d`` that pads exactly as TensorFlow's ``SAME`` rule does, for any input size.

    Needed to reproduce Google's official weights (TF-slim, Keras, TFLite), which were trained
    with this padding. The padding is computed from the input's shape in ``forward``; when the
    shape is static (export at a fixed resolution) it becomes a constant pad.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        top, bottom = tf_same_padding(x.shape[-2], kh, self.stride[0], self.dilation[0])
        left, right = tf_same_padding(x.shape[-1], kw, self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def make_conv(
    in_chs: int,
    out_chs: int,
    kernel: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    padding: Padding = "torch",
) -> nn.Conv2d:
    """A bias-free convolution (batch norm follows) with the requested padding convention."""
    if padding == "tf_same":
        return TFSameConv2d(in_chs, out_chs, kernel, stride, 0, dilation, groups, bias=False)
    if padding != "torch":
        raise ConfigError(f"unknown padding {padding!r}: use one of {', '.join(PADDINGS)}")
    pad = dilation * (kernel - 1) // 2
    return nn.Conv2d(in_chs, out_chs, kernel, stride, pad, dilation, groups, bias=False)


class ConvBNAct(nn.Sequential):
    """Convolution, batch norm, activation: the unit every MobileNet layer is made of.

    Children are named ``conv``, ``bn`` and ``act`` so that weight converters and BN folding
    address them by name.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: str = "relu6",
        padding: Padding = "torch",
    ) -> None:
        super().__init__(
            OrderedDict(
                conv=make_conv(in_chs, out_chs, kernel, stride, dilation, groups, padding),
                bn=nn.BatchNorm2d(out_chs),
                act=make_activation(act),
            )
        )


class DepthwiseSeparable(nn.Module):
    """The depthwise separable convolution of the paper's Figure 3 (Section 3.1).

    A 3x3 depthwise convolution (one filter per input channel, carrying the stride) followed
    by a 1x1 pointwise convolution that mixes channels, each with batch norm and activation.
    It costs ``DK*DK*M*DF*DF + M*N*DF*DF`` mult-adds against ``DK*DK*M*N*DF*DF`` for a
    standard convolution (Equations 4 and 5).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        dilation: int = 1,
        act: str = "relu6",
        padding: Padding = "torch",
    ) -> None:
        super().__init__()
        self.dw = ConvBNAct(in_chs, in_chs, 3, stride, dilation, in_chs, act, padding)
        self.pw = ConvBNAct(in_chs, out_chs, 1, act=act, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite of MobileNetV3 (Section 5.3): channel weights from the pooled input.

    Global average pool, a 1x1 convolution down to ``squeeze_chs`` with ReLU, a 1x1 convolution
    back with hard-sigmoid (``ReLU6(x + 3) / 6``), and the input scaled by the result. Both
    convolutions have a bias and no batch norm.
    """

    def __init__(self, channels: int, squeeze_chs: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_chs, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze_chs, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck (Section 3.3, Table 1), the block of V3 too.

    A 1x1 expansion to ``exp_chs`` (left out when ``exp_chs == in_chs``, V2's t = 1 rows), a
    ``kernel`` x ``kernel`` depthwise convolution carrying the stride, optional squeeze-and-excite
    (V3), and a linear 1x1 projection to ``out_chs``: batch norm and no activation, the linear
    bottleneck of Section 3.2. The input is added back when the stride is 1 and the channels
    match. Children: ``expand``, ``dw``, ``se``, ``project`` (``ConvBNAct`` units, named for
    weight converters and BN folding).
    """

    def __init__(
        self,
        in_chs: int,
        exp_chs: int,
        out_chs: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: str = "relu6",
        se_chs: int = 0,
        padding: Padding = "torch",
    ) -> None:
        super().__init__()
        self.use_residual = stride == 1 and in_chs == out_chs
        self.expand: nn.Module = (
            ConvBNAct(in_chs, exp_chs, 1, act=act, padding=padding) if exp_chs != in_chs else nn.Identity()
        )
        self.dw = ConvBNAct(exp_chs, exp_chs, kernel, stride, dilation, exp_chs, act, padding)
        self.se: nn.Module = SqueezeExcite(exp_chs, se_chs) if se_chs else nn.Identity()
        self.project = ConvBNAct(exp_chs, out_chs, 1, act="identity", padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return x + out if self.use_residual else out
