"""TFLite flatbuffers read without running anything: the computing operators of a graph, weights dequantized.

The files are parsed with the ``tflite`` package (the flatbuffer schema's generated reader).
Weights stored as uint8 (or int8) with a scale and zero point per tensor (or per channel) are
dequantized, ``float = (q - zero_point) * scale``; int32 biases have zero point 0. Operators
that neither compute nor hold weights (reshapes, softmax, quantize) are dropped, and a PAD that
gives the VALID convolution after it exactly TensorFlow SAME's amounts is folded into it (the TF2
converter writes strided SAME convolutions that way). What a graph must look like to be a given
architecture is its converter's business (:mod:`mobilenet.weights.converters`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.errors import WeightsError
from mobilenet.models.layers import tf_same_padding
from mobilenet.weights.formats import one_line, optional_import

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
CLASSIFIERS = ("CONV_2D", "FULLY_CONNECTED")
PASSIVE = frozenset({"RESHAPE", "SQUEEZE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"})  # no weights, no arithmetic
POOL = "AVERAGE_POOL_2D"
TENSOR_INT8 = 9  # the schema's TensorType.INT8 (UINT8 is 3)


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
    output_quant: tuple[float, int, int, int] | None = None  # an 8-bit output's scale, zero point, lowest, highest
    output_shape: tuple[int, ...] = ()

    def describe(self) -> str:
        return f"{self.name} {self.kernel}x{self.kernel}/{self.stride}" if self.kernel else self.name


@dataclass(frozen=True)
class Graph:
    """The computing operators of one TFLite file, in execution order, and its input."""

    path: Path
    ops: list[Op]
    input_shape: tuple[int, ...]
    input_quant: tuple[float, int] | None  # (scale, zero point) of a quantized input
    input_signed: bool = False  # an int8 input: pixels arrive as q = pixel - 128 (the TF2 converter's int8 files)

    @property
    def is_body(self) -> bool:
        """Whether the graph holds depthwise convolutions (a network's body, not a classifier file)."""
        return any(op.name == "DEPTHWISE_CONV_2D" for op in self.ops)


def op_counts(ops: list[Op]) -> str:
    """``N operators (a CONV_2D, b DEPTHWISE_CONV_2D, ...)``, for messages."""
    counts = ", ".join(f"{n} {name}" for name, n in Counter(op.name for op in ops).most_common())
    return f"{len(ops)} operators ({counts})" if ops else "no operators"


def parse(path: Path) -> Graph:
    """The computing operators of a TFLite file's main graph, with dequantized weights."""
    tflite = optional_import("tflite")
    try:
        model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        graph = model.Subgraphs(0)
        raw = [graph.Operators(i) for i in range(graph.OperatorsLength())]
        parsed = [_with_output(graph, op, _op(tflite, model, graph, op)) for op in raw]
        ops = _fold_pads(tflite, model, graph, raw, parsed)
        tensor = graph.Tensors(graph.Inputs(0))
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        quant = _quantization(tensor)
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from err
    except Exception as err:  # a flatbuffer reader on a corrupt file fails in many ways (IndexError, struct.error...)
        raise WeightsError(f"{path}: truncated or corrupt TFLite file ({type(err).__name__}: {one_line(err)})") from err
    input_quant = (float(quant[0][0]), int(quant[1][0])) if quant and len(quant[0]) == 1 else None
    signed = tensor.Type() == TENSOR_INT8
    return Graph(path, [op for op in ops if op.name not in PASSIVE], shape, input_quant, signed)


def _fold_pads(tflite: Any, model: Any, graph: Any, raw: list[Any], ops: list[Op]) -> list[Op]:
    """``ops`` with each PAD that feeds a VALID convolution exactly TensorFlow SAME's amounts folded into it as
    SAME padding (how the TF2 converter writes a strided SAME convolution); a PAD of other amounts (PyTorch's
    symmetric ones) stays in front of its VALID convolution."""
    folded: list[Op] = []
    for index, op in enumerate(ops):
        if folded and folded[-1].name == "PAD" and _pads_same(tflite, model, graph, raw[index - 1], raw[index], op):
            folded[-1] = replace(op, same_padding=True)
        else:
            folded.append(op)
    return folded


def _pads_same(tflite: Any, model: Any, graph: Any, pad: Any, conv: Any, parsed: Op) -> bool:
    """Whether the PAD operator ``pad`` feeds ``conv`` (``parsed``: a VALID convolution) TensorFlow SAME's amounts."""
    if parsed.name not in CONVOLUTIONS or parsed.same_padding or not parsed.kernel:
        return False
    if int(conv.Inputs(0)) != int(pad.Outputs(0)):
        return False
    try:
        amounts = _constant(tflite, model, graph, int(pad.Inputs(1)))
    except WeightsError:  # amounts computed at run time: nothing to fold
        return False
    size = graph.Tensors(int(pad.Inputs(0))).ShapeAsNumpy()[1:3]
    same = [(0, 0), *(tf_same_padding(int(s), parsed.kernel, parsed.stride) for s in size), (0, 0)]
    return amounts.shape == (4, 2) and np.array_equal(amounts, same)


def _with_output(graph: Any, op: Any, parsed: Op) -> Op:
    """``parsed`` with the shape and 8-bit quantization of the operator's (first) output tensor."""
    tensor = graph.Tensors(int(op.Outputs(0)))
    quant = _quantization(tensor)
    output_quant = None
    if quant and quant[0].size == 1:
        low, high = (-128, 127) if tensor.Type() == TENSOR_INT8 else (0, 255)
        output_quant = (float(quant[0][0]), int(quant[1][0]), low, high)
    return replace(parsed, output_quant=output_quant, output_shape=tuple(int(d) for d in tensor.ShapeAsNumpy()))


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
        types.INT64: np.int64,  # PAD's amounts, in some converters' files
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
    scale = quant.ScaleAsNumpy()  # a view of the file: a length the file cannot hold fails here, unallocated
    zero = quant.ZeroPointAsNumpy() if quant.ZeroPointLength() else np.zeros(scale.size)
    return scale.astype(np.float64), np.asarray(zero, dtype=np.float64)
