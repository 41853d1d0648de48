"""MobileNetV1's published weights: TFLite (Google), Keras, timm and Hugging Face, as our ``MobileNetV1``.

Our MobileNetV1 is a sequence of conv-BN units (``stem``, ``blocks.N.dw``, ``blocks.N.pw`` and,
for timm's ``mobilenetv1_100h``, ``head``) followed by a ``classifier``. Each library names the
same tensors its own way; a :class:`Layout` says how and :func:`key_map` spells out the whole
correspondence. Conventions of each source:

- **TFLite** (``mobilenet_v1_*_quant.tflite``): batch norm folded into each convolution (the bias
  goes into an identity BN, see :func:`~mobilenet.weights.converters.identity_bn`); TensorFlow
  SAME padding, ReLU6 fused, inputs ``(q - 128) / 128``. The graph must be Table 1 exactly (a 3x3
  stride-2 convolution, 13 depthwise/pointwise pairs with Table 1's strides, an average pool, an
  optional 1x1 classifier). Google's 1.0-224 model comes as two files, the body up to the pool
  (``..._embedding_extractor``) and the classifier (``..._head_layers``): given both, in either
  order, they are joined.
- **Keras** (``mobilenet_{1_0,7_5,5_0,2_5}_{224,...}_tf.h5``): layers ``conv1``/``conv1_bn``,
  ``conv_dw_N``/``conv_dw_N_bn``, ``conv_pw_N``/``conv_pw_N_bn``, ``conv_preds`` (a 1x1 conv with
  bias); BN epsilon 1e-3; inputs in [-1, 1]. Keras pads stride-2 convolutions (0, 1) and stride-1
  ones "same": on even input sizes, which all published resolutions are, exactly TF SAME.
- **timm** (``mobilenetv1_100``, ``_100h``, ``_125``): symmetric padding, BN epsilon 1e-5 like
  ours, the ``h`` variant's 1x1 ``conv_head`` our ``head_conv``; mean = std = 0.5.
- **Hugging Face** ``MobileNetV1ForImageClassification``: ``depth_multiplier`` is our width,
  ``tf_padding`` selects TF SAME, ``layer_norm_eps`` (1e-3 for Google's) is the BN epsilon,
  ``id2label`` the classes (1001 with background for ``google/mobilenet_v1_*``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

from mobilenet.errors import WeightsError
from mobilenet.models.layers import ACTIVATIONS
from mobilenet.models.mobilenet_v1 import STEM, TABLE1, MobileNetV1
from mobilenet.weights.converters import (
    GOOGLE_NORM,
    KERAS_BN,
    KERAS_BN_EPS,
    Converted,
    Converter,
    Layout,
    identity_bn,
    keras_meta,
    keras_to_torch,
    op_bias,
    register_converter,
    rename,
    tflite_input_stats,
    tflite_to_torch,
    unit_key_map,
)
from mobilenet.weights.hf import HFFolder
from mobilenet.weights.tflite import CLASSIFIERS, CONVOLUTIONS, POOL, Graph, Op, op_counts

ARCH = MobileNetV1.arch
KERAS_FILE_SIZE = re.compile(r"mobilenet_\d_\d_(\d+)_tf")  # the published files name their resolution
HF_MODEL_TYPE = "mobilenet_v1"
HF_PREFIX = "mobilenet_v1."  # MobileNetV1ForImageClassification's body; a bare MobileNetV1Model has none
EXPECTED_TFLITE = (
    f"a 3x3 stride-{STEM.stride} CONV_2D, {len(TABLE1)} pairs of 3x3 DEPTHWISE_CONV_2D and 1x1 CONV_2D, "
    f"{POOL} and at most a 1x1 classifier"
)


def units(num_blocks: int = len(TABLE1), head: bool = False) -> list[tuple[str, str, int]]:
    """Our conv-BN units in forward order, as (module name, kind, block index)."""
    found = [("stem", "stem", -1)]
    for i in range(num_blocks):
        found += [(f"blocks.{i}.dw", "dw", i), (f"blocks.{i}.pw", "pw", i)]
    return [*found, ("head", "head", -1)] if head else found


# ------------------------------------------------------------------------------- layouts


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


LAYOUTS: dict[str, Layout] = {
    "timm": Layout("timm", _timm_names, "classifier"),
    "hf": Layout("Hugging Face", _hf_names, "classifier"),
    "keras": Layout("Keras", _keras_names, "conv_preds", "/", KERAS_BN, "kernel", "depthwise_kernel"),
}


def key_map(layout: Layout, head: bool = False, classifier: bool = True) -> dict[str, str]:
    """Our state-dict key -> the layout's key, for every weight of a MobileNetV1 (Table 1 body)."""
    return unit_key_map(layout, units(head=head), classifier)


