"""Google's TFLite MobileNetV1 models (``mobilenet_v1_*_quant.tflite``) as float PyTorch weights.

The files are parsed with the ``tflite`` package (the flatbuffer schema's generated reader).
What the conversion does, and why:

- Weights are uint8 (or int8) with a scale and zero point per tensor (or per channel):
  ``float = (q - zero_point) * scale``; the int32 biases have zero point 0.
- TFLite stores convolutions as OHWI and depthwise ones as 1HWC: transposed to OIHW / C1HW.
- Batch norm is folded into each convolution's weight and bias. Our convolutions have no bias,
  so the bias goes into the BN that follows, set to the identity: ``weight = 1``,
  ``bias = folded bias``, ``running_mean = 0`` and ``running_var = 1 - eps``, so that
  ``running_var + eps == 1`` and ``BN(x) = (x - 0) / sqrt(1) * 1 + bias = x + bias`` exactly
  (this holds in float32 for eps = 1e-5). The model keeps our module structure and can be
  fine-tuned or exported like any other.
- The graph must be MobileNetV1 exactly as our Table 1 data describes it (a 3x3 stride-2
  convolution, 13 depthwise/pointwise pairs with Table 1's strides, an average pool, an optional
  1x1 classifier); anything else is refused with a one-line error.
- The 1.0-224 model comes as two files, the body up to the pool (``..._embedding_extractor``)
  and the classifier (``..._head_layers``): given both, in either order, they are joined.
- Padding is TensorFlow SAME (``padding="tf_same"``), the fused activation ReLU6, the input
  uint8 with ``float = (q - zero_point) * scale`` = ``(q - 128) / 128``: as a torchvision
  normalisation of ``q / 255``, mean = std = 128/255.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v1 import STEM, TABLE1
from mobilenet.weights.formats import one_line, optional_import
from mobilenet.weights.layouts import Converted, units

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
CLASSIFIERS = ("CONV_2D", "FULLY_CONNECTED")
PASSIVE = frozenset({"RESHAPE", "SQUEEZE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"})  # no weights, no arithmetic
POOL = "AVERAGE_POOL_2D"
EXPECTED = (
    f"a 3x3 stride-{STEM.stride} CONV_2D, {len(TABLE1)} pairs of 3x3 DEPTHWISE_CONV_2D and 1x1 CONV_2D, "
    f"{POOL} and at most a 1x1 classifier"
)


@dataclass(frozen=True)
class Op:
    """One operator of a TFLite graph, with its dequantized weights in TFLite's layout."""

    name: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: int = 0
    stride: int = 0
    same_padding: bool = True
    act: str | None = None  # the fused activation: None, "relu" or "relu6"

    def describe(self) -> str:
        return f"{self.name} {self.kernel}x{self.kernel}/{self.stride}" if self.kernel else self.name


@dataclass(frozen=True)
class Graph:
    """The computing operators of one TFLite file, in execution order, and its input."""

    path: Path
    ops: list[Op]
    input_shape: tuple[int, ...]
    input_quant: tuple[float, int] | None  # (scale, zero point) of a quantized input

    @property
    def is_body(self) -> bool:
        return any(op.name == "DEPTHWISE_CONV_2D" for op in self.ops)


def read_tflite(paths: Sequence[Path]) -> Converted:
    """One TFLite MobileNetV1, or the body and classifier files of one, as our weights."""
    source = " + ".join(str(path) for path in paths)
    if not 1 <= len(paths) <= 2:
        raise WeightsError(f"{source}: expected one TFLite file, or the body and classifier files of one model")
    graphs = [parse(path) for path in paths]
    bodies = [g for g in graphs if g.is_body]
    if len(bodies) != 1:
        found = "; ".join(f"{g.path.name} has {_op_counts(g.ops)}" for g in graphs)
        alone = len(graphs) == 1 and len(graphs[0].ops) == 1 and graphs[0].ops[0].name in CLASSIFIERS
        hint = " (a classifier alone: pass its body file with it)" if alone else ""
        raise WeightsError(f"{source}: not a MobileNetV1: expected {EXPECTED}; {found}{hint}")
    body = bodies[0]
    ops = body.ops + [op for g in graphs if g is not body for op in g.ops]
    convs, classifier = _match(ops, source)
    act = convs[0].act
    if any(op.act != act for op in convs) or act not in ("relu", "relu6"):
        raise WeightsError(f"{body.path}: expected ReLU6 (or ReLU) fused into every convolution, found {act}")
    state = {}
    for (unit, kind, _), op in zip(units(), convs, strict=True):
        state[f"{unit}.conv.weight"] = _torch_layout(op.weight, kind)
        state.update({f"{unit}.bn.{name}": value for name, value in _identity_bn(_bias(op)).items()})
    if classifier is not None:
        state["classifier.weight"] = torch.from_numpy(classifier.weight.reshape(classifier.weight.shape[0], -1))
        state["classifier.bias"] = torch.from_numpy(_bias(classifier))
    scale, zero = body.input_quant or (1 / 127.5, 127.5)  # a float model expects [-1, 1] as well
    meta = {
        "format": "tflite",
        "source": source,
        "mean": (zero / 255,) * 3,
        "std": (1 / (255 * scale),) * 3,
        "input_size": body.input_shape[1],
    }
    return Converted(state, {"padding": "tf_same", "act": act}, meta, bn_eps=0.0)


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
    return f"{source}: not a MobileNetV1: expected {EXPECTED}; {difference} (found {_op_counts(ops)})"


