"""What every member of the family offers: the classifier surface shared with timm.

A family model subclasses :class:`MobileNet` and builds, in its own ``__init__``, the modules
this class reads: ``classifier`` (after ``global_pool`` and ``dropout``), ``num_features`` (the
classifier's input width), ``min_input_size`` (its total stride) and ``feature_info`` (one entry
per feature level, for ``features_only``). It records its constructor arguments in ``config``
and names its architecture in the class attribute ``arch``, the registry name that rebuilds it,
so that a trained model can be described (``mobilenet.card``), saved and rebuilt by name alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mobilenet.errors import ConfigError, InputShapeError
from mobilenet.models.layers import PADDINGS

OUTPUT_STRIDES = (8, 16, 32)
NUM_LEVELS = 5
"""Feature levels at strides 2, 4, 8, 16, 32: the stem and the four stride-2 stages after it."""


class MobileNet(nn.Module):
    """Base class of the family: input checks, head, classifier reset, feature extraction.

    Subclasses define :meth:`forward_features` and :meth:`feature_modules` and may override
    :meth:`kwargs_from_state_dict` so that a bare state dict in our names is recognised.
    """

    arch: ClassVar[str] = ""
    """The registry name whose builder is this class (e.g. ``mobilenet_v1``)."""
    shaping_args: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments that a state dict's tensor shapes fix (weights must agree with them)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.num_classes = int(config.get("num_classes", 0))
        self.in_chans = int(config.get("in_chans", 3))
        self.features_only = bool(config.get("features_only", False))
        self.min_input_size = 1
        self.num_features = 0
        self.feature_info: list[dict[str, Any]] = []
        self.out_indices: tuple[int, ...] = tuple(config.get("out_indices", ()))

    # ------------------------------------------------------------------ what subclasses may change

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The body up to the global pool: ``stem``, ``blocks``, ``head`` (a member with another body overrides it)."""
        self.check_input(x)
        return self.head(self.blocks(self.stem(x)))

    def feature_modules(self) -> Iterable[nn.Module]:
        """The body's modules in forward order, the ones ``feature_info`` indexes: the stem and the blocks."""
        return (self.stem, *self.blocks)

    @classmethod
    def kwargs_from_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
        """The constructor arguments a state dict in our names fixes, or None if it is not this architecture."""
        return None

    # ------------------------------------------------------------------ shared surface

    def check_input(self, x: torch.Tensor) -> None:
        """A one-line :class:`InputShapeError` for a tensor of the wrong channels or below the total stride."""
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

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout and classifier (or the pooled features)."""
        x = self.dropout(self.global_pool(x).flatten(1))
        return x if pre_logits else self.classifier(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at the levels in ``out_indices``."""
        self.check_input(x)
        wanted = {info["module_index"] for i, info in enumerate(self.feature_info) if i in self.out_indices}
        outputs = []
        for index, module in enumerate(self.feature_modules()):
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
        self.num_classes = self.config["num_classes"] = num_classes
        self.classifier = make_classifier(self.num_features, num_classes)

    def set_dropout(self, p: float) -> None:
        """The dropout probability before the classifier."""
        check_dropout(p)
        self.dropout.p = self.config["dropout"] = p

    def feature_channels(self) -> list[int]:
        """Channels of the maps that ``features_only`` returns, in order."""
        return [info["num_chs"] for i, info in enumerate(self.feature_info) if i in self.out_indices]

    def feature_reductions(self) -> list[int]:
        """Strides (input size / map size) of the maps that ``features_only`` returns."""
        return [info["reduction"] for i, info in enumerate(self.feature_info) if i in self.out_indices]

    def build_head(self, num_features: int, dropout: float) -> None:
        """Pool, dropout and classifier after a body of ``num_features`` channels (none if ``features_only``)."""
        self.num_features = num_features
        if not self.features_only:
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(dropout)
            self.classifier: nn.Module = make_classifier(num_features, self.num_classes)


def block_indices(state: dict[str, torch.Tensor]) -> set[int]:
    """The indices ``i`` of the ``blocks.<i>.`` keys of a state dict (other keys, however named, are ignored)."""
    parts = (key.split(".") for key in state)
    return {int(p[1]) for p in parts if len(p) > 2 and p[0] == "blocks" and p[1].isdecimal() and p[1].isascii()}


def make_classifier(num_features: int, num_classes: int) -> nn.Module:
    """A linear classifier, or nothing for ``num_classes == 0``."""
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


def check_dropout(p: float) -> None:
    if not 0 <= p < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {p}")


def check_common(num_classes: int, in_chans: int, dropout: float) -> None:
    """The arguments every family member takes, checked with one-line errors."""
    if num_classes < 0:
        raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be >= 1, got {in_chans}")
    check_dropout(dropout)


def check_geometry(padding: str, stem_stride: int, output_stride: int, out_indices: Sequence[int]) -> None:
    """Padding, strides and feature levels every family member takes, checked with one-line errors."""
    if padding not in PADDINGS:
        raise ConfigError(f"unknown padding {padding!r}: use one of {', '.join(PADDINGS)}")
    if stem_stride not in (1, 2):
        raise ConfigError(f"stem_stride must be 1 or 2, got {stem_stride}")
    if output_stride not in OUTPUT_STRIDES:
        raise ConfigError(
            f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}: "
            "32 is the paper's network, 16 and 8 dilate the last blocks"
        )
    if any(i not in range(NUM_LEVELS) for i in out_indices):
        raise ConfigError(f"out_indices {tuple(out_indices)} must be within 0-{NUM_LEVELS - 1}")


class Strides:
    """Where each layer of a body sits: its stride or dilation, its feature level, the network's total stride.

    Layers are added in forward order with the stride their table gives (:meth:`add`). Once the
    running stride would pass ``output_stride``, a stride-s layer gets stride 1 and every later
    layer dilation multiplied by s: TF-slim's atrous rule for dense prediction. ``min_input_size``
    counts every table stride, dilated or not, so inputs below it are refused.
    """

    def __init__(self, stem_stride: int, output_stride: int) -> None:
        self.stem_stride, self.output_stride = stem_stride, output_stride
        self.stride, self.dilation, self.min_input_size = stem_stride, 1, stem_stride
        self.level_of = [0]  # feature level of each module so far, the stem's first

    def add(self, stride: int) -> tuple[int, int]:
        """The (stride, dilation) of the next layer, whose table stride is ``stride``."""
        layer_stride, layer_dilation = stride, self.dilation
        if stride > 1 and self.stride * stride > self.output_stride:
            layer_stride, self.dilation = 1, self.dilation * stride
        self.stride *= layer_stride
        self.min_input_size *= stride
        self.level_of.append(self.level_of[-1] + (stride > 1))
        return layer_stride, layer_dilation

    def feature_info(self, names: Sequence[str], channels: Sequence[int]) -> list[dict[str, Any]]:
        """One entry per level: the last module at that level (``names[i]``, output ``channels[i]``), its stride."""
        info = []
        for level in range(NUM_LEVELS):
            index = max(i for i, lv in enumerate(self.level_of) if lv == level)
            reduction = min(self.stem_stride * 2**level, self.output_stride)
            info.append(
                {"module": names[index], "module_index": index, "num_chs": channels[index], "reduction": reduction}
            )
        return info


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions, unit BN, small normal classifier (as torchvision's MobileNets)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