def rename_layout(tensors: Mapping[str, object], layout: Layout, source: str) -> dict:
    """The tensors of a MobileNetV1 in ``layout`` under our names (a one-line error if any is missing or extra)."""
    mapping = key_map(layout, head=layout.head_key in tensors, classifier=layout.classifier_key in tensors)
    return rename(tensors, mapping, f"MobileNetV1 in {layout.title} naming", source)


# -------------------------------------------------------------------------------- TFLite


def from_tflite(graphs: list[Graph], source: str) -> Converted:
    """One TFLite MobileNetV1, or the body and classifier files of one, as our weights."""
    bodies = [g for g in graphs if g.is_body]
    if len(bodies) != 1:
        found = "; ".join(f"{g.path.name} has {op_counts(g.ops)}" for g in graphs)
        alone = len(graphs) == 1 and len(graphs[0].ops) == 1 and graphs[0].ops[0].name in CLASSIFIERS
        hint = " (a classifier alone: pass its body file with it)" if alone else ""
        raise WeightsError(f"{source}: not a MobileNetV1: expected {EXPECTED_TFLITE}; {found}{hint}")
    body = bodies[0]
    ops = body.ops + [op for g in graphs if g is not body for op in g.ops]
    convs, classifier = _match(ops, source)
    act = convs[0].act
    if any(op.act != act for op in convs) or act not in ("relu", "relu6"):
        raise WeightsError(f"{body.path}: expected ReLU6 (or ReLU) fused into every convolution, found {act}")
    state = {}
    for (unit, kind, _), op in zip(units(), convs, strict=True):
        state[f"{unit}.conv.weight"] = tflite_to_torch(op.weight, depthwise=kind == "dw")
        state.update({f"{unit}.bn.{name}": value for name, value in identity_bn(op_bias(op)).items()})
    if classifier is not None:
        state["classifier.weight"] = torch.from_numpy(classifier.weight.reshape(classifier.weight.shape[0], -1))
        state["classifier.bias"] = torch.from_numpy(op_bias(classifier))
    mean, std = tflite_input_stats(body)
    meta = {"format": "tflite", "source": source, "mean": mean, "std": std, "input_size": body.input_shape[1]}
    return Converted(state, ARCH, {"padding": "tf_same", "act": act}, meta, bn_eps=0.0)


def _match(ops: list[Op], source: str) -> tuple[list[Op], Op | None]:
    """The body's convolutions (stem, then depthwise/pointwise pairs) and the classifier, checked against Table 1."""
    expected = [Op("CONV_2D", kernel=3, stride=STEM.stride)]
    for spec in TABLE1:
        expected += [Op("DEPTHWISE_CONV_2D", kernel=3, stride=spec.stride), Op("CONV_2D", kernel=1, stride=1)]
    expected.append(Op(POOL))
    body, rest = ops[: len(expected)], ops[len(expected) :]
    for index, (want, got) in enumerate(zip(expected, body, strict=False)):
        if want.describe() != got.describe():
            raise WeightsError(
                _not_mobilenet(source, ops, f"operator {index} is {got.describe()}, not {want.describe()}")
            )
    if len(body) < len(expected):
        raise WeightsError(_not_mobilenet(source, ops, f"it ends after {len(body)} operators"))
    if len(rest) > 1 or (rest and (rest[0].name not in CLASSIFIERS or rest[0].kernel > 1)):
        raise WeightsError(
            _not_mobilenet(source, ops, f"after the pool come {', '.join(op.describe() for op in rest)}")
        )
    if any(not op.same_padding for op in body if op.kernel > 1):
        raise WeightsError(f"{source}: expected TensorFlow SAME padding in every 3x3 convolution, found VALID")
    return [op for op in body if op.name in CONVOLUTIONS], rest[0] if rest else None


