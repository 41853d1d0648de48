"""Building blocks shared by the MobileNet family.

A convolution with batch norm and activation (:class:`ConvBNAct`) and the depthwise separable
convolution of MobileNetV1 Section 3.1 (:class:`DepthwiseSeparable`). Later members of the
family (V2's inverted residual, V3's squeeze-and-excite) are meant to be added here beside
them and reuse the same convolution and activation factories.
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
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu6": nn.ReLU6, "relu": nn.ReLU}
PADDINGS: tuple[str, ...] = ("torch", "tf_same")


def make_activation(name: str) -> nn.Module:
    """Return the activation called ``name`` (``relu6``, the paper's, or ``relu``)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name](inplace=True)


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