def _op_counts(ops: list[Op]) -> str:
    counts = ", ".join(f"{n} {name}" for name, n in Counter(op.name for op in ops).most_common())
    return f"{len(ops)} operators ({counts})" if ops else "no operators"


def _torch_layout(weight: np.ndarray, kind: str) -> torch.Tensor:
    """OHWI (convolution) or 1HWC (depthwise) to PyTorch's OIHW / C1HW."""
    return torch.from_numpy(np.ascontiguousarray(weight.transpose((3, 0, 1, 2) if kind == "dw" else (0, 3, 1, 2))))


def _bias(op: Op) -> np.ndarray:
    channels = op.weight.shape[-1] if op.name == "DEPTHWISE_CONV_2D" else op.weight.shape[0]
    return op.bias if op.bias is not None else np.zeros(channels, dtype=np.float32)


def _identity_bn(bias: np.ndarray) -> dict[str, torch.Tensor]:
    """A BN that adds the folded bias and does nothing else (see the module docstring)."""
    channels = len(bias)
    return {
        "weight": torch.ones(channels),
        "bias": torch.from_numpy(bias),
        "running_mean": torch.zeros(channels),
        "running_var": torch.ones(channels),  # the loader subtracts our eps from it (bn_eps=0 here)
    }


def parse(path: Path) -> Graph:
    """The computing operators of a TFLite file's main graph, with dequantized weights."""
    tflite = optional_import("tflite")
    try:
        model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        graph = model.Subgraphs(0)
        ops = [_op(tflite, model, graph, graph.Operators(i)) for i in range(graph.OperatorsLength())]
        tensor = graph.Tensors(graph.Inputs(0))
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        quant = _quantization(tensor)
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from err
    except Exception as err:  # a flatbuffer reader on a corrupt file fails in many ways (IndexError, struct.error...)
        raise WeightsError(f"{path}: truncated or corrupt TFLite file ({type(err).__name__}: {one_line(err)})") from err
    input_quant = (float(quant[0][0]), int(quant[1][0])) if quant and len(quant[0]) == 1 else None
    return Graph(path, [op for op in ops if op.name not in PASSIVE], shape, input_quant)


def _op(tflite: Any, model: Any, graph: Any, op: Any) -> Op:
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # the schema's rule for old files
    name = tflite.BUILTIN_OPCODE2NAME.get(builtin, "CUSTOM")
    if name not in CONVOLUTIONS and name != "FULLY_CONNECTED":
        return Op(name)
    inputs = [int(i) for i in op.InputsAsNumpy()]
    weight = _constant(tflite, model, graph, inputs[1])
    bias = _constant(tflite, model, graph, inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
    options_class = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions"}.get(name)
    options = getattr(tflite, options_class or "FullyConnectedOptions")()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    act = {tflite.ActivationFunctionType.RELU: "relu", tflite.ActivationFunctionType.RELU6: "relu6"}.get(
        options.FusedActivationFunction()
    )
    if options_class is None:
        return Op(name, weight, bias, kernel=1, stride=1, act=act)
    if options.StrideH() != options.StrideW() or options.DilationHFactor() != 1 or weight.shape[1] != weight.shape[2]:
        return Op(name, weight, bias)  # not a square, undilated convolution: cannot match Table 1
    same = options.Padding() == tflite.Padding.SAME
    return Op(name, weight, bias, kernel=weight.shape[1], stride=options.StrideH(), same_padding=same, act=act)


def _constant(tflite: Any, model: Any, graph: Any, index: int) -> np.ndarray:
    """A constant tensor as float32, dequantized: ``(q - zero_point) * scale`` (per tensor or per channel)."""
    tensor = graph.Tensors(index)
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    name = tensor.Name().decode(errors="replace")
    if isinstance(data, int):
        raise WeightsError(f"expected constant weights in tensor {name!r}, found none (computed at run time?)")
    types = tflite.TensorType
    dtypes = {
        types.FLOAT32: np.float32,
        types.FLOAT16: np.float16,
        types.INT32: np.int32,
        types.UINT8: np.uint8,
        types.INT8: np.int8,
    }
    if tensor.Type() not in dtypes:
        raise WeightsError(f"tensor {name!r}: unsupported type {tensor.Type()} (expected float or 8-bit quantized)")
    values = data.view(dtypes[tensor.Type()]).reshape([int(d) for d in tensor.ShapeAsNumpy()]).astype(np.float64)
    quant = _quantization(tensor)
    if quant:
        scale, zero = quant
        axis = tensor.Quantization().QuantizedDimension()
        shape = [-1 if d == axis else 1 for d in range(values.ndim)] if scale.size > 1 else [1] * values.ndim
        values = (values - zero.reshape(shape)) * scale.reshape(shape)
    return values.astype(np.float32)


def _quantization(tensor: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, zero point) arrays of a quantized tensor, None for a float one."""
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return None
    zero = quant.ZeroPointAsNumpy() if quant.ZeroPointLength() else np.zeros(quant.ScaleLength())
    return quant.ScaleAsNumpy().astype(np.float64), np.asarray(zero, dtype=np.float64)