def _not_mobilenet(source: str, ops: list[Op], difference: str) -> str:
    return f"{source}: not a MobileNetV1: expected {EXPECTED_TFLITE}; {difference} (found {op_counts(ops)})"


# --------------------------------------------------------------------------------- Keras


def from_keras(tensors: dict[str, np.ndarray], source: str) -> Converted:
    """Keras ``applications.MobileNet`` weights as ours."""
    state = {}
    for key, value in rename_layout(tensors, LAYOUTS["keras"], source).items():
        if key.endswith("conv.weight"):
            state[key] = keras_to_torch(value, depthwise=".dw." in key)
        elif key == "classifier.weight":  # conv_preds: a 1x1 convolution, 11IO
            state[key] = torch.from_numpy(np.ascontiguousarray(value.reshape(value.shape[-2:]).T, dtype=np.float32))
        else:
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    meta = keras_meta(source, KERAS_FILE_SIZE)
    return Converted(state, ARCH, {"padding": "tf_same", "act": "relu6"}, meta, bn_eps=KERAS_BN_EPS)


# ------------------------------------------------------------------- timm, Hugging Face


def from_state_dict(tensors: Mapping[str, torch.Tensor], source: str, hf: HFFolder | None = None) -> Converted:
    """A state dict in timm's or Hugging Face's names (``hf``: the folder it came from, if any)."""
    if hf is not None and hf.config.get("model_type") != HF_MODEL_TYPE:
        raise WeightsError(
            f"{source}: expected a Hugging Face MobileNetV1 (config.json model_type {HF_MODEL_TYPE!r}), "
            f"found model_type {hf.config.get('model_type')!r}"
        )
    if LAYOUTS["hf"].stem_key.removeprefix(HF_PREFIX) in tensors:  # a bare MobileNetV1Model
        tensors = {HF_PREFIX + k if not k.startswith("classifier.") else k: v for k, v in tensors.items()}
    if LAYOUTS["timm"].stem_key in tensors:
        meta = {"format": "timm", "source": source, "mean": GOOGLE_NORM, "std": GOOGLE_NORM, "input_size": 224}
        state = rename_layout(tensors, LAYOUTS["timm"], source)
        return Converted(state, ARCH, {"padding": "torch", "act": "relu6"}, meta)
    if LAYOUTS["hf"].stem_key in tensors:
        return _from_hf(rename_layout(tensors, LAYOUTS["hf"], source), hf.config if hf else {}, hf, source)
    raise WeightsError(
        f"{source}: not a MobileNetV1 state dict: expected keys named as ours (stem.conv.weight), timm's "
        f"({LAYOUTS['timm'].stem_key}) or Hugging Face's ({LAYOUTS['hf'].stem_key}); found {len(tensors)} keys "
        f"({', '.join(sorted(tensors)[:3])}, ...)"
    )


def _from_hf(state: dict[str, torch.Tensor], config: dict, hf: HFFolder | None, source: str) -> Converted:
    """Hugging Face weights with their config (transformers' defaults where a key is absent)."""
    processor = hf.processor if hf else {}
    act = config.get("hidden_act", "relu6")
    if act not in ACTIVATIONS:
        raise WeightsError(f"{source}: hidden_act {act!r} is not supported: expected one of {', '.join(ACTIVATIONS)}")
    labels = config.get("id2label") or {}
    weight = state.get("classifier.weight")
    names = [labels.get(str(i)) for i in range(0 if weight is None else weight.shape[0])]
    generic = all(re.fullmatch(r"LABEL_\d+", str(name)) for name in names)  # transformers' placeholders
    meta = {
        "format": "hf",
        "source": source,
        "classes": None if generic or None in names else names,
        "mean": tuple(processor.get("image_mean", GOOGLE_NORM)),
        "std": tuple(processor.get("image_std", GOOGLE_NORM)),
        "input_size": int(config.get("image_size", 224)),
    }
    kwargs = {"padding": "tf_same" if config.get("tf_padding", True) else "torch", "act": act}
    return Converted(state, ARCH, kwargs, meta, bn_eps=float(config.get("layer_norm_eps", 1e-3)))


register_converter(Converter(ARCH, tflite=from_tflite, keras=from_keras, state_dict=from_state_dict))
