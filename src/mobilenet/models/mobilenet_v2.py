"""MobileNetV2 (Sandler et al. 2018, arXiv 1801.04381), exactly as the paper's Table 2.

The body is written once, as data (:data:`TABLE2`), and one builder turns it into modules:
a 3x3 stride-2 stem, 17 inverted residual bottlenecks with linear projections (Sections 3.2
and 3.3, Table 1, Figure 4d), a 1x1 convolution to 1280 channels, a global average pool and a
classifier. (Section 4 speaks of "19 residual bottleneck layers"; Table 2 lists 17, and so do
TF-slim, Keras, torchvision and timm.)

Naming across libraries:

- width multiplier alpha (Section 4, "Trade-off hyper parameters"): our ``width_mult`` =
  torchvision ``width_mult`` = TF-slim / Hugging Face ``depth_multiplier`` = Keras ``alpha`` =
  timm ``channel_multiplier``. Beware other uses of ``depth_multiplier``: timm's scales the
  repeats n of every row, and Keras's MobileNetV2 has none (one depthwise filter per channel).
- expansion factor t (Table 1): our ``BottleneckSpec.expansion`` = torchvision ``expand_ratio``
  (``t`` in its settings) = Hugging Face ``expand_ratio`` = TF-slim
  ``expansion_size=expand_input_by_factor(t)`` = Keras ``expansion`` = timm ``exp_ratio`` (the
  ``e6`` of ``ir_r2_k3_s2_e6_c24``).
- the rule that keeps the last 1x1 convolution at 1280 channels for alpha < 1 (Section 4) is
  TF-slim's ``finegrain_classification_mode=True`` and Hugging Face's ``finegrained_output``;
  torchvision and timm apply it always, as we do.
- ``output_stride`` (Section 6.3's atrous DeepLabv3 backbone) is TF-slim's, Hugging Face's and
  timm's; ``padding="tf_same"`` is Hugging Face's ``tf_padding``.

The resolution multiplier (Section 4: inputs 96 to 224) is simply the input size.

Published figures: the paper's Table 4 and TF-slim's checkpoint table
(``tensorflow/models`` ``research/slim/nets/mobilenet/README.md``, "Mobilenet V2 Imagenet
Checkpoints"). Our convention counts the mult-adds of conv and fc layers and every parameter
including batch norm, with 1000 classes. TF-slim truncates its mult-adds to whole millions and
counts no batch-norm parameters (:data:`TFSLIM`); Table 4's 1.4 row matches no convention.
Where a print differs from our count beyond its rounding, the variant's ``errata`` give the
figure the network implies and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mobilenet import paper
from mobilenet.errors import ConfigError
from mobilenet.models.base import (
    NUM_LEVELS,
    MobileNet,
    Strides,
    block_indices,
    check_common,
    check_geometry,
    init_weights,
)
from mobilenet.models.layers import ConvBNAct, InvertedResidual, Padding, make_divisible
from mobilenet.models.registry import ModelInfo, register_model


@dataclass(frozen=True)
class BottleneckSpec:
    """One row of Table 2: expansion factor t, output channels c, repeats n, stride s.

    The stride applies to the first of the ``repeats`` blocks only; the others have stride 1
    (Section 4: "The first layer of each sequence has a stride s and all others use stride 1").
    """

    expansion: int
    out_chs: int
    repeats: int
    stride: int


STEM_CHS = 32
"""Table 2, first row: ``conv2d`` 3x3, 32 channels, stride 2 (Section 4: "32 filters")."""

TABLE2: tuple[BottleneckSpec, ...] = (
    BottleneckSpec(1, 16, 1, 1),
    BottleneckSpec(6, 24, 2, 2),
    BottleneckSpec(6, 32, 3, 2),
    BottleneckSpec(6, 64, 4, 2),
    BottleneckSpec(6, 96, 3, 1),
    BottleneckSpec(6, 160, 3, 2),
    BottleneckSpec(6, 320, 1, 1),
)
"""The seven ``bottleneck`` rows of Table 2 (17 blocks between the stem and the head)."""

HEAD_CHS = 1280
"""Table 2: ``conv2d 1x1`` to 1280 channels before the 7x7 average pool and the classifier."""


def scale_channels(channels: int, width_mult: float) -> int:
    """Thin a layer by the width multiplier alpha (Section 4): ``make_divisible(c * alpha, 8)``.

    Rounded to the nearest multiple of 8, never below 8 nor below 90% of ``c * alpha`` (TF-slim's
    ``depth_multiplier`` with ``divisible_by=8``, torchvision's ``_make_divisible``).
    """
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be > 0 (got {width_mult}); the paper uses 0.35-1.4")
    return make_divisible(channels * width_mult)


def head_channels(width_mult: float) -> int:
    """The last 1x1 convolution: 1280, thinned never, widened for alpha > 1 (Section 4).

    "For multipliers less than one, we apply width multiplier to all layers except the very
    last convolutional layer", so alpha = 1.4 has 1792 channels and alpha = 0.35 keeps 1280.
    """
    return scale_channels(HEAD_CHS, width_mult) if width_mult > 1 else HEAD_CHS


def block_channels(width_mult: float) -> list[tuple[int, int, int]]:
    """(input, expanded, output) channels of the 17 blocks at ``width_mult``.

    The expansion is t times the (already rounded) input: a multiple of 8 whenever the input is,
    as TF-slim's ``expand_input_by_factor`` makes it. t = 1 (the first row) means no expansion.
    """
    channels, in_chs = [], scale_channels(STEM_CHS, width_mult)
    for spec in TABLE2:
        out_chs = scale_channels(spec.out_chs, width_mult)
        for _ in range(spec.repeats):
            channels.append((in_chs, in_chs * spec.expansion, out_chs))
            in_chs = out_chs
    return channels


class MobileNetV2(MobileNet):
    """MobileNetV2 classifier or feature extractor (Table 2).

    Every block is an :class:`~mobilenet.models.layers.InvertedResidual`: a 1x1 expansion by t
    with ReLU6 (absent when t = 1, the first block), a 3x3 depthwise convolution with ReLU6
    carrying the stride, and a linear 1x1 projection (batch norm, no activation: Section 3.2's
    linear bottleneck), with the input added back when the stride is 1 and the channels match
    (Section 3.3's inverted residual, Figure 4d).

    Args:
        num_classes: classifier outputs (1000 for ImageNet; TF-slim's checkpoints have 1001, a
            background class first; 0 keeps no classifier).
        width_mult: the paper's width multiplier alpha (Section 4; published 0.35-1.4), any value
            > 0. Every layer gets ``make_divisible(c * alpha, 8)`` channels except the last 1x1
            convolution, which stays 1280 for alpha <= 1 (:func:`head_channels`). TF-slim and
            Hugging Face call it ``depth_multiplier``, Keras ``alpha``, timm ``channel_multiplier``.
        in_chans: input channels (3 for RGB, 1 for grayscale).
        dropout: dropout before the classifier; 0.2 as torchvision (TF-slim's keep probability 0.8).
        act: ``"relu6"`` (the paper's, for its robustness in low-precision computation, Section
            4) or ``"relu"``; the projections stay linear either way.
        padding: ``"torch"`` (symmetric) or ``"tf_same"`` (TensorFlow's SAME: extra pixel after,
            as Google's official weights expect).
        stem_stride: 2 as in the paper; 1 for 32x32 inputs such as CIFAR-10.
        output_stride: 32 (the paper's classifier); 16 or 8 replace the last strides by
            dilation, the atrous backbone of Section 6.3 (TF-slim's and timm's ``output_stride``).
        features_only: return the feature maps of the five levels instead of logits.
        out_indices: which levels ``features_only`` returns (0-4; strides 2, 4, 8, 16, 32 with
            16, 24, 32, 96 and 320 channels at alpha = 1, as timm's).
    """

    arch = "mobilenet_v2"
    shaping_args = ("width_mult", "in_chans")

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_chans: int = 3,
        dropout: float = 0.2,
        act: str = "relu6",
        padding: Padding = "torch",
        stem_stride: int = 2,
        output_stride: int = 32,
        features_only: bool = False,
        out_indices: Sequence[int] = tuple(range(NUM_LEVELS)),
    ) -> None:
        super().__init__(
            {
                "num_classes": num_classes,
                "width_mult": width_mult,
                "in_chans": in_chans,
                "dropout": dropout,
                "act": act,
                "padding": padding,
                "stem_stride": stem_stride,
                "output_stride": output_stride,
                "features_only": features_only,
                "out_indices": tuple(out_indices),
            }
        )
        check_common(num_classes, in_chans, dropout)
        check_geometry(padding, stem_stride, output_stride, out_indices)
        self.width_mult = width_mult
        channels = block_channels(width_mult)

        self.stem = ConvBNAct(in_chans, channels[0][0], 3, stem_stride, act=act, padding=padding)
        strides = [spec.stride if i == 0 else 1 for spec in TABLE2 for i in range(spec.repeats)]
        geometry = Strides(stem_stride, output_stride)
        blocks = []
        for (in_chs, exp_chs, out_chs), block_stride in zip(channels, strides, strict=True):
            stride, dilation = geometry.add(block_stride)
            blocks.append(InvertedResidual(in_chs, exp_chs, out_chs, 3, stride, dilation, act, padding=padding))
        self.blocks = nn.Sequential(*blocks)
        self.min_input_size = geometry.min_input_size
        names = ["stem", *(f"blocks.{i}" for i in range(len(blocks)))]
        self.feature_info = geometry.feature_info(names, [channels[0][0], *(out for _, _, out in channels)])
        last_chs = head_channels(width_mult)
        if not features_only:
            self.head = ConvBNAct(channels[-1][2], last_chs, 1, act=act, padding=padding)
        self.build_head(last_chs, dropout)
        init_weights(self)

    @classmethod
    def kwargs_from_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
        """Width, channels and classes that a state dict in our names fixes (None: not a V2).

        A V2 has 17 blocks with a depthwise and a projection each, no squeeze-and-excite, an
        expansion in every block but the first, and no ``head_fc`` (V3's). The width is the
        alpha whose channel rule (:func:`block_channels`, :func:`head_channels`) gives exactly
        the tensors' channels, tried from each layer's ratio to Table 2, widest layer first.
        """
        found = _state_channels(state)
        if found is None:
            return None
        table = _model_channels(1.0)[: len(found)]
        candidates = [chs / base for chs, base in zip(found[::-1], table[::-1], strict=True)]
        width = next((w for w in candidates if _model_channels(w)[: len(found)] == found), None)
        if width is None:
            return None
        return {
            "width_mult": width,
            "in_chans": state["stem.conv.weight"].shape[1],
            "num_classes": state["classifier.weight"].shape[0] if "classifier.weight" in state else 0,
        }


def _model_channels(width_mult: float) -> list[int]:
    """Output channels of (stem, 17 blocks, head) at ``width_mult``."""
    blocks = block_channels(width_mult)
    return [blocks[0][0], *(out for _, _, out in blocks), head_channels(width_mult)]


def _state_channels(state: dict[str, torch.Tensor]) -> list[int] | None:
    """Output channels of (stem, 17 blocks[, head]) in a V2 state dict in our names, else None."""
    blocks = block_indices(state)
    num_blocks = sum(spec.repeats for spec in TABLE2)
    if "stem.conv.weight" not in state or blocks != set(range(num_blocks)) or "head_fc.weight" in state:
        return None
    if any(".se." in key for key in state) or "blocks.0.expand.conv.weight" in state:
        return None
    projections = [state.get(f"blocks.{i}.project.conv.weight") for i in range(num_blocks)]
    expanded = all(f"blocks.{i}.expand.conv.weight" in state for i in range(1, num_blocks))
    if any(weight is None for weight in projections) or not expanded:
        return None
    found = [state["stem.conv.weight"].shape[0], *(weight.shape[0] for weight in projections)]
    return [*found, state["head.conv.weight"].shape[0]] if "head.conv.weight" in state else found


# ------------------------------------------------------------------------- published figures

TFSLIM_SOURCE = "TF-slim research/slim/nets/mobilenet/README.md, Mobilenet V2 Imagenet Checkpoints"
TFSLIM: dict[tuple[float, int], paper.Figures] = {
    (alpha, resolution): paper.Figures(macs, params, top1, top5, TFSLIM_SOURCE)
    for alpha, resolution, macs, params, top1, top5 in (
        (1.4, 224, 582, 6.06, 75.0, 92.5),
        (1.3, 224, 509, 5.34, 74.4, 92.1),
        (1.0, 224, 300, 3.47, 71.8, 91.0),
        (1.0, 192, 221, 3.47, 70.7, 90.1),
        (1.0, 160, 154, 3.47, 68.8, 89.0),
        (1.0, 128, 99, 3.47, 65.3, 86.9),
        (1.0, 96, 56, 3.47, 60.3, 83.2),
        (0.75, 224, 209, 2.61, 69.8, 89.6),
        (0.75, 192, 153, 2.61, 68.7, 88.9),
        (0.75, 160, 107, 2.61, 66.4, 87.3),
        (0.75, 128, 69, 2.61, 63.2, 85.3),
        (0.75, 96, 39, 2.61, 58.8, 81.6),
        (0.5, 224, 97, 1.95, 65.4, 86.4),
        (0.5, 192, 71, 1.95, 63.9, 85.4),
        (0.5, 160, 50, 1.95, 61.0, 83.2),
        (0.5, 128, 32, 1.95, 57.7, 80.8),
        (0.5, 96, 18, 1.95, 51.2, 75.8),
        (0.35, 224, 59, 1.66, 60.3, 82.9),
        (0.35, 192, 43, 1.66, 58.2, 81.2),
        (0.35, 160, 30, 1.66, 55.7, 79.1),
        (0.35, 128, 20, 1.66, 50.8, 75.0),
        (0.35, 96, 11, 1.66, 45.5, 70.4),
    )
}
"""TF-slim's checkpoint table as printed: (alpha, resolution) -> MACs (M), parameters (M), top-1, top-5.

Two conventions differ from ours. "MACs (M)" is truncated to whole millions, not rounded (every
print is the floor of our count; with 1001 classes the count grows by 1281, too little to
matter). "Parameters (M)" counts convolution and classifier weights without batch norm (the
network less its BN weights and biases rounds to every print, with 1000 or 1001 classes).
"""

TABLE4_SOURCE = "Table 4 (V2)"  # the V2 paper's Table 4, apart from the V1 paper's in ``mobilenet paper``
TABLE4: dict[float, paper.Figures] = {
    1.0: paper.Figures(300, 3.4, 72.0, source="Sandler et al. 2018, Table 4"),
    1.4: paper.Figures(585, 6.9, 74.7, source="Sandler et al. 2018, Table 4"),
}
"""The paper's Table 4 (ImageNet, 224x224) as printed: MobileNetV2 and MobileNetV2 (1.4)."""

# What the network computes where a print disagrees beyond its rounding (each checked in the tests).
_TRUNCATED = "TF-slim truncates to whole millions; the network computes {:g}M"
_NO_BN = "TF-slim counts no batch-norm parameters (conv and fc only); with them the network has {:.2f}M"
TFSLIM_MACS: dict[tuple[float, int], float] = {
    (1.0, 224): 300.8,
    (0.75, 192): 153.9,
    (0.5, 192): 71.7,
    (0.5, 128): 32.6,
    (0.5, 96): 18.9,
    (0.35, 192): 43.9,
    (0.35, 160): 30.9,
    (0.35, 96): 11.9,
}
"""Mult-adds (M) of the TF-slim rows whose truncated print is below our count by more than rounding."""
TFSLIM_PARAMS: dict[float, float] = {1.4: 6.11, 1.3: 5.39, 1.0: 3.50, 0.75: 2.64, 0.5: 1.97, 0.35: 1.68}
"""Parameters (M, batch norm included, 1000 classes) of each TF-slim width."""
TABLE4_ERRATA: dict[tuple[float, str], paper.Erratum] = {
    (1.0, "mult_adds_m"): paper.Erratum(300.8, "the network computes 300.8M; 300 is that truncated, as TF-slim prints"),
    (1.0, "params_m"): paper.Erratum(
        3.50, "3.47M without batch norm (TF-slim's count) truncated to 3.4; with batch norm 3.50M"
    ),
    (1.4, "mult_adds_m"): paper.Erratum(
        582.2,
        "the network computes 582.2M (TF-slim prints 582 for the same model); no counting convention gives 585",
    ),
    (1.4, "params_m"): paper.Erratum(
        6.11, "the network has 6.11M with batch norm, 6.06M without (TF-slim's print); no convention gives 6.9M"
    ),
}
"""(alpha, quantity) -> the figure Table 4's network implies, and why the print differs."""


def variant_name(width_mult: float, resolution: int) -> str:
    """Registry name of a published alpha x resolution variant, e.g. ``mobilenet_v2_035_96``."""
    return f"mobilenet_v2_{round(width_mult * 100):03d}_{resolution}"


def _errata(width: float, resolution: int) -> dict[tuple[str, str], paper.Erratum]:
    """The errata of one published variant: TF-slim's conventions, and Table 4's rows at 224."""
    errata = {("TF-slim", "params_m"): paper.Erratum(TFSLIM_PARAMS[width], _NO_BN.format(TFSLIM_PARAMS[width]))}
    if (width, resolution) in TFSLIM_MACS:
        macs = TFSLIM_MACS[width, resolution]
        errata["TF-slim", "mult_adds_m"] = paper.Erratum(macs, _TRUNCATED.format(macs))
    if resolution == 224:
        errata |= {(TABLE4_SOURCE, q): e for (w, q), e in TABLE4_ERRATA.items() if w == width}
    return errata


def _register() -> None:
    """The paper's network (any width and resolution) and the 22 published TF-slim variants."""
    register_model(
        ModelInfo("mobilenet_v2", MobileNetV2, {}, "MobileNetV2 (Table 2); width_mult (alpha) and resolution")
    )
    for (width, resolution), figures in TFSLIM.items():
        published = {"TF-slim": figures}
        if resolution == 224 and width in TABLE4:
            published = {TABLE4_SOURCE: TABLE4[width], **published}
        register_model(
            ModelInfo(
                variant_name(width, resolution),
                MobileNetV2,
                {"width_mult": width},
                f"MobileNetV2 {width}-{resolution} (alpha = {width}, rho = {resolution / 224:.3f})",
                input_size=resolution,
                published=published,
                errata=_errata(width, resolution),
            )
        )


_register()
