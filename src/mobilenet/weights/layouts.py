"""Where each ecosystem keeps each weight: key layouts mapped onto our module names, once.

Our MobileNetV1 is a sequence of conv-BN units (``stem``, ``blocks.N.dw``, ``blocks.N.pw`` and,
for timm's ``mobilenetv1_100h``, ``head``) followed by a ``classifier``. timm, Hugging Face and
Keras name the same tensors their own way; a :class:`Layout` says how, :func:`key_map` spells
out the whole correspondence and :func:`rename` applies it. Converters then only move tensors,
transposing them where a library stores another memory layout (Keras, TFLite).

Every reader produces a :class:`Converted`: the weights under our names plus what the source
says about them (padding, class names, normalisation), which the loader turns into a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v1 import TABLE1

T = TypeVar("T")
TORCH_BN = ("weight", "bias", "running_mean", "running_var")
KERAS_BN = ("gamma", "beta", "moving_mean", "moving_variance")
IGNORED_SUFFIXES = ("num_batches_tracked",)  # bookkeeping, not weights


@dataclass
class Converted:
    """Weights under our module names in PyTorch layouts, with what their source says about them.

    ``arch`` holds the constructor arguments the source fixes beyond what tensor shapes show
    (padding, activation); ``bn_eps`` is the source's batch-norm epsilon (the loader folds any
    difference from ours into ``running_var``); ``meta`` holds classes, mean, std, input size,
    crop fraction, source and format.
    """

    state: dict[str, torch.Tensor]
    arch: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    bn_eps: float | None = None  # None: the same epsilon as our model's


def units(num_blocks: int = len(TABLE1), head: bool = False) -> list[tuple[str, str, int]]:
    """Our conv-BN units in forward order, as (module name, kind, block index)."""
    found = [("stem", "stem", -1)]
    for i in range(num_blocks):
        found += [(f"blocks.{i}.dw", "dw", i), (f"blocks.{i}.pw", "pw", i)]
    return [*found, ("head", "head", -1)] if head else found


def _timm_blocks() -> list[str]:
    """timm's name of each of Table 1's blocks: ``blocks.S.B``, a new stage S at every stride 2."""
    names, stage, index = [], 0, 0
    for i, spec in enumerate(TABLE1):
        if i and spec.stride > 1:
            stage, index = stage + 1, 0
        names.append(f"blocks.{stage}.{index}")
        index += 1
    return names


def _timm_names(kind: str, block: int) -> tuple[str, str]:
    if kind in ("stem", "head"):
        return ("conv_stem", "bn1") if kind == "stem" else ("conv_head", "bn2")
    prefix = _timm_blocks()[block]
    return (f"{prefix}.conv_dw", f"{prefix}.bn1") if kind == "dw" else (f"{prefix}.conv_pw", f"{prefix}.bn2")


def _hf_names(kind: str, block: int) -> tuple[str, str]:
    prefix = "mobilenet_v1.conv_stem" if kind == "stem" else f"mobilenet_v1.layer.{2 * block + (kind == 'pw')}"
    return f"{prefix}.convolution", f"{prefix}.normalization"


def _keras_names(kind: str, block: int) -> tuple[str, str]:
    name = "conv1" if kind == "stem" else f"conv_{kind}_{block + 1}"
    return name, f"{name}_bn"


@dataclass(frozen=True)
class Layout:
    """How one library names MobileNetV1's tensors.

    ``names(kind, block)`` gives the (convolution, batch norm) prefixes of one of our units;
    ``bn`` the batch-norm parameter names in our order (weight, bias, running mean and variance).
    """

    title: str
    names: Callable[[str, int], tuple[str, str]]
    classifier: str
    sep: str = "."
    bn: tuple[str, ...] = TORCH_BN
    conv_weight: str = "weight"
    dw_weight: str = "weight"

    def key(self, prefix: str, name: str) -> str:
        return f"{prefix}{self.sep}{name}"

    @property
    def stem_key(self) -> str:
        """The stem convolution's key: present in every state dict of this layout."""
        return self.key(self.names("stem", -1)[0], self.conv_weight)

    @property
    def head_key(self) -> str:
        return self.key(self.names("head", -1)[0], self.conv_weight)

    @property
    def classifier_key(self) -> str:
        return self.key(self.classifier, self.conv_weight)


LAYOUTS: dict[str, Layout] = {
    "timm": Layout("timm", _timm_names, "classifier"),
    "hf": Layout("Hugging Face", _hf_names, "classifier"),
    "keras": Layout("Keras", _keras_names, "conv_preds", "/", KERAS_BN, "kernel", "depthwise_kernel"),
}


def key_map(layout: Layout, head: bool = False, classifier: bool = True) -> dict[str, str]:
    """Our state-dict key -> the layout's key, for every weight of a MobileNetV1 (Table 1 body)."""
    mapping = {}
    for unit, kind, block in units(head=head):
        conv, bn = layout.names(kind, block)
        mapping[f"{unit}.conv.weight"] = layout.key(conv, layout.dw_weight if kind == "dw" else layout.conv_weight)
        mapping.update(
            {f"{unit}.bn.{ours}": layout.key(bn, theirs) for ours, theirs in zip(TORCH_BN, layout.bn, strict=True)}
        )
    if classifier:
        mapping["classifier.weight"] = layout.classifier_key
        mapping["classifier.bias"] = layout.key(layout.classifier, "bias")
    return mapping


def rename(tensors: Mapping[str, T], layout: Layout, source: str) -> dict[str, T]:
    """The tensors of a MobileNetV1 in ``layout`` under our names; a one-line error if any is missing or extra."""
    mapping = key_map(layout, head=layout.head_key in tensors, classifier=layout.classifier_key in tensors)
    missing = [key for key in mapping.values() if key not in tensors]
    extra = sorted(set(tensors) - set(mapping.values()) - {k for k in tensors if k.endswith(IGNORED_SUFFIXES)})
    if missing or extra:
        problem = (
            f"{len(missing)} missing (first: {missing[0]})" if missing else f"{len(extra)} unexpected ({extra[0]})"
        )
        found = ", ".join(sorted(tensors)[:3])
        raise WeightsError(
            f"{source}: not a MobileNetV1 in {layout.title} naming: of its {len(mapping)} tensors {problem}; "
            f"found {len(tensors)} tensors ({found}, ...)"
        )
    return {ours: tensors[theirs] for ours, theirs in mapping.items()}
