"""Converters: foreign weights (TFLite, Keras, timm, Hugging Face) as one of our architectures.

Each architecture with published foreign weights has one module here that registers a
:class:`Converter`: what its tensors are called in each library, and how Google's TFLite graph
of it looks. The loader (:mod:`mobilenet.weights.loader`) reads a file into data (tensors, a
graph) and asks every converter in turn; the first that recognises the data converts it, and
when none does the error lists why each refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from mobilenet.errors import WeightsError
from mobilenet.weights.hf import HFFolder
from mobilenet.weights.tflite import Graph, Op

T = TypeVar("T")
IGNORED_SUFFIXES = ("num_batches_tracked",)  # bookkeeping, not weights


TORCH_BN = ("weight", "bias", "running_mean", "running_var")
KERAS_BN = ("gamma", "beta", "moving_mean", "moving_variance")
KERAS_BN_EPS = 1e-3  # Keras's BatchNormalization default, which Google's Keras applications keep
GOOGLE_NORM = (0.5, 0.5, 0.5)  # inputs scaled to [-1, 1], as TF-slim's, Keras's and timm's ports of them expect


@dataclass
class Converted:
    """Weights under our module names in PyTorch layouts, with what their source says about them.

    ``arch`` is the registry name of the architecture; ``kwargs`` the constructor arguments the
    source fixes beyond what the tensors' shapes show (padding, activation); ``bn_eps`` the
    source's batch-norm epsilon (the loader folds any difference from ours into ``running_var``);
    ``meta`` holds model-card fields: classes, mean, std, input_size, source and format.
    """

    state: dict[str, torch.Tensor]
    arch: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    bn_eps: float | None = None  # None: the same epsilon as our model's


@dataclass(frozen=True)
class Layout:
    """How one library names an architecture's tensors (one per architecture and library).

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


def unit_key_map(layout: Layout, units: Iterable[tuple[str, str, int]], classifier: bool = True) -> dict[str, str]:
    """Our state-dict key -> the layout's, for conv-BN ``units`` (name, kind, block) and the classifier."""
    mapping = {}
    for unit, kind, block in units:
        conv, bn = layout.names(kind, block)
        mapping[f"{unit}.conv.weight"] = layout.key(conv, layout.dw_weight if kind == "dw" else layout.conv_weight)
        mapping.update(
            {f"{unit}.bn.{ours}": layout.key(bn, theirs) for ours, theirs in zip(TORCH_BN, layout.bn, strict=True)}
        )
    if classifier:
        mapping["classifier.weight"] = layout.classifier_key
        mapping["classifier.bias"] = layout.key(layout.classifier, "bias")
    return mapping


def keras_meta(source: str, size: re.Pattern[str]) -> dict[str, Any]:
    """The card fields of a Keras application file: [-1, 1] inputs, the input size its name gives (else 224)."""
    named = size.search(Path(source).name)
    return {
        "format": "keras",
        "source": source,
        "mean": GOOGLE_NORM,
        "std": GOOGLE_NORM,
        "input_size": int(named.group(1)) if named else 224,
    }


@dataclass(frozen=True)
class Converter:
    """How one architecture's published weights look in each ecosystem.

    Each function converts its input or raises :class:`WeightsError` saying why it is not this
    architecture. ``state_dict`` takes a state dict in another library's names (timm, Hugging
    Face; ``hf`` is the folder's config when the tensors came from one, else None).
    """

    arch: str
    tflite: Callable[[list[Graph], str], Converted] | None = None
    keras: Callable[[dict[str, np.ndarray], str], Converted] | None = None
    state_dict: Callable[[Mapping[str, torch.Tensor], str, HFFolder | None], Converted] | None = None


CONVERTERS: list[Converter] = []


def register_converter(converter: Converter) -> Converter:
    """Add ``converter`` to those the loader tries."""
    CONVERTERS.append(converter)
    return converter


def convert(kind: str, source: str, *args: Any) -> Converted:
    """The first registered converter's ``kind`` conversion of ``args`` that succeeds; all refusals otherwise."""
    reasons = []
    for converter in CONVERTERS:
        function = getattr(converter, kind)
        if function is None:
            continue
        try:
            return function(*args)
        except WeightsError as err:
            reasons.append(str(err))
    if not reasons:
        raise WeightsError(f"{source}: no architecture here converts {kind} weights")
    raise WeightsError(
        reasons[0] if len(reasons) == 1 else f"{source}: not any known architecture: {'; '.join(reasons)}"
    )


