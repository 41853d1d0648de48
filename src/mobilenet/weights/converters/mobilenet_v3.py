"""MobileNetV3's published weights: TFLite (Google), Keras, torchvision and timm, as our ``MobileNetV3``.

Our MobileNetV3 (:mod:`mobilenet.models.mobilenet_v3`) is a conv-BN ``stem``, the bottlenecks
``blocks.N`` (``expand`` where the expansion differs from the input, ``dw``, ``se.reduce`` and
``se.expand`` where the table marks SE, ``project``), the 1x1 conv-BN ``head`` before the pool,
then ``head_fc`` (the paper's "conv2d 1x1, NBN": a linear layer with bias) and the
``classifier``. Each library names the same tensors its own way; a :class:`Naming` says how and
:func:`key_map` spells out the whole correspondence for one size and variant. Conventions of
each source:

- **TFLite** (``v3-small_224_1.0_uint8.tflite``, ``v3-large-minimalistic_224_1.0_uint8.tflite``):
  batch norm folded into each convolution, TensorFlow SAME padding, uint8 inputs standing for
  ``(q - 128) / 127`` (read from the file). The graph's weighted operators are fitted onto our
  layers in execution order (:func:`~mobilenet.weights.converters.graph.match_candidates`) among
  the published sizes, variants and widths, then its nonlinearities are checked: a HARD_SWISH
  operator must follow exactly the layers whose activation is hard-swish in the fitted model.
  ReLU leaves no operator (it is folded into the 8-bit output ranges), nor does squeeze-and-excite's
  hard-sigmoid beyond an ADD and a MUL. Google's Small has no SE on its 576-channel 1x1
  convolution, as ours (Table 2 marks one: see the model's errata).
- **Keras** ``applications.MobileNetV3Large/Small`` (``weights_mobilenet_v3_{large,small}
  [_minimalistic]_224_{1.0,0.75}_float.h5``): layers ``Conv`` + ``Conv/BatchNorm``,
  ``expanded_conv[_N]/{expand,depthwise,project}`` each + ``/BatchNorm``,
  ``expanded_conv[_N]/squeeze_excite/Conv`` and ``.../Conv_1``, ``Conv_1`` + ``Conv_1/BatchNorm``
  (our ``head``), ``Conv_2`` (``head_fc``, a 1x1 convolution with bias) and ``Logits``, as
  the published files name them (Keras 3 renamed the layers, ``conv_bn``, ``expanded_conv_1_expand``...,
  but loads these files by position); ``_no_top`` files lack ``Logits`` (a model without
  classifier), ``_no_top_v2`` files ``Conv_2`` too (load those with ``features_only=True``). BN
  epsilon 1e-3. Keras pads stride-2 depthwise convolutions explicitly (``correct_pad``) and the
  others "same": TensorFlow SAME at every input size. Its model rescales [0, 255] pixels to
  [-1, 1] in a ``Rescaling`` layer without weights; ours has no such layer and takes [-1, 1]:
  mean = std = 0.5 of [0, 1] pixels.
- **torchvision** ``mobilenet_v3_large`` / ``_small``: ``features.0`` the stem,
  ``features.N.block.K`` the parts of bottleneck N - 1 in order (``K.0`` convolution, ``K.1``
  batch norm; squeeze-and-excite ``K.fc1`` / ``K.fc2``), the last ``features`` entry our
  ``head``, ``classifier.0`` our ``head_fc`` and ``classifier.3`` the classifier; BN epsilon
  1e-3, symmetric padding, ImageNet mean and std.
- **timm** ``mobilenetv3_{large,small}_100`` (symmetric padding, BN epsilon 1e-5 like ours,
  ImageNet mean and std) and its ports of Google's checkpoints ``tf_mobilenetv3_*`` (TF SAME
  padding, BN epsilon 1e-3, mean = std = 0.5): ``conv_stem`` + ``bn1``, bottlenecks
  ``blocks.S.B`` grouped into stages of equal output channels (``conv_pw``/``bn1``,
  ``conv_dw``/``bn2``, ``se.conv_reduce``, ``se.conv_expand``, ``conv_pwl``/``bn3``; without
  expansion ``conv_dw``/``bn1``, ``conv_pw``/``bn2``), the last stage's ``blocks.S.0.conv`` /
  ``bn1`` our ``head``, ``conv_head`` (a 1x1 convolution with bias) our ``head_fc``. The
  tensors of a ``tf_`` model and of timm's own are alike: the ``tf_`` conventions apply when
  the file's path or its folder's ``config.json`` names a ``tf_mobilenetv3`` architecture.

Size and variant are read from which names are present; the width from the tensors' shapes
(:meth:`MobileNetV3.kwargs_from_state_dict`, called by the loader).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.errors import InputShapeError, WeightsError
from mobilenet.models.mobilenet_v3 import TABLES, MobileNetV3, block_channels
from mobilenet.weights.converters import (
    GOOGLE_NORM,
    IGNORED_SUFFIXES,
    KERAS_BN,
    KERAS_BN_EPS,
    TORCH_BN,
    Converted,
    Converter,
    keras_meta,
    keras_to_torch,
    register_converter,
    rename,
    tflite_input_stats,
)
from mobilenet.weights.converters.graph import WEIGHTED, dry_run, match_candidates
from mobilenet.weights.hf import HFFolder
from mobilenet.weights.tflite import Graph, Op, op_counts

ARCH = MobileNetV3.arch
TORCHVISION_BN_EPS = 1e-3  # torchvision's MobileNetV3: norm_layer = partial(nn.BatchNorm2d, eps=0.001, ...)
TFLITE_WIDTHS = (1.0, 0.75)  # the published widths (TF-slim's checkpoints)
LINEARS = ("head_fc.weight", "classifier.weight")  # 1x1 convolutions in Keras and timm, linear layers here
TIMM_TF = re.compile(r"tf_mobilenetv3")
KERAS_FILE_SIZE = re.compile(r"mobilenet_v3_[a-z_]+_(\d+)_[\d.]+_float")  # the published files name their resolution

Names = dict[str, tuple[str, str | None]]
"""Our module under a bottleneck (``expand``, ``dw``, ``se.reduce``...) -> (convolution, batch norm or None)."""


def block_parts(size: str, minimal: bool) -> list[tuple[str, ...]]:
    """The weighted parts of each bottleneck in forward order: ``expand`` (when the expansion differs from
    the input), ``dw``, ``se`` (where the table marks it, not in the minimalistic variant), ``project``."""
    return [
        ("expand",) * (c.exp_chs != c.in_chs) + ("dw",) + ("se",) * bool(c.se_chs) + ("project",)
        for c in block_channels(size, 1.0, minimal)
    ]


# ------------------------------------------------------------------------------- layouts


def _torchvision_block(size: str, index: int, parts: tuple[str, ...]) -> Names:
    prefix, names = f"features.{index + 1}.block", {}
    for k, part in enumerate(parts):
        if part == "se":
            names["se.reduce"], names["se.expand"] = (f"{prefix}.{k}.fc1", None), (f"{prefix}.{k}.fc2", None)
        else:
            names[part] = (f"{prefix}.{k}.0", f"{prefix}.{k}.1")
    return names


def _torchvision_head(size: str) -> tuple[str, str]:
    last = len(TABLES[size].blocks) + 1
    return f"features.{last}.0", f"features.{last}.1"


def _timm_stages(size: str) -> list[tuple[int, int]]:
    """timm's (stage, index) of each bottleneck: its stages are the runs of equal output channels."""
    found, stage, index = [], 0, 0
    blocks = TABLES[size].blocks
    for i, spec in enumerate(blocks):
        if i and spec.out_chs != blocks[i - 1].out_chs:
            stage, index = stage + 1, 0
        found.append((stage, index))
        index += 1
    return found


