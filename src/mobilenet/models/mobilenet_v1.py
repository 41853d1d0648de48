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
from typing import Literal

import torch
from torch import nn

from mobilenet.errors import ConfigError, InputShapeError
from mobilenet.models.blocks import ConvBNAct, DepthwiseSeparable, Padding

BlockType = Literal["separable", "full_conv"]
MIN_CHANNELS = 8  # TF-slim's min_depth: no layer is thinned below 8 channels
OUTPUT_STRIDES = (8, 16, 32)


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
NUM_LEVELS = 5  # feature levels: one per stride-2 layer (stem + four blocks)


def scale_channels(channels: int, width_mult: float) -> int:
    """Thin a layer by the width multiplier alpha (Section 4.2) the way TF-slim does.

    ``max(int(channels * width_mult), 8)``: truncation, not rounding, and never below 8, so that
    the published figures and Google's weights line up (e.g. alpha = 0.75 gives 24, 48, 96,
    192, 384, 768 channels).
    """
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be > 0 (got {width_mult}); the paper uses 0.25-1.0")
    return max(int(channels * width_mult), MIN_CHANNELS)


class MobileNetV1(nn.Module):
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
        super().__init__()
        _validate(num_classes, in_chans, dropout, stem_stride, output_stride, block_type)
        if head_conv < 0:
            raise ConfigError(f"head_conv must be >= 0 (0: no head convolution), got {head_conv}")
        if body not in BODIES:
            raise ConfigError(f"body must be one of {', '.join(BODIES)}, got {body!r}")
        if any(i not in range(NUM_LEVELS) for i in out_indices):
            raise ConfigError(f"out_indices {tuple(out_indices)} must be within 0-4")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.width_mult = width_mult
        self.features_only = features_only
        self.out_indices = tuple(out_indices)

        stem_chs = scale_channels(STEM.out_chs, width_mult)
        self.stem = ConvBNAct(in_chans, stem_chs, 3, stem_stride, act=act, padding=padding)
        stride, dilation = stem_stride, 1
        self.min_input_size = stem_stride  # grows with every stride; see _check_input
        level_of = [0]  # feature level of each module in (stem, *blocks)
        layers: list[nn.Module] = []
        in_chs = stem_chs
        for spec in BODIES[body]:
            out_chs = scale_channels(spec.out_chs, width_mult)
            layer_stride, layer_dilation = spec.stride, dilation
            if spec.stride > 1 and stride * spec.stride > output_stride:
                layer_stride, dilation = 1, dilation * spec.stride  # TF-slim's atrous rule
            stride *= layer_stride
            self.min_input_size *= spec.stride
            level_of.append(level_of[-1] + (spec.stride > 1))
            if block_type == "separable":
                block = DepthwiseSeparable(in_chs, out_chs, layer_stride, layer_dilation, act, padding)
            else:
                block = ConvBNAct(in_chs, out_chs, 3, layer_stride, layer_dilation, 1, act, padding)
            layers.append(block)
            in_chs = out_chs
        self.blocks = nn.Sequential(*layers)
        self.feature_info = _feature_info(level_of, self, stem_stride, output_stride)
        self.head: nn.Module = ConvBNAct(in_chs, head_conv, 1, act=act, padding=padding) if head_conv else nn.Identity()
        self.num_features = head_conv or in_chs

        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier: nn.Module = _classifier(self.num_features, num_classes)
        if features_only:
            del self.head, self.global_pool, self.dropout, self.classifier
        _init_weights(self)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise InputShapeError(
                f"expected a (batch, {self.in_chans}, H, W) tensor, got {tuple(x.shape)}: "
                f"convert the images to {self.in_chans} channel(s) or build the model "
                f"with in_chans={x.shape[1] if x.ndim == 4 else '?'}"
            )
        if min(x.shape[-2:]) < self.min_input_size:
            raise InputShapeError(
                f"input {tuple(x.shape[-2:])} is smaller than the minimum "
                f"{self.min_input_size}x{self.min_input_size} (the network's total stride): "
                f"resize the images to at least {self.min_input_size} pixels"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The body: stem, depthwise separable blocks and head convolution (if any), up to the pool."""
        self._check_input(x)
        return self.head(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout and classifier (or the pooled features)."""
        x = self.dropout(self.global_pool(x).flatten(1))
        return x if pre_logits else self.classifier(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at the levels in ``out_indices`` (strides 2, 4, 8, 16, 32)."""
        self._check_input(x)
        wanted = {info["module_index"] for i, info in enumerate(self.feature_info) if i in self.out_indices}
        outputs = []
        for index, module in enumerate((self.stem, *self.blocks)):
            x = module(x)
            if index in wanted:
                outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_intermediates(x)
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a new one with ``num_classes`` outputs (0: none)."""
        if num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.classifier = _classifier(self.num_features, num_classes)

    def feature_channels(self) -> list[int]:
        """Channels of the maps that ``features_only`` returns, in order."""
        return [info["num_chs"] for i, info in enumerate(self.feature_info) if i in self.out_indices]

    def feature_reductions(self) -> list[int]:
        """Strides (input size / map size) of the maps that ``features_only`` returns."""
        return [info["reduction"] for i, info in enumerate(self.feature_info) if i in self.out_indices]


def _validate(
    num_classes: int, in_chans: int, dropout: float, stem_stride: int, output_stride: int, block_type: str
) -> None:
    if num_classes < 0:
        raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be >= 1, got {in_chans}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if stem_stride not in (1, 2):
        raise ConfigError(f"stem_stride must be 1 or 2, got {stem_stride}")
    if output_stride not in OUTPUT_STRIDES:
        raise ConfigError(
            f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}: "
            "32 is the paper's network, 16 and 8 dilate the last blocks"
        )
    if block_type not in ("separable", "full_conv"):
        raise ConfigError(f"block_type must be 'separable' or 'full_conv', got {block_type!r}")


def _classifier(num_features: int, num_classes: int) -> nn.Module:
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


def _feature_info(level_of: list[int], model: MobileNetV1, stem_stride: int, output_stride: int) -> list[dict]:
    """One entry per level: the last module of that level, its channels and its stride."""
    modules = (model.stem, *model.blocks)
    info = []
    for level in range(NUM_LEVELS):
        index = max(i for i, lv in enumerate(level_of) if lv == level)
        out = modules[index].pw if isinstance(modules[index], DepthwiseSeparable) else modules[index]
        reduction = min(stem_stride * 2**level, output_stride)
        name = "stem" if index == 0 else f"blocks.{index - 1}"
        info.append({"module": name, "module_index": index, "num_chs": out.conv.out_channels, "reduction": reduction})
    return info


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions, unit BN, small normal classifier (as torchvision's MobileNets)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