def rename(tensors: Mapping[str, T], mapping: Mapping[str, str], what: str, source: str) -> dict[str, T]:
    """``tensors`` under our names (``mapping``: ours -> theirs); a one-line error if any is missing or extra."""
    missing = [key for key in mapping.values() if key not in tensors]
    extra = sorted(set(tensors) - set(mapping.values()) - {k for k in tensors if k.endswith(IGNORED_SUFFIXES)})
    if missing or extra:
        problem = (
            f"{len(missing)} missing (first: {missing[0]})" if missing else f"{len(extra)} unexpected ({extra[0]})"
        )
        found = ", ".join(sorted(tensors)[:3])
        raise WeightsError(
            f"{source}: not a {what}: of its {len(mapping)} tensors {problem}; "
            f"found {len(tensors)} tensors ({found}, ...)"
        )
    return {ours: tensors[theirs] for ours, theirs in mapping.items()}


# ---------------------------------------------------------------- layouts every converter needs


def tflite_to_torch(weight: np.ndarray, depthwise: bool) -> torch.Tensor:
    """TFLite's OHWI (convolution) or 1HWC (depthwise) kernel as PyTorch's OIHW / C1HW."""
    return torch.from_numpy(np.ascontiguousarray(weight.transpose((3, 0, 1, 2) if depthwise else (0, 3, 1, 2))))


def keras_to_torch(kernel: np.ndarray, depthwise: bool) -> torch.Tensor:
    """Keras's HWIO (convolution) or HWC1 (depthwise) kernel as PyTorch's OIHW / C1HW."""
    kernel = kernel.transpose((2, 3, 0, 1) if depthwise else (3, 2, 0, 1))
    return torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))


def op_bias(op: Op) -> np.ndarray:
    """A TFLite convolution's (folded) bias, zeros when it has none."""
    channels = op.weight.shape[-1] if op.name == "DEPTHWISE_CONV_2D" else op.weight.shape[0]
    return op.bias if op.bias is not None else np.zeros(channels, dtype=np.float32)


def identity_bn(bias: np.ndarray) -> dict[str, torch.Tensor]:
    """A batch norm that only adds ``bias``: how BN-folded TFLite weights fit our conv + BN units.

    ``weight = 1``, ``running_mean = 0``, ``running_var = 1`` with the source's epsilon 0
    (``bn_eps=0``: the loader subtracts ours), so ``BN(x) = x + bias`` exactly in float32.
    """
    channels = len(bias)
    return {
        "weight": torch.ones(channels),
        "bias": torch.from_numpy(bias),
        "running_mean": torch.zeros(channels),
        "running_var": torch.ones(channels),
    }


def tflite_input_stats(graph: Graph) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of ``[0, 1]`` pixels equal to a TFLite input's quantization ``(q - zero) * scale``.

    A uint8 input with scale 1/128 and zero point 128 is ``(q - 128) / 128``: mean = std = 128/255.
    An int8 input takes ``q = pixel - 128``: its zero point is 128 lower on the same pixels (the TF2
    converter's int8 files: scale 1/128, zero point 0 is again mean = std = 128/255). A float model
    (or a float input the graph quantizes itself) expects ``[-1, 1]`` as well.
    """
    scale, zero = graph.input_quant or (1 / 127.5, 127.5)
    pixel_zero = zero + 128 if graph.input_signed else zero
    return (pixel_zero / 255,) * 3, (1 / (255 * scale),) * 3


# Each architecture's converter registers itself; it imports the names above, so it comes last.
from mobilenet.weights.converters import mobilenet_v1, mobilenet_v2, mobilenet_v3  # noqa: E402

__all__ = [
    "CONVERTERS",
    "GOOGLE_NORM",
    "KERAS_BN",
    "KERAS_BN_EPS",
    "TORCH_BN",
    "Converted",
    "Converter",
    "Layout",
    "convert",
    "identity_bn",
    "keras_meta",
    "keras_to_torch",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3",
    "op_bias",
    "register_converter",
    "rename",
    "tflite_input_stats",
    "tflite_to_torch",
    "unit_key_map",
]
