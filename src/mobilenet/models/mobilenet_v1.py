"""MobileNetV1 (Howard et al. 2017, arXiv 1704.04861), exactly as the paper's Table 1.

The body is written once, as data (:data:`TABLE1`), and one builder turns it into modules.
The cost analysis and the documentation tables read the same data.

Naming across libraries (all mean the paper's width multiplier alpha, Section 4.2):
our ``width_mult`` = TF-slim / Hugging Face ``depth_multiplier`` = Keras ``alpha`` =
timm ``channel_multiplier``. (Keras's own ``depth_multiplier`` is something else: the
number of depthwise filters per input channel, always 1 here.) The resolution multiplier rho
(Section 4.3) is simply the input size: the model accepts any size from its total stride up.
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
from mobilenet.models.layers import ConvBNAct, DepthwiseSeparable, Padding
from mobilenet.models.registry import ModelInfo, register_model

BlockType = Literal["separable", "full_conv"]
MIN_CHANNELS = 8  # TF-slim's min_depth: no layer is thinned below 8 channels


@dataclass(frozen=True)
class LayerSpec:
    """One row pair of Table 1: a depthwise separable block's output channels and stride."""

    out_chs: int
    stride: int


STEM = LayerSpec(out_chs=32, stride=2)
"""Table 1, first row: ``Conv / s2``, 3x3x3x32, a standard convolution."""

TABLE1: tuple[LayerSpec, ...] = (
    LayerSpec(64, 1),
    LayerSpec(128, 2),
    LayerSpec(128, 1),
    LayerSpec(256, 2),
    LayerSpec(256, 1),
    LayerSpec(512, 2),
    LayerSpec(512, 1),
    LayerSpec(512, 1),
    LayerSpec(512, 1),
    LayerSpec(512, 1),
    LayerSpec(512, 1),
    LayerSpec(1024, 2),
    # The paper prints "Conv dw / s2" here, an erratum: its own next row's input is 7x7, and
    # every reference implementation (TF-slim, Keras, timm) uses stride 1.
    LayerSpec(1024, 1),
)
"""The 13 depthwise separable blocks of Table 1 (body between the stem and the pool)."""

SHALLOW_TABLE1: tuple[LayerSpec, ...] = tuple(spec for spec in TABLE1 if not (spec.out_chs == 512 and spec.stride == 1))
"""Table 5's shallow MobileNet: Table 1 without the five 512-channel blocks at 14x14."""

BODIES: dict[str, tuple[LayerSpec, ...]] = {"table1": TABLE1, "shallow": SHALLOW_TABLE1}


def scale_channels(channels: int, width_mult: float) -> int:
    """Thin a layer by the width multiplier alpha (Section 4.2) the way TF-slim does.

    ``max(int(channels * width_mult), 8)``: truncation, not rounding, and never below 8, so that
    the published figures and Google's weights line up (e.g. alpha = 0.75 gives 24, 48, 96,
    192, 384, 768 channels).
    """
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be > 0 (got {width_mult}); the paper uses 0.25-1.0")
    return max(int(channels * width_mult), MIN_CHANNELS)


