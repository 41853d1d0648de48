"""MobileNetV2's published weights: TFLite (Google), torchvision, timm and Keras, as our ``MobileNetV2``.

Our MobileNetV2 is a ``stem``, 17 ``blocks`` (``expand``, absent in the first, ``dw`` and
``project`` conv-BN units) and a ``head``, then a ``classifier``. Each library names the same
tensors its own way; a :class:`~mobilenet.weights.converters.Layout` says how and
:func:`key_map` spells out the whole correspondence. Conventions of each source:

- **TFLite** (Google's ``mobilenet_v2_{alpha}_{size}_quant.tflite``, and int8 files of the same
  TF-slim network from the TF2 converter): batch norm folded into each convolution, TensorFlow
  SAME padding, inputs ``(q - zero) * scale``. The graph is read by the order its weighted
  operators run (:mod:`~mobilenet.weights.converters.graph`), not by positions in a file: the
  published widths (TF-slim's table) are tried, the input size and class count come from the
  graph, and the residual ``ADD`` operators must be as many as the matched network's.
- **torchvision** ``mobilenet_v2`` (``features.N``, ``classifier.1``): symmetric padding, BN
  epsilon 1e-5 like ours, ImageNet mean/std.
- **timm** ``mobilenetv2_{035,050,075,100,140}`` (``conv_stem``/``bn1``, ``blocks.S.B`` with stage
  S a row of Table 2, ``conv_head``/``bn2``, ``classifier``): symmetric padding, BN epsilon 1e-5,
  ImageNet mean/std. The first block is a depthwise-separable ``conv_dw``/``bn1``,
  ``conv_pw``/``bn2``; the others ``conv_pw``/``bn1`` (expand), ``conv_dw``/``bn2``,
  ``conv_pwl``/``bn3`` (project). ``_110d``/``_120d`` have more blocks and are refused.
- **Keras** ``applications.MobileNetV2``
  (``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}[_no_top].h5``): layers
  ``Conv1``/``bn_Conv1``, ``expanded_conv_{depthwise,project}[_BN]`` (block 0),
  ``block_N_{expand,depthwise,project}[_BN]``, ``Conv_1``/``Conv_1_bn``, ``predictions`` (Dense,
  kernel (in, out)); BN epsilon 1e-3; inputs in [-1, 1]. Keras pads stride-2 depthwise
  convolutions with ``ZeroPadding2D(correct_pad)`` and then ``valid``: (0, 1) on even sizes,
  (1, 1) on odd ones, exactly TensorFlow SAME on both; the stem is ``same`` itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache

import numpy as np
import torch

from mobilenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v2 import TABLE2, TFSLIM, MobileNetV2
from mobilenet.weights.converters import (
    KERAS_BN,
    KERAS_BN_EPS,
    Converted,
    Converter,
    Layout,
    keras_meta,
    keras_to_torch,
    register_converter,
    rename,
    tflite_input_stats,
    unit_key_map,
)
from mobilenet.weights.converters.graph import WEIGHTED, match_candidates
from mobilenet.weights.hf import HFFolder
from mobilenet.weights.tflite import POOL, Graph, Op, op_counts

ARCH = MobileNetV2.arch
NUM_BLOCKS = sum(spec.repeats for spec in TABLE2)
TFLITE_WIDTHS = tuple(sorted({width for width, _ in TFSLIM}, reverse=True))  # TF-slim's published alphas
POOLS = (POOL, "MEAN")  # TF-slim's graphs pool with AVERAGE_POOL_2D, the TF2 converter's often with MEAN
V3_OPS = ("HARD_SWISH", "MUL")  # hard-swish and squeeze-and-excite: a MobileNetV3
TOTAL_STRIDE = 2 * math.prod(spec.stride for spec in TABLE2)  # the stem's 2 and Table 2's: the smallest input
RESIDUALS = sum(spec.repeats - 1 for spec in TABLE2)  # blocks after the first of each row add their input back
KERAS_FILE = re.compile(r"tf_kernels_\d+(?:\.\d+)?_(\d+)")  # ..._tf_kernels_{alpha}_{size}[_no_top].h5


def units() -> list[tuple[str, str, int]]:
    """Our conv-BN units in forward order, as (module name, kind, block index)."""
    found = [("stem", "stem", -1)]
    for i in range(NUM_BLOCKS):
        kinds = ("dw", "project") if i == 0 else ("expand", "dw", "project")
        found += [(f"blocks.{i}.{kind}", kind, i) for kind in kinds]
    return [*found, ("head", "head", -1)]


# ------------------------------------------------------------------------------- layouts


@cache
def _timm_blocks() -> tuple[str, ...]:
    """timm's name of each block: ``blocks.S.B``, one stage S per row of Table 2."""
    return tuple(f"blocks.{row}.{index}" for row, spec in enumerate(TABLE2) for index in range(spec.repeats))