TIMM_PARTS = {  # with an expansion: InvertedResidual; without: DepthwiseSeparable
    True: {"expand": ("conv_pw", "bn1"), "dw": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")},
    False: {"dw": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")},
}


def _timm_block(size: str, index: int, parts: tuple[str, ...]) -> Names:
    stage, position = _timm_stages(size)[index]
    prefix = f"blocks.{stage}.{position}"
    names: Names = {
        part: (f"{prefix}.{conv}", f"{prefix}.{bn}") for part, (conv, bn) in TIMM_PARTS["expand" in parts].items()
    }
    if "se" in parts:
        names["se.reduce"], names["se.expand"] = (f"{prefix}.se.conv_reduce", None), (f"{prefix}.se.conv_expand", None)
    return names


def _timm_head(size: str) -> tuple[str, str]:
    last = _timm_stages(size)[-1][0] + 1
    return f"blocks.{last}.0.conv", f"blocks.{last}.0.bn1"


KERAS_PARTS = {"expand": "expand", "dw": "depthwise", "project": "project"}


def _keras_block(size: str, index: int, parts: tuple[str, ...]) -> Names:
    prefix = f"expanded_conv_{index}" if index else "expanded_conv"
    names: Names = {
        part: (f"{prefix}/{KERAS_PARTS[part]}", f"{prefix}/{KERAS_PARTS[part]}/BatchNorm")
        for part in parts
        if part != "se"
    }
    if "se" in parts:
        names["se.reduce"] = (f"{prefix}/squeeze_excite/Conv", None)
        names["se.expand"] = (f"{prefix}/squeeze_excite/Conv_1", None)
    return names


@dataclass(frozen=True)
class Naming:
    """How one library names MobileNetV3's tensors (V1's :class:`~mobilenet.weights.converters.Layout` has
    no names that depend on the size nor layers with their own bias).

    ``stem`` and ``head(size)`` give the (convolution, batch norm) prefixes of those units,
    ``block(size, index, parts)`` those of one bottleneck's parts; ``head_fc`` and ``classifier``
    are layers with a bias; ``bn`` the batch-norm parameter names in our order.
    """

    title: str
    stem: tuple[str, str]
    block: Callable[[str, int, tuple[str, ...]], Names]
    head: Callable[[str], tuple[str, str]]
    head_fc: str
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
        return self.key(self.stem[0], self.conv_weight)


LAYOUTS: dict[str, Naming] = {
    "torchvision": Naming(
        "torchvision",
        stem=("features.0.0", "features.0.1"),
        block=_torchvision_block,
        head=_torchvision_head,
        head_fc="classifier.0",
        classifier="classifier.3",
    ),
    "timm": Naming(
        "timm",
        stem=("conv_stem", "bn1"),
        block=_timm_block,
        head=_timm_head,
        head_fc="conv_head",
        classifier="classifier",
    ),
    "keras": Naming(
        "Keras",
        stem=("Conv", "Conv/BatchNorm"),
        block=_keras_block,
        head=lambda size: ("Conv_1", "Conv_1/BatchNorm"),
        head_fc="Conv_2",
        classifier="Logits",
        sep="/",
        bn=KERAS_BN,
        conv_weight="kernel",
        dw_weight="depthwise_kernel",
    ),
}


def key_map(layout: Naming, size: str, minimal: bool, head_fc: bool = True, classifier: bool = True) -> dict[str, str]:
    """Our state-dict key -> the layout's key, for every weight of a MobileNetV3 of ``size`` and variant."""
    mapping: dict[str, str] = {}

    def unit(ours: str, conv: str, bn: str | None, weight: str) -> None:
        if bn is None:  # a layer with its own bias
            mapping[f"{ours}.weight"], mapping[f"{ours}.bias"] = layout.key(conv, weight), layout.key(conv, "bias")
            return
        mapping[f"{ours}.conv.weight"] = layout.key(conv, weight)
        mapping.update(
            {f"{ours}.bn.{mine}": layout.key(bn, theirs) for mine, theirs in zip(TORCH_BN, layout.bn, strict=True)}
        )

    unit("stem", *layout.stem, layout.conv_weight)
    for index, parts in enumerate(block_parts(size, minimal)):
        for part, (conv, bn) in layout.block(size, index, parts).items():
            unit(f"blocks.{index}.{part}", conv, bn, layout.dw_weight if part == "dw" else layout.conv_weight)
    unit("head", *layout.head(size), layout.conv_weight)
    if head_fc:
        unit("head_fc", layout.head_fc, None, layout.conv_weight)
    if classifier:
        unit("classifier", layout.classifier, None, layout.conv_weight)
    return mapping


def rename_layout(tensors: Mapping[str, Any], layout: Naming, source: str) -> dict[str, Any]:
    """The tensors of a MobileNetV3 in ``layout`` under our names, for the size and variant whose names they
    have (a one-line error naming the closest one's first missing or extra tensor otherwise)."""
    present = {key for key in tensors if not key.endswith(IGNORED_SUFFIXES)}
    tops = {
        "head_fc": layout.key(layout.head_fc, layout.conv_weight) in present,
        "classifier": layout.key(layout.classifier, layout.conv_weight) in present,
    }
    mappings = [key_map(layout, size, minimal, **tops) for size, minimal in product(TABLES, (False, True))]
    closest = min(mappings, key=lambda m: len(set(m.values()) ^ present))
    return rename(tensors, closest, f"MobileNetV3 in {layout.title} naming", source)


# -------------------------------------------------------------------------------- TFLite


def from_tflite(graphs: list[Graph], source: str) -> Converted:
    """Google's TFLite MobileNetV3 (one file) as our weights, its size, variant and width read from the graph."""
    if len(graphs) != 1:
        raise WeightsError(f"{source}: not a MobileNetV3, which comes as one TFLite file, not {len(graphs)}")
    graph = graphs[0]
    weighted = [op for op in graph.ops if op.name in WEIGHTED]
    if not weighted or len(graph.input_shape) != 4:
        raise WeightsError(
            f"{source}: not a MobileNetV3: input {graph.input_shape}, {op_counts(graph.ops)}: expected an image "
            "classifier of convolutions"
        )
    hard_swish = any(op.name == "HARD_SWISH" for op in graph.ops)
    candidates = [
        {"size": size, "minimal": minimal, "width_mult": width}
        for minimal, size, width in product((not hard_swish, hard_swish), TABLES, TFLITE_WIDTHS)
    ]  # the variant the graph's activations suggest first

    def build(kwargs: dict[str, Any]) -> MobileNetV3:
        shape = {"num_classes": weighted[-1].weight.shape[0], "in_chans": graph.input_shape[-1]}
        return MobileNetV3(padding="tf_same", **shape, **kwargs)

    resolution = graph.input_shape[1]
    try:
        kwargs, state = match_candidates(candidates, build, graph.ops, resolution, "MobileNetV3", source)
    except InputShapeError as err:
        raise WeightsError(f"{source}: not a MobileNetV3: input {graph.input_shape}: {err}") from err
    _check_hard_swish(build(kwargs), graph.ops, resolution, kwargs, source)
    mean, std = tflite_input_stats(graph)
    meta = {"format": "tflite", "source": source, "mean": mean, "std": std, "input_size": resolution}
    return Converted(state, ARCH, {"padding": "tf_same"}, meta, bn_eps=0.0)


def _hard_swish_after(steps: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """(weighted step, whether a hard-swish runs before the next weighted step) from (name, is hard-swish) steps."""
    found: list[tuple[str, bool]] = []
    for name, is_hard_swish in steps:
        if not is_hard_swish:
            found.append((name, False))
        elif found:
            found[-1] = (found[-1][0], True)
    return found


def _our_steps(model: MobileNetV3, resolution: int) -> list[tuple[str, bool]]:
    """Our weighted layers and hard-swish activations, by name, in the order a forward pass runs them."""
    names = {module: name for name, module in model.named_modules()}
    steps: list[tuple[str, bool]] = []
    hooks = [
        module.register_forward_hook(lambda m, _i, _o: steps.append((names[m], isinstance(m, nn.Hardswish))))
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.Linear | nn.Hardswish)
    ]
    dry_run(model, resolution, hooks)
    return steps


def _check_hard_swish(model: MobileNetV3, ops: list[Op], resolution: int, kwargs: dict, source: str) -> None:
    """Refuse a graph whose HARD_SWISH operators do not follow exactly the layers ``model`` ends in hard-swish."""
    graph_steps = [(op.describe(), op.name == "HARD_SWISH") for op in ops if op.name in (*WEIGHTED, "HARD_SWISH")]
    theirs, ours = _hard_swish_after(graph_steps), _hard_swish_after(_our_steps(model, resolution))
    for index, ((op, graph_hs), (layer, our_hs)) in enumerate(zip(theirs, ours, strict=True)):
        if graph_hs != our_hs:
            raise WeightsError(
                f"{source}: its weights fit MobileNetV3 {kwargs} but not its nonlinearities: weighted operator "
                f"{index} ({op}) is{'' if graph_hs else ' not'} followed by HARD_SWISH, our {layer} is"
                f"{'' if our_hs else ' not'} followed by hard-swish"
            )


# --------------------------------------------------------------------------------- Keras


def from_keras(tensors: dict[str, np.ndarray], source: str) -> Converted:
    """Keras ``applications.MobileNetV3Large`` / ``MobileNetV3Small`` weights as ours."""
    state = {}
    for key, value in rename_layout(tensors, LAYOUTS["keras"], source).items():
        value = np.asarray(value, dtype=np.float32)
        if key in LINEARS:  # a 1x1 convolution's kernel, 11IO
            state[key] = torch.from_numpy(np.ascontiguousarray(value.reshape(value.shape[-2:]).T))
        elif value.ndim == 4:
            state[key] = keras_to_torch(value, depthwise=".dw." in key)
        else:
            state[key] = torch.from_numpy(value)
    return Converted(state, ARCH, {"padding": "tf_same"}, keras_meta(source, KERAS_FILE_SIZE), bn_eps=KERAS_BN_EPS)


# ------------------------------------------------------------------------ torchvision, timm


def from_state_dict(tensors: Mapping[str, torch.Tensor], source: str, hf: HFFolder | None = None) -> Converted:
    """A state dict in torchvision's or timm's names (``hf``: the folder it came from, if any: timm's hub folders)."""
    architecture = str((hf.config if hf else {}).get("architecture", ""))
    if hf is not None and not architecture:
        raise WeightsError(
            f"{source}: not a MobileNetV3: a Hugging Face folder of model_type {hf.config.get('model_type')!r} "
            "(MobileNetV3 folders are timm's, whose config.json names an architecture)"
        )
    layout = next((layout for layout in LAYOUTS.values() if layout.sep == "." and layout.stem_key in tensors), None)
    if layout is None:
        raise WeightsError(
            f"{source}: not a MobileNetV3 state dict: expected keys named as ours (stem.conv.weight), torchvision's "
            f"({LAYOUTS['torchvision'].stem_key}) or timm's ({LAYOUTS['timm'].stem_key}); found {len(tensors)} keys "
            f"({', '.join(sorted(tensors)[:3])}, ...)"
        )
    state = {
        key: value.flatten(1) if key in LINEARS else value
        for key, value in rename_layout(tensors, layout, source).items()
    }  # timm's conv_head is a 1x1 convolution
    if layout is LAYOUTS["torchvision"]:
        meta = {"format": "torchvision", "source": source, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        return Converted(state, ARCH, {"padding": "torch"}, {**meta, "input_size": 224}, bn_eps=TORCHVISION_BN_EPS)
    tf_port = bool(TIMM_TF.search(architecture or source))
    cfg = (hf.config if hf else {}).get("pretrained_cfg") or {}
    meta = {
        "format": "timm",
        "source": source,
        "mean": tuple(cfg.get("mean", GOOGLE_NORM if tf_port else IMAGENET_MEAN)),
        "std": tuple(cfg.get("std", GOOGLE_NORM if tf_port else IMAGENET_STD)),
        "input_size": int(cfg.get("input_size", (3, 224, 224))[-1]),
    }
    kwargs = {"padding": "tf_same" if tf_port else "torch"}  # the tf_ ports keep TF's padding and BN epsilon
    return Converted(state, ARCH, kwargs, meta, bn_eps=KERAS_BN_EPS if tf_port else None)


register_converter(Converter(ARCH, tflite=from_tflite, keras=from_keras, state_dict=from_state_dict))