class MobileNetV1(MobileNet):
    """MobileNetV1 classifier or feature extractor.

    Args:
        num_classes: classifier outputs (1000 for ImageNet; 0 keeps no classifier).
        width_mult: the paper's alpha (Section 4.2), any value > 0.
        in_chans: input channels (3 for RGB, 1 for grayscale).
        dropout: dropout before the classifier.
        act: ``"relu6"`` (the paper's, robust in low precision) or ``"relu"``.
        padding: ``"torch"`` (symmetric) or ``"tf_same"`` (TensorFlow's SAME: extra pixel after,
            as Google's official weights expect).
        stem_stride: 2 as in the paper; 1 for 32x32 inputs such as CIFAR-10.
        output_stride: 32 (the paper); 16 or 8 replace the last strides by dilation, as
            TF-slim does for dense prediction.
        body: ``"table1"`` (the paper's network) or ``"shallow"`` (Table 5's baseline).
        block_type: ``"separable"`` (the paper) or ``"full_conv"``, Table 4's baseline in which
            every block is a standard 3x3 convolution.
        features_only: return the feature maps of the five levels instead of logits.
        out_indices: which levels ``features_only`` returns (0-4; strides 2, 4, 8, 16, 32).
        head_conv: output channels of an extra 1x1 convolution (with BN and activation) between
            the last block and the pool; 0, the paper's network, has none. timm's
            ``mobilenetv1_100h`` uses 1024 (timm's ``conv_head``/``bn2``).
    """

    arch = "mobilenet_v1"
    shaping_args = ("width_mult", "in_chans", "head_conv", "body", "block_type")

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_chans: int = 3,
        dropout: float = 1e-3,
        act: str = "relu6",
        padding: Padding = "torch",
        stem_stride: int = 2,
        output_stride: int = 32,
        body: str = "table1",
        block_type: BlockType = "separable",
        features_only: bool = False,
        out_indices: Sequence[int] = tuple(range(NUM_LEVELS)),
        head_conv: int = 0,
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
                "body": body,
                "block_type": block_type,
                "features_only": features_only,
                "out_indices": tuple(out_indices),
                "head_conv": head_conv,
            }
        )
        check_common(num_classes, in_chans, dropout)
        check_geometry(padding, stem_stride, output_stride, out_indices)
        if block_type not in ("separable", "full_conv"):
            raise ConfigError(f"block_type must be 'separable' or 'full_conv', got {block_type!r}")
        if head_conv < 0:
            raise ConfigError(f"head_conv must be >= 0 (0: no head convolution), got {head_conv}")
        if body not in BODIES:
            raise ConfigError(f"body must be one of {', '.join(BODIES)}, got {body!r}")
        self.width_mult = width_mult

        stem_chs = scale_channels(STEM.out_chs, width_mult)
        self.stem = ConvBNAct(in_chans, stem_chs, 3, stem_stride, act=act, padding=padding)
        strides = Strides(stem_stride, output_stride)
        layers: list[nn.Module] = []
        channels = [stem_chs]
        for spec in BODIES[body]:
            in_chs, out_chs = channels[-1], scale_channels(spec.out_chs, width_mult)
            stride, dilation = strides.add(spec.stride)
            if block_type == "separable":
                layers.append(DepthwiseSeparable(in_chs, out_chs, stride, dilation, act, padding))
            else:
                layers.append(ConvBNAct(in_chs, out_chs, 3, stride, dilation, 1, act, padding))
            channels.append(out_chs)
        self.blocks = nn.Sequential(*layers)
        self.min_input_size = strides.min_input_size
        names = ["stem", *(f"blocks.{i}" for i in range(len(layers)))]
        self.feature_info = strides.feature_info(names, channels)
        in_chs = channels[-1]
        if not features_only:
            self.head: nn.Module = (
                ConvBNAct(in_chs, head_conv, 1, act=act, padding=padding) if head_conv else nn.Identity()
            )
        self.build_head(head_conv or in_chs, dropout)
        init_weights(self)

    @classmethod
    def kwargs_from_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
        """Width, channels, classes, head and body that a state dict in our names fixes (None: not a V1)."""
        blocks = sorted(block_indices(state))
        bodies = {len(specs): name for name, specs in BODIES.items()}
        if "stem.conv.weight" not in state or len(blocks) not in bodies:
            return None
        last_key = f"blocks.{blocks[-1]}.pw.conv.weight"
        separable = last_key in state
        last = state[last_key if separable else f"blocks.{blocks[-1]}.conv.weight"]
        return {
            "width_mult": last.shape[0] / TABLE1[-1].out_chs,  # the last layer has 1024 * alpha channels
            "in_chans": state["stem.conv.weight"].shape[1],
            "num_classes": state["classifier.weight"].shape[0] if "classifier.weight" in state else 0,
            "head_conv": state["head.conv.weight"].shape[0] if "head.conv.weight" in state else 0,
            "body": bodies[len(blocks)],
            "block_type": "separable" if separable else "full_conv",
        }


# ------------------------------------------------------------------------- registered names


def variant_name(width_mult: float, resolution: int) -> str:
    """Registry name of a published alpha x rho variant, e.g. ``mobilenet_v1_075_192``."""
    return f"mobilenet_v1_{round(width_mult * 100):03d}_{resolution}"


def _published(name: str, width: float, resolution: int) -> dict[str, paper.Figures]:
    figures = {title: table[name] for title, table in paper.PAPER_TABLES.items() if name in table}
    figures["TF-slim"] = paper.TFSLIM[(width, resolution)]
    return figures


def _register() -> None:
    """The paper's network, its two baselines (Tables 4 and 5) and the 16 published alpha x rho variants."""
    register_model(
        ModelInfo("mobilenet_v1", MobileNetV1, {}, "MobileNetV1 (Table 1); width_mult (alpha) and resolution (rho)")
    )
    register_model(
        ModelInfo(
            "mobilenet_v1_conv",
            MobileNetV1,
            {"block_type": "full_conv"},
            "Table 4 baseline: every depthwise separable block a standard 3x3 convolution",
            published={"Table 4": paper.TABLE4["mobilenet_v1_conv"]},
        )
    )
    register_model(
        ModelInfo(
            "mobilenet_v1_shallow",
            MobileNetV1,
            {"body": "shallow"},
            "Table 5 baseline: without the five 512-channel blocks at 14x14",
            published={"Table 5": paper.TABLE5["mobilenet_v1_shallow"]},
        )
    )
    for width in paper.WIDTHS:
        for resolution in paper.RESOLUTIONS:
            name = variant_name(width, resolution)
            register_model(
                ModelInfo(
                    name,
                    MobileNetV1,
                    {"width_mult": width},
                    f"{width} MobileNet-{resolution} (alpha = {width}, rho = {resolution / 224:.3f})",
                    input_size=resolution,
                    published=_published(name, width, resolution),
                )
            )


_register()
