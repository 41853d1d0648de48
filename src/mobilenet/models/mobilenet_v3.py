"""MobileNetV3 (Howard et al. 2019, arXiv 1905.02244), exactly as the paper's Tables 1 and 2.

Two networks found by search (Section 4) and redesigned by hand (Section 5), written once as
data: :data:`TABLE1` (MobileNetV3-Large) and :data:`TABLE2` (MobileNetV3-Small), one row per
bottleneck (kernel, expansion size, output channels, squeeze-and-excite, nonlinearity, stride).
One builder turns either table into modules: a 3x3 stride-2 stem with 16 filters and hard-swish
(Section 5.1), the bottlenecks (MobileNetV2's inverted residual with squeeze-and-excite after the
depthwise activation, Section 3 and Figure 4, squeezing to a quarter of the expansion, Section
5.3), a 1x1 convolution to 960 / 576 channels, the global pool, then the efficient last stage of
Section 5.1 and Figure 5: a 1x1 convolution without batch norm to 1280 / 1024 channels on the
pooled features (``head_fc``, a linear layer here), hard-swish, dropout and the classifier.

The minimalistic variants (``minimal=True``) are TF-slim's ``V3_LARGE_MINIMALISTIC`` and
``V3_SMALL_MINIMALISTIC``: the same channels and strides without squeeze-and-excite, hard-swish
or 5x5 kernels (ReLU everywhere, 3x3 depthwise convolutions), for hardware without those ops.

Naming across libraries:

- width multiplier alpha (Section 6.2, Figure 7): our ``width_mult`` = torchvision
  ``width_mult`` = TF-slim / Hugging Face ``depth_multiplier`` = Keras ``alpha`` = timm
  ``channel_multiplier``.
- the tables' "exp size": TF-slim writes it as a factor of the block's input
  (``expand_input_by_factor(72 / 16)``), Keras as ``expansion`` times the input filters, timm as
  ``exp_ratio`` (the ``e4.5`` of ``ir_r1_k3_s2_e4.5_c24``); torchvision writes the size itself.
- ``minimal``: Keras ``minimalistic``, TF-slim's ``*_MINIMALISTIC`` definitions, timm's
  ``*_minimal_100`` models.

The resolution multiplier (Section 6.2, inputs 96 to 256) is simply the input size.

Errata of the tables (checked in the tests): Table 2 (arXiv v5) marks squeeze-and-excite on
Small's last 1x1 convolution (576 channels); TF-slim's ``V3_SMALL`` and its checkpoint have none,
and the paper's own 2.5M parameters exclude it (it would add 166,608, making 2.71M). Earlier arXiv
versions printed 1280 for Small's ``head_fc``; v5 prints 1024, as TF-slim's code and checkpoint.

Published figures: Table 3 of the paper (arXiv v5, "Floating point performance on the Pixel
family of phones") and TF-slim's checkpoint table (``tensorflow/models``
``research/slim/nets/mobilenet/README.md``, "Mobilenet V3 Imagenet Checkpoints" and
"Minimalistic checkpoints"). Our convention counts the mult-adds of conv and fc layers and every
parameter including batch norm, with 1000 classes. Where a print differs from our count beyond
its rounding, the variant's ``errata`` give the figure the network implies and why
(:data:`TABLE3_ERRATA`, :data:`TFSLIM_ERRATA`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
from mobilenet.models.layers import ConvBNAct, InvertedResidual, Padding, make_activation, make_divisible
from mobilenet.models.registry import ModelInfo, register_model

Size = Literal["large", "small"]
NONLINEARITIES = {"RE": "relu", "HS": "hard_swish"}  # the tables' NL column
SE_DIVISOR = 4  # Section 5.3: the squeeze is "1/4 of the number of channels in expansion layer"


@dataclass(frozen=True)
class BneckSpec:
    """One ``bneck`` row of Table 1 or 2: kernel, exp size, #out, SE, NL, s.

    The row's input channels are the previous row's output (the stem's 16 for the first row).
    A row whose expansion equals its input (the first row of both tables) has no 1x1 expansion.
    """

    kernel: int
    exp_chs: int
    out_chs: int
    se: bool
    nl: str
    stride: int


@dataclass(frozen=True)
class NetworkSpec:
    """One table: its bottlenecks and the two 1x1 layers after them."""

    blocks: tuple[BneckSpec, ...]
    head_chs: int
    """``conv2d, 1x1`` with batch norm and hard-swish, before the pool (960 / 576)."""
    head_fc_chs: int
    """``conv2d 1x1, NBN`` after the pool: no batch norm, hard-swish (1280 / 1024)."""


STEM_CHS = 16
"""Tables 1 and 2, first row: ``conv2d`` 3x3, 16 filters, HS, stride 2 (Section 5.1: 16 filters, not 32)."""
STEM_NL = "HS"
HEAD_NL = "HS"
"""Tables 1 and 2: both 1x1 layers after the bottlenecks (``conv2d, 1x1`` and ``conv2d 1x1, NBN``) use HS."""

TABLE1 = NetworkSpec(
    blocks=(
        BneckSpec(3, 16, 16, False, "RE", 1),
        BneckSpec(3, 64, 24, False, "RE", 2),
        BneckSpec(3, 72, 24, False, "RE", 1),
        BneckSpec(5, 72, 40, True, "RE", 2),
        BneckSpec(5, 120, 40, True, "RE", 1),
        BneckSpec(5, 120, 40, True, "RE", 1),
        BneckSpec(3, 240, 80, False, "HS", 2),
        BneckSpec(3, 200, 80, False, "HS", 1),
        BneckSpec(3, 184, 80, False, "HS", 1),
        BneckSpec(3, 184, 80, False, "HS", 1),
        BneckSpec(3, 480, 112, True, "HS", 1),
        BneckSpec(3, 672, 112, True, "HS", 1),
        BneckSpec(5, 672, 160, True, "HS", 2),
        BneckSpec(5, 960, 160, True, "HS", 1),
        BneckSpec(5, 960, 160, True, "HS", 1),
    ),
    head_chs=960,
    head_fc_chs=1280,
)
"""Table 1, MobileNetV3-Large: 15 bottlenecks, then 960 and 1280 channels."""

TABLE2 = NetworkSpec(
    blocks=(
        BneckSpec(3, 16, 16, True, "RE", 2),
        BneckSpec(3, 72, 24, False, "RE", 2),
        BneckSpec(3, 88, 24, False, "RE", 1),
        BneckSpec(5, 96, 40, True, "HS", 2),
        BneckSpec(5, 240, 40, True, "HS", 1),
        BneckSpec(5, 240, 40, True, "HS", 1),
        BneckSpec(5, 120, 48, True, "HS", 1),
        BneckSpec(5, 144, 48, True, "HS", 1),
        BneckSpec(5, 288, 96, True, "HS", 2),
        BneckSpec(5, 576, 96, True, "HS", 1),
        BneckSpec(5, 576, 96, True, "HS", 1),
    ),
    head_chs=576,
    head_fc_chs=1024,
)
"""Table 2, MobileNetV3-Small: 11 bottlenecks, then 576 and 1024 channels (see the module's errata)."""

TABLES: dict[str, NetworkSpec] = {"large": TABLE1, "small": TABLE2}


@dataclass(frozen=True)
class BlockChannels:
    """The channels of one built bottleneck: input, expansion, output and squeeze (0: no SE)."""

    in_chs: int
    exp_chs: int
    out_chs: int
    se_chs: int


def scale_channels(channels: int, width_mult: float) -> int:
    """Thin a layer by the width multiplier alpha: ``make_divisible(c * alpha, 8)``.

    Rounded to the nearest multiple of 8, never below 8 nor below 90% of ``c * alpha`` (TF-slim's
    ``depth_multiplier`` with ``divisible_by=8``).
    """
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be > 0 (got {width_mult}); the paper uses 0.35-1.25")
    return make_divisible(channels * width_mult)


def block_channels(size: str, width_mult: float, minimal: bool = False) -> list[BlockChannels]:
    """The channels of every bottleneck of ``size`` at ``width_mult``.

    Outputs are :func:`scale_channels` of the table's; the expansion keeps the table's ratio to
    the block's *scaled* input, ``make_divisible(in * exp / table_in)`` (TF-slim's
    ``expand_input_by_factor``, Keras's and timm's rule, which Google's 0.75 checkpoints and the
    published 0.75 figures follow; identical to the table at alpha = 1); the squeeze is
    ``make_divisible(expansion / 4)`` of the built expansion (Section 5.3).
    """
    in_chs, table_in = scale_channels(STEM_CHS, width_mult), STEM_CHS
    channels = []
    for spec in TABLES[size].blocks:
        exp_chs = make_divisible(in_chs * spec.exp_chs / table_in)
        out_chs = scale_channels(spec.out_chs, width_mult)
        se_chs = make_divisible(exp_chs / SE_DIVISOR) if spec.se and not minimal else 0
        channels.append(BlockChannels(in_chs, exp_chs, out_chs, se_chs))
        in_chs, table_in = out_chs, spec.out_chs
    return channels


def head_channels(size: str, width_mult: float) -> tuple[int, int]:
    """The 1x1 convolution before the pool (scaled) and ``head_fc`` after it (1280 / 1024 up to alpha = 1).

    TF-slim's and Keras's rule: the last layer is widened for alpha > 1 and never thinned.
    """
    spec = TABLES[size]
    fc_chs = scale_channels(spec.head_fc_chs, width_mult) if width_mult > 1 else spec.head_fc_chs
    return scale_channels(spec.head_chs, width_mult), fc_chs


class MobileNetV3(MobileNet):
    """MobileNetV3-Large (Table 1) or -Small (Table 2), classifier or feature extractor.

    Every block is an :class:`~mobilenet.models.layers.InvertedResidual`: a 1x1 expansion (none
    when it equals the input), a depthwise convolution of the row's kernel carrying the stride,
    squeeze-and-excite after the depthwise activation where the row says SE (Figure 4, Section
    5.3: ReLU then hard-sigmoid, squeezing to ``make_divisible(expansion / 4, 8)``), and a linear
    1x1 projection; the row's nonlinearity (RE: ReLU, HS: hard-swish, Section 5.2) follows the
    expansion and the depthwise convolution.

    Args:
        num_classes: classifier outputs (1000 for ImageNet; Google's checkpoints have 1001, a
            background class first; 0 keeps no classifier).
        size: ``"large"`` (Table 1) or ``"small"`` (Table 2), Section 5.4's two models.
        minimal: TF-slim's minimalistic variant: no squeeze-and-excite, ReLU everywhere (stem,
            blocks, head and ``head_fc``), 3x3 depthwise kernels only; same channels and strides.
        width_mult: the width multiplier alpha (Section 6.2, Figure 7; published 0.75 and 1.0,
            plotted 0.35-1.25), any value > 0: stem, expansions, outputs and the 1x1 convolution
            before the pool get ``make_divisible(c * alpha, 8)`` (expansions from the scaled
            input, :func:`block_channels`); ``head_fc`` stays 1280 / 1024 for alpha <= 1.
        in_chans: input channels (3 for RGB, 1 for grayscale).
        dropout: dropout before the classifier; 0.2, Section 6.1.1's "dropout of 0.8" being
            TF-slim's keep probability.
        padding: ``"torch"`` (symmetric) or ``"tf_same"`` (TensorFlow's SAME: extra pixel after,
            as Google's official weights expect).
        stem_stride: 2 as in the paper; 1 for 32x32 inputs such as CIFAR-10.
        output_stride: 32 (the paper's classifier); 16 or 8 replace the last strides by dilation,
            as the segmentation backbone of Section 6.4 ("atrous convolution to the last block").
        features_only: return the feature maps of the five levels instead of logits.
        out_indices: which levels ``features_only`` returns (0-4; strides 2, 4, 8, 16, 32). The
            last level is the 1x1 convolution before the pool (960 / 576 channels), Section 6.3's
            C5, "the layer immediately before pooling"; Large gives 16, 24, 40, 112, 960
            channels and Small 16, 16, 24, 48, 576, as timm's.
    """

    arch = "mobilenet_v3"
    shaping_args = ("size", "minimal", "width_mult", "in_chans")

    def __init__(
        self,
        num_classes: int = 1000,
        size: Size = "large",
        minimal: bool = False,
        width_mult: float = 1.0,
        in_chans: int = 3,
        dropout: float = 0.2,
        padding: Padding = "torch",
        stem_stride: int = 2,
        output_stride: int = 32,
        features_only: bool = False,
        out_indices: Sequence[int] = tuple(range(NUM_LEVELS)),
    ) -> None:
        super().__init__(
            {
                "num_classes": num_classes,
                "size": size,
                "minimal": minimal,
                "width_mult": width_mult,
                "in_chans": in_chans,
                "dropout": dropout,
                "padding": padding,
                "stem_stride": stem_stride,
                "output_stride": output_stride,
                "features_only": features_only,
                "out_indices": tuple(out_indices),
            }
        )
        check_common(num_classes, in_chans, dropout)
        check_geometry(padding, stem_stride, output_stride, out_indices)
        if size not in TABLES:
            raise ConfigError(f"size must be 'large' (Table 1) or 'small' (Table 2), got {size!r}")
        self.size, self.minimal, self.width_mult = size, bool(minimal), width_mult
        channels = block_channels(size, width_mult, self.minimal)
        head_chs, head_fc_chs = head_channels(size, width_mult)

        self.stem = ConvBNAct(in_chans, channels[0].in_chs, 3, stem_stride, act=self._act(STEM_NL), padding=padding)
        geometry = Strides(stem_stride, output_stride)
        blocks = []
        for spec, chs in zip(TABLES[size].blocks, channels, strict=True):
            stride, dilation = geometry.add(spec.stride)
            kernel = 3 if self.minimal else spec.kernel
            act = self._act(spec.nl)
            blocks.append(
                InvertedResidual(
                    chs.in_chs, chs.exp_chs, chs.out_chs, kernel, stride, dilation, act, chs.se_chs, padding
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(channels[-1].out_chs, head_chs, 1, act=self._act(HEAD_NL), padding=padding)
        geometry.add(1)  # the head: the last level's final module
        self.min_input_size = geometry.min_input_size
        names = ["stem", *(f"blocks.{i}" for i in range(len(blocks))), "head"]
        outputs = [channels[0].in_chs, *(chs.out_chs for chs in channels), head_chs]
        self.feature_info = geometry.feature_info(names, outputs)
        if not features_only:
            self.head_fc = nn.Linear(head_chs, head_fc_chs)  # "conv2d 1x1, NBN": a bias, no batch norm
            self.head_act = make_activation(self._act(HEAD_NL))
        self.build_head(head_fc_chs, dropout)
        init_weights(self)

    def _act(self, nl: str) -> str:
        """The activation of a table's NL entry; ReLU everywhere in the minimalistic variant."""
        return "relu" if self.minimal else NONLINEARITIES[nl]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Section 5.1's efficient last stage: pool, ``head_fc`` with hard-swish, dropout, classifier."""
        x = self.head_act(self.head_fc(self.global_pool(x).flatten(1)))
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def feature_modules(self) -> tuple[nn.Module, ...]:
        """The stem, the bottlenecks and the 1x1 convolution before the pool, in forward order."""
        return (self.stem, *self.blocks, self.head)

    @classmethod
    def kwargs_from_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
        """Size, variant, width, channels and classes that a state dict in our names fixes (None: not a V3).

        A V3 has 15 (Large) or 11 (Small) blocks with a depthwise and a projection each, and a
        1x1 ``head`` convolution; squeeze-and-excite (absent: minimal) and kernels must be those
        of the table. The width is the alpha whose channel rule gives exactly the tensors'
        channels, tried from each layer's ratio to the table.
        """
        blocks = block_indices(state)
        size = next((name for name, spec in TABLES.items() if blocks == set(range(len(spec.blocks)))), None)
        if size is None or "stem.conv.weight" not in state or "head.conv.weight" not in state:
            return None
        minimal = not any(".se." in key for key in state)
        found = _state_layers(state, len(blocks))
        if found is None:
            return None
        candidates = [chs / base for chs, base in zip(found[0], _model_layers(size, 1.0, minimal)[0], strict=False)]
        width = next((w for w in candidates if w > 0 and _same_layers(found, size, w, minimal)), None)
        if width is None:
            return None
        return {
            "size": size,
            "minimal": minimal,
            "width_mult": width,
            "in_chans": state["stem.conv.weight"].shape[1],
            "num_classes": state["classifier.weight"].shape[0] if "classifier.weight" in state else 0,
        }


Layers = tuple[list[int], list[tuple[int, int, int]]]
"""Output channels of (stem, blocks, head, head_fc), and (expansion, squeeze, kernel) of every block."""


def _model_layers(size: str, width_mult: float, minimal: bool) -> Layers:
    channels = block_channels(size, width_mult, minimal)
    outputs = [channels[0].in_chs, *(c.out_chs for c in channels), *head_channels(size, width_mult)]
    kernels = [3 if minimal else spec.kernel for spec in TABLES[size].blocks]
    return outputs, [(c.exp_chs, c.se_chs, k) for c, k in zip(channels, kernels, strict=True)]


def _state_layers(state: dict[str, torch.Tensor], num_blocks: int) -> Layers | None:
    """The same description read from a state dict in our names (``head_fc`` if it has one), or None."""
    outputs, inner = [state["stem.conv.weight"].shape[0]], []
    for i in range(num_blocks):
        dw, project = state.get(f"blocks.{i}.dw.conv.weight"), state.get(f"blocks.{i}.project.conv.weight")
        if dw is None or project is None or dw.shape[1] != 1:
            return None
        se = state.get(f"blocks.{i}.se.reduce.weight")
        outputs.append(project.shape[0])
        inner.append((dw.shape[0], 0 if se is None else se.shape[0], dw.shape[-1]))
    outputs.append(state["head.conv.weight"].shape[0])
    if "head_fc.weight" in state:
        outputs.append(state["head_fc.weight"].shape[0])
    return outputs, inner


def _same_layers(found: Layers, size: str, width_mult: float, minimal: bool) -> bool:
    outputs, inner = _model_layers(size, width_mult, minimal)
    return outputs[: len(found[0])] == found[0] and inner == found[1]


# ------------------------------------------------------------------------- published figures

TABLE3_SOURCE = "Howard et al. 2019 (arXiv 1905.02244v5), Table 3"
TABLE3: dict[tuple[str, float], paper.Figures] = {
    (size, width): paper.Figures(macs, params, top1, source=TABLE3_SOURCE)
    for size, width, macs, params, top1 in (
        ("large", 1.0, 219, 5.4, 75.2),
        ("large", 0.75, 155, 4.0, 73.3),
        ("small", 1.0, 56, 2.5, 67.4),
        ("small", 0.75, 44, 2.0, 65.4),
    )
}
"""The paper's Table 3 (float models, ImageNet top-1, 224x224) as printed in its final version.

Versions before v5 printed 66M and 2.9M for Small 1.0 and 2.4M for Small 0.75 (TF-slim and Keras
still do): the figures of a Small with a 1280-wide ``head_fc`` (see :data:`TFSLIM_ERRATA`).
"""

TFSLIM_SOURCE = "TF-slim research/slim/nets/mobilenet/README.md, Mobilenet V3 Imagenet Checkpoints"
TFSLIM: dict[tuple[str, bool, float], paper.Figures] = {
    (size, minimal, width): paper.Figures(macs, params, top1, source=TFSLIM_SOURCE)
    for size, minimal, width, macs, params, top1 in (
        ("large", False, 1.0, 217, 5.4, 75.2),
        ("large", False, 0.75, 155, 4.0, 73.3),
        ("small", False, 1.0, 66, 2.9, 67.5),
        ("small", False, 0.75, 44, 2.4, 65.4),
        ("large", True, 1.0, 209, 3.9, 72.3),
        ("small", True, 1.0, 65, 2.0, 61.9),
    )
}
"""TF-slim's float checkpoints as printed: (size, minimal, alpha) -> MACs (M), parameters (M), top-1.

Its 8-bit rows (Large 73.9, Small 64.9, Large minimalistic 71.3 top-1) are the same networks
quantized, with the same MACs and parameters.
"""


def _head_1280(head: int, params: str, macs: str) -> str:
    """Why a Small figure printed before arXiv v5 is larger: the 1280-wide head_fc of that Table 2."""
    return (
        f"a Small with the 1280-wide head_fc that Table 2 printed before v5 (v5, TF-slim's V3_SMALL and its "
        f"checkpoint have 1024) has 256 * ({head} + 1 + 1000) more parameters and 256 * ({head} + 1000) more "
        f"mult-adds: {params} and {macs}"
    )


TABLE3_ERRATA: dict[tuple[str, float, str], paper.Erratum] = {
    ("large", 1.0, "mult_adds_m"): paper.Erratum(
        217,
        "TF-slim prints 217M for this network and checkpoint, which computes 216.59M (torchvision and timm "
        "agree); 219M is 2.41M more, not 1001 classes (+0.0013M) nor a 1x1 expansion in the first block, "
        "whose exp size Table 1 prints as 16 (+3.21M: 219.80M would print 220)",
    ),
    ("large", 1.0, "params_m"): paper.Erratum(
        5.48,
        "the network has 5.483M (torchvision and timm count 5,483,032); 5.4M is that truncated: without batch "
        "norm 5.459M, without SE biases too 5.454M, with 1001 classes 5.484M, all round to 5.5",
    ),
    ("small", 1.0, "mult_adds_m"): paper.Erratum(
        56.5,
        "the network computes 56.51M (torchvision and timm agree), 0.01M beyond the print's rounding: 56M is "
        "that truncated (Large 0.75's 154.56M is printed rounded, 155M)",
    ),
    ("small", 0.75, "mult_adds_m"): paper.Erratum(
        43.4, "the network computes 43.40M; 44M is left from before v5: " + _head_1280(432, "2.409M", "43.77M")
    ),
}
"""(size, alpha, quantity) -> the figure Table 3's network implies, and why the print differs."""

TFSLIM_ERRATA: dict[tuple[str, bool, float, str], paper.Erratum] = {
    ("large", False, 1.0, "params_m"): TABLE3_ERRATA["large", 1.0, "params_m"],
    ("small", False, 1.0, "mult_adds_m"): paper.Erratum(
        56.5,
        "66M is the paper's figure before v5, which v5 corrects to 56M for this network (56.51M); the "
        "1280-wide head_fc those versions printed adds only 0.40M (56.91M), 1001 classes 0.001M",
    ),
    ("small", False, 1.0, "params_m"): paper.Erratum(
        2.54,
        "the network has 2.543M, as v5 prints (2.5M); 2.9M is the figure before v5: "
        + _head_1280(576, "2.947M", "56.91M"),
    ),
    ("small", False, 0.75, "mult_adds_m"): TABLE3_ERRATA["small", 0.75, "mult_adds_m"],
    ("small", False, 0.75, "params_m"): paper.Erratum(
        2.04,
        "the network has 2.042M, as v5 prints (2.0M); 2.4M is the figure before v5: "
        + _head_1280(432, "2.409M", "43.77M"),
    ),
    ("small", True, 1.0, "mult_adds_m"): paper.Erratum(
        52.3,
        "TF-slim's V3_SMALL_MINIMALISTIC computes 52.29M (timm's tf_mobilenetv3_small_minimal_100, which loads "
        "its checkpoint, has the same shapes); 65M is 12.7M more, close to Small's 66M (56M in the paper's v5) "
        "although dropping SE and 5x5 kernels saves 4.22M; a 1280-wide head_fc (52.69M) or 1001 classes "
        "(+0.001M) do not explain it",
    ),
}
"""(size, minimal, alpha, quantity) -> the figure TF-slim's network implies, and why the print differs."""


def variant_name(size: str, minimal: bool, width_mult: float) -> str:
    """Registry name of a published variant, e.g. ``mobilenet_v3_small_075`` or ``mobilenet_v3_large_minimal``."""
    name = f"mobilenet_v3_{size}" + ("_minimal" if minimal else "")
    return name if width_mult == 1.0 else f"{name}_{round(width_mult * 100):03d}"


def _published(size: str, minimal: bool, width: float) -> dict[str, paper.Figures]:
    figures = {} if minimal else {"Table 3 (V3)": TABLE3[size, width]}
    return {**figures, "TF-slim": TFSLIM[size, minimal, width]}


def _errata(size: str, minimal: bool, width: float) -> dict[tuple[str, str], paper.Erratum]:
    errata = {
        ("TF-slim", quantity): erratum
        for (s, m, w, quantity), erratum in TFSLIM_ERRATA.items()
        if (s, m, w) == (size, minimal, width)
    }
    if not minimal:
        errata |= {("Table 3 (V3)", q): e for (s, w, q), e in TABLE3_ERRATA.items() if (s, w) == (size, width)}
    return errata


def _register() -> None:
    """The architecture (any size, variant, width and resolution) and the six published TF-slim checkpoints."""
    register_model(
        ModelInfo(
            "mobilenet_v3",
            MobileNetV3,
            {},
            "MobileNetV3 (Tables 1 and 2); size, minimal, width_mult (alpha) and resolution",
        )
    )
    for size, minimal, width in TFSLIM:
        label = f"MobileNetV3-{size.capitalize()}" + (" minimalistic" if minimal else "")
        register_model(
            ModelInfo(
                variant_name(size, minimal, width),
                MobileNetV3,
                {"size": size, "minimal": minimal, "width_mult": width},
                f"{label} {width} (Table {1 if size == 'large' else 2}); width_mult and resolution as arguments",
                published=_published(size, minimal, width),
                errata=_errata(size, minimal, width),
            )
        )


_register()