def _timm_names(kind: str, block: int) -> tuple[str, str]:
    if kind in ("stem", "head"):
        return ("conv_stem", "bn1") if kind == "stem" else ("conv_head", "bn2")
    prefix = _timm_blocks()[block]
    if block == 0:  # a depthwise-separable block: conv_dw/bn1, conv_pw/bn2
        return (f"{prefix}.conv_dw", f"{prefix}.bn1") if kind == "dw" else (f"{prefix}.conv_pw", f"{prefix}.bn2")
    conv, bn = {"expand": ("conv_pw", "bn1"), "dw": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")}[kind]
    return f"{prefix}.{conv}", f"{prefix}.{bn}"


def _torchvision_names(kind: str, block: int) -> tuple[str, str]:
    if kind in ("stem", "head"):
        index = 0 if kind == "stem" else NUM_BLOCKS + 1
        return f"features.{index}.0", f"features.{index}.1"
    prefix = f"features.{block + 1}.conv"
    if block == 0:  # no expansion: conv.0 = depthwise conv-BN-ReLU6, conv.1 projection, conv.2 its BN
        return (f"{prefix}.0.0", f"{prefix}.0.1") if kind == "dw" else (f"{prefix}.1", f"{prefix}.2")
    return {"expand": (f"{prefix}.0.0", f"{prefix}.0.1"), "dw": (f"{prefix}.1.0", f"{prefix}.1.1")}.get(
        kind, (f"{prefix}.2", f"{prefix}.3")
    )


def _keras_names(kind: str, block: int) -> tuple[str, str]:
    if kind in ("stem", "head"):
        return ("Conv1", "bn_Conv1") if kind == "stem" else ("Conv_1", "Conv_1_bn")
    layer = {"dw": "depthwise"}.get(kind, kind)  # expand, depthwise, project
    name = f"expanded_conv_{layer}" if block == 0 else f"block_{block}_{layer}"
    return name, f"{name}_BN"


LAYOUTS: dict[str, Layout] = {
    "torchvision": Layout("torchvision", _torchvision_names, "classifier.1"),
    "timm": Layout("timm", _timm_names, "classifier"),
    "keras": Layout("Keras", _keras_names, "predictions", "/", KERAS_BN, "kernel", "depthwise_kernel"),
}


def key_map(layout: Layout, classifier: bool = True) -> dict[str, str]:
    """Our state-dict key -> the layout's key, for every weight of a MobileNetV2 (Table 2)."""
    return unit_key_map(layout, units(), classifier)


def rename_layout(tensors: Mapping[str, object], layout: Layout, source: str) -> dict:
    """The tensors of a MobileNetV2 in ``layout`` under our names (a one-line error if any is missing or extra)."""
    mapping = key_map(layout, classifier=layout.classifier_key in tensors)
    return rename(tensors, mapping, f"MobileNetV2 in {layout.title} naming", source)


# -------------------------------------------------------------------------------- TFLite


def from_tflite(graphs: list[Graph], source: str) -> Converted:
    """One TFLite MobileNetV2 (any published width and resolution) as our weights."""
    if len(graphs) != 1:
        raise WeightsError(f"{source}: not a MobileNetV2: it comes as one TFLite file, not {len(graphs)}")
    graph = graphs[0]
    ops = graph.ops
    _check_kind(ops, source)
    shape = graph.input_shape
    if len(shape) != 4 or shape[1] != shape[2] or shape[1] < TOTAL_STRIDE:
        raise WeightsError(
            f"{source}: not a MobileNetV2: its input is {shape}, not a square (1, H, W, C) image of at least "
            f"{TOTAL_STRIDE} pixels"
        )
    resolution = shape[1]
    weighted = [op for op in ops if op.name in WEIGHTED]
    num_classes = weighted[-1].weight.shape[0] if _has_classifier(ops) else 0

    def build(kwargs: dict) -> MobileNetV2:
        return MobileNetV2(num_classes=num_classes, padding="tf_same", **kwargs)

    candidates = [{"width_mult": width} for width in TFLITE_WIDTHS]
    kwargs, state = match_candidates(candidates, build, ops, resolution, "MobileNetV2", source)
    adds = sum(op.name == "ADD" for op in ops)
    if adds != RESIDUALS:
        raise WeightsError(
            f"{source}: not a MobileNetV2: its weights fit width {kwargs['width_mult']}, but the graph has {adds} "
            f"ADD operators where a MobileNetV2 adds the input back in {RESIDUALS} blocks ({op_counts(ops)})"
        )
    mean, std = tflite_input_stats(graph)
    meta = {"format": "tflite", "source": source, "mean": mean, "std": std, "input_size": resolution}
    return Converted(state, ARCH, {"padding": "tf_same"}, meta, bn_eps=0.0)


def _check_kind(ops: list[Op], source: str) -> None:
    """A one-line error when the graph is plainly not a MobileNetV2 (V3's operators, no residuals, VALID pads)."""
    names = {op.name for op in ops}
    if names & set(V3_OPS):
        found = " and ".join(name for name in V3_OPS if name in names)
        raise WeightsError(
            f"{source}: not a MobileNetV2: it has {found} operators (hard-swish and squeeze-and-excite are "
            f"MobileNetV3's); found {op_counts(ops)}"
        )
    if not names & set(WEIGHTED):
        raise WeightsError(f"{source}: not a MobileNetV2: no convolutions; found {op_counts(ops)}")
    if "ADD" not in names:
        raise WeightsError(
            f"{source}: not a MobileNetV2: no ADD operators, where a MobileNetV2 adds the input back in {RESIDUALS} of "
            f"its {NUM_BLOCKS} blocks (a MobileNetV1?); found {op_counts(ops)}"
        )
    positions = [i for i, op in enumerate(ops) if op.name in WEIGHTED]
    for index, position in enumerate(positions):
        op = ops[position]
        if op.kernel > 1 and not op.same_padding:
            padded = position > 0 and ops[position - 1].name == "PAD"
            how = " after an explicit PAD of other amounts than TensorFlow SAME's" if padded else ""
            raise WeightsError(
                f"{source}: weighted operator {index} ({op.describe()}) has VALID padding{how}: only TensorFlow "
                "SAME padding is converted (our padding='tf_same')"
            )


def _has_classifier(ops: list[Op]) -> bool:
    """Whether the last weighted operator comes after the global pool (a classifier, not the 1x1 head)."""
    last = max(i for i, op in enumerate(ops) if op.name in WEIGHTED)
    return any(op.name in POOLS for op in ops[:last])


# --------------------------------------------------------------------------------- Keras


def from_keras(tensors: dict[str, np.ndarray], source: str) -> Converted:
    """Keras ``applications.MobileNetV2`` weights as ours; the file name, as Keras publishes it, gives the size."""
    state = {}
    for key, value in rename_layout(tensors, LAYOUTS["keras"], source).items():
        if key.endswith("conv.weight"):
            state[key] = keras_to_torch(value, depthwise=".dw." in key)
        elif key == "classifier.weight":  # Dense: (in, out)
            state[key] = torch.from_numpy(np.ascontiguousarray(value.T, dtype=np.float32))
        else:
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return Converted(state, ARCH, {"padding": "tf_same"}, keras_meta(source, KERAS_FILE), bn_eps=KERAS_BN_EPS)


# ---------------------------------------------------------------------- torchvision, timm


def from_state_dict(tensors: Mapping[str, torch.Tensor], source: str, hf: HFFolder | None = None) -> Converted:
    """A state dict in torchvision's or timm's names."""
    if hf is not None:
        raise WeightsError(
            f"{source}: Hugging Face folders are not converted to MobileNetV2 (config.json model_type "
            f"{hf.config.get('model_type')!r}): pass timm's or torchvision's weights"
        )
    for name in ("timm", "torchvision"):
        layout = LAYOUTS[name]
        if layout.stem_key in tensors:
            meta = {"format": name, "source": source, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_size": 224}
            return Converted(rename_layout(tensors, layout, source), ARCH, {"padding": "torch"}, meta)
    raise WeightsError(
        f"{source}: not a MobileNetV2 state dict: expected keys named as ours (stem.conv.weight), timm's "
        f"({LAYOUTS['timm'].stem_key}) or torchvision's ({LAYOUTS['torchvision'].stem_key}); found {len(tensors)} "
        f"keys ({', '.join(sorted(tensors)[:3])}, ...)"
    )


register_converter(Converter(ARCH, tflite=from_tflite, keras=from_keras, state_dict=from_state_dict))
