"""TFLite files as Google's TF2 converter writes them, made from Google's TF1 uint8 files (tests only).

Google's newer MobileNet files (and fine-tuned ones such as Coral's iNaturalist bird classifier)
come from the TF2 converter and differ from the TF1 uint8 files under ../shared:

- activations are int8 (the uint8 grid moved down by 128: same scale, zero point - 128);
- weights are symmetric int8 with one scale per output channel (``quantized_dimension`` 0 for
  ``CONV_2D``, 3 for ``DEPTHWISE_CONV_2D``), biases int32 with scale ``input scale * weight scale``;
- a ``QUANTIZE`` operator takes a float (or uint8) input to int8, a ``DEQUANTIZE`` (or ``QUANTIZE``)
  gives the output back as float (or uint8); int8 in and out skip them;
- a stride-2 convolution with TensorFlow's SAME padding is an explicit ``PAD`` then a VALID one;
- a fine-tuned classifier has its own class count and its label file packed in the metadata zip.

:func:`int8_file` writes such a file from a TF1 uint8 file with the ``tflite`` package's
flatbuffer builder functions: the source graph is read into plain data (:class:`Network`),
rewritten step by step, and written back.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import flatbuffers
import numpy as np
import tflite

from mobilenet.models.layers import tf_same_padding

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
}
OPTIONS = {value: name for name, value in vars(tflite.BuiltinOptions).items() if not name.startswith("_")}
VERSIONS = {  # the operator versions the TF2 converter writes for int8 (per-channel) kernels
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "ADD": 2,
    "MUL": 2,
    "AVERAGE_POOL_2D": 2,
    "SOFTMAX": 2,
    "QUANTIZE": 2,
    "DEQUANTIZE": 2,
    "PAD": 2,
}
Edge = Literal["float", "uint8", "int8"]


@dataclass
class Tensor:
    """One tensor: constant ``data`` in its own dtype (None for an activation), and its quantization."""

    name: str
    shape: list[int]
    type: int
    data: np.ndarray | None = None
    scale: np.ndarray | None = None
    zero: np.ndarray | None = None
    axis: int = 0

    def quant_like(self, name: str, shape: list[int], type_: int | None = None, shift: int = 0) -> Tensor:
        """A new activation with this tensor's scale, the zero point moved by ``shift``."""
        zero = None if self.zero is None else self.zero + shift
        return Tensor(name, shape, self.type if type_ is None else type_, None, self.scale, zero)


@dataclass
class Operator:
    """One operator: its name, tensor indices, and its builtin options (schema table name and fields)."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: str = "NONE"
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Network:
    """A TFLite model's main graph as plain data."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]

    def add(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1


# ---------------------------------------------------------------- reading


def read(path: Path) -> Network:
    """The main graph of the TFLite file ``path``."""
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    tensors = [_read_tensor(model, graph.Tensors(i)) for i in range(graph.TensorsLength())]
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = tflite.BUILTIN_OPCODE2NAME[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        options = OPTIONS[op.BuiltinOptionsType()]
        fields = _read_options(options, op.BuiltinOptions()) if options != "NONE" else {}
        operators.append(Operator(name, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy()), options, fields))
    return Network(tensors, operators, list(graph.InputsAsNumpy()), list(graph.OutputsAsNumpy()))


def _read_tensor(model: Any, tensor: Any) -> Tensor:
    shape = [int(d) for d in tensor.ShapeAsNumpy()]
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    data = None if isinstance(raw, int) else raw.view(DTYPES[tensor.Type()]).reshape(shape).copy()
    quant = tensor.Quantization()
    scale = zero = None
    axis = 0
    if quant is not None and quant.ScaleLength():
        scale, zero = quant.ScaleAsNumpy().astype(np.float32), quant.ZeroPointAsNumpy().astype(np.int64)
        axis = quant.QuantizedDimension()
    return Tensor(tensor.Name().decode(), shape, tensor.Type(), data, scale, zero, axis)


def _fields(options: str) -> list[str]:
    """The field names of a builtin options table (from its builder's ``<Table>Add<Field>`` functions)."""
    prefix = f"{options}Add"
    return [name[len(prefix) :] for name in dir(tflite) if name.startswith(prefix)]


def _read_options(options: str, table: Any) -> dict[str, Any]:
    reader = getattr(tflite, options)()
    reader.Init(table.Bytes, table.Pos)
    fields = {}
    for name in _fields(options):
        if hasattr(reader, f"{name}AsNumpy"):
            values = getattr(reader, f"{name}AsNumpy")()
            if not isinstance(values, int):  # 0: the vector is absent
                fields[name] = values.copy()
        else:
            fields[name] = getattr(reader, name)()
    return fields


# ---------------------------------------------------------------- rewriting


def keep_classes(net: Network, classes: int) -> None:
    """Cut the classifier (the last weighted operator) to its first ``classes`` outputs, and every shape after it."""
    classifier = [op for op in net.operators if op.name in WEIGHTED][-1]
    weight, bias = (net.tensors[i] for i in classifier.inputs[1:3])
    before = weight.shape[0]
    for tensor in (weight, bias):
        tensor.data = tensor.data[:classes]
        tensor.shape[0] = classes
    for tensor in net.tensors:
        if tensor.data is None and tensor.shape and tensor.shape[-1] == before:
            tensor.shape[-1] = classes
    for op in net.operators:
        if op.name == "RESHAPE":
            shape = net.tensors[op.inputs[1]]
            shape.data = np.where(shape.data == before, classes, shape.data).astype(np.int32)
            if "NewShape" in op.fields:
                op.fields["NewShape"] = np.where(op.fields["NewShape"] == before, classes, op.fields["NewShape"])


def to_int8(net: Network) -> None:
    """uint8 activations to int8 (zero point - 128); weights to symmetric per-channel int8, biases to match."""
    weights = {}
    for op in net.operators:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weights[op.inputs[1]] = (
                op.inputs[2],
                net.tensors[op.inputs[0]].scale,
                3 if op.name == "DEPTHWISE_CONV_2D" else 0,
            )
    biases = {bias for bias, _, _ in weights.values()}
    for index, (bias, input_scale, axis) in weights.items():
        _per_channel(net.tensors[index], net.tensors[bias], input_scale, axis)
    for index, tensor in enumerate(net.tensors):
        if tensor.type == tflite.TensorType.UINT8 and index not in weights and index not in biases:
            tensor.type, tensor.zero = tflite.TensorType.INT8, tensor.zero - 128
            if tensor.data is not None:
                tensor.data = (tensor.data.astype(np.int16) - 128).astype(np.int8)


def _per_channel(weight: Tensor, bias: Tensor, input_scale: np.ndarray, axis: int) -> None:
    """Requantize a per-tensor uint8 kernel to int8 with one symmetric scale per output channel."""
    values = (weight.data.astype(np.float32) - weight.zero[0]) * weight.scale[0]
    reduce = tuple(d for d in range(values.ndim) if d != axis)
    scale = np.abs(values).max(axis=reduce) / 127
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [-1 if d == axis else 1 for d in range(values.ndim)]
    weight.data = np.clip(np.round(values / scale.reshape(shape)), -127, 127).astype(np.int8)
    weight.type, weight.scale, weight.zero, weight.axis = (
        tflite.TensorType.INT8,
        scale,
        np.zeros_like(scale, np.int64),
        axis,
    )
    bias_values = bias.data.astype(np.float64) * bias.scale[0]
    bias_scale = (input_scale[0] * scale).astype(np.float32)  # what the interpreter checks: input * weight scale
    bias.data = np.round(bias_values / bias_scale).astype(np.int32)
    bias.scale, bias.zero, bias.axis = bias_scale, np.zeros(len(scale), np.int64), 0


def explicit_pads(net: Network, symmetric: bool = False) -> None:
    """Each strided SAME convolution as a ``PAD`` then a VALID convolution (TensorFlow SAME amounts, or
    ``kernel // 2`` on every side when ``symmetric``, as PyTorch pads)."""
    operators = []
    for op in net.operators:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and op.fields["StrideH"] > 1 and op.fields["Padding"] == 0:
            source = net.tensors[op.inputs[0]]
            kernel = net.tensors[op.inputs[1]].shape[1:3]
            pads = [
                (k // 2, k // 2) if symmetric else tf_same_padding(size, k, op.fields["StrideH"])
                for size, k in zip(source.shape[1:3], kernel, strict=True)
            ]
            amounts = np.array([(0, 0), *pads, (0, 0)], dtype=np.int32)
            paddings = net.add(Tensor(f"{source.name}/paddings", [4, 2], tflite.TensorType.INT32, amounts))
            shape = [
                source.shape[0],
                *(s + a + b for s, (a, b) in zip(source.shape[1:3], pads, strict=True)),
                source.shape[3],
            ]
            padded = net.add(source.quant_like(f"{source.name}/padded", shape))
            operators.append(Operator("PAD", [op.inputs[0], paddings], [padded], "PadOptions"))
            op.inputs[0] = padded
            op.fields["Padding"] = tflite.Padding.VALID
        operators.append(op)
    net.operators = operators


def edges(net: Network, edge: Edge) -> None:
    """A float (``QUANTIZE`` in, ``DEQUANTIZE`` out) or uint8 (``QUANTIZE`` both ways) interface around the
    int8 graph; ``int8`` leaves it as it is."""
    if edge == "int8":
        return
    (first,), (last,) = net.inputs, net.outputs
    inner_in, inner_out = net.tensors[first], net.tensors[last]
    if edge == "float":
        outer_in = net.add(Tensor("serving_default_input:0", list(inner_in.shape), tflite.TensorType.FLOAT32))
        outer_out = net.add(Tensor("StatefulPartitionedCall:0", list(inner_out.shape), tflite.TensorType.FLOAT32))
        leave = Operator("DEQUANTIZE", [last], [outer_out], "DequantizeOptions")
    else:
        uint8 = tflite.TensorType.UINT8
        outer_in = net.add(inner_in.quant_like("serving_default_input:0", list(inner_in.shape), uint8, 128))
        outer_out = net.add(inner_out.quant_like("StatefulPartitionedCall:0", list(inner_out.shape), uint8, 128))
        leave = Operator("QUANTIZE", [last], [outer_out], "QuantizeOptions")
    enter = Operator("QUANTIZE", [outer_in], [first], "QuantizeOptions")
    net.operators = [enter, *net.operators, leave]
    net.inputs, net.outputs = [outer_in], [outer_out]


# ---------------------------------------------------------------- writing


def write(net: Network, description: str = "MLIR Converted.") -> bytes:
    """The flatbuffer of ``net`` (file identifier ``TFL3``, schema version 3)."""
    builder = flatbuffers.Builder(1 << 22)
    buffers = [_buffer(builder, b"")]  # buffer 0: the empty sentinel every activation points to
    tensors = []
    for tensor in net.tensors:
        if tensor.data is not None:
            buffers.append(_buffer(builder, np.ascontiguousarray(tensor.data).tobytes()))
        tensors.append(_tensor(builder, tensor, len(buffers) - 1 if tensor.data is not None else 0))
    names = list(dict.fromkeys(op.name for op in net.operators))
    operators = [_operator(builder, op, names.index(op.name)) for op in net.operators]
    codes = []
    for name in names:
        code = getattr(tflite.BuiltinOperator, name)
        tflite.OperatorCodeStart(builder)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(builder, code)
        tflite.OperatorCodeAddVersion(builder, VERSIONS.get(name, 1))
        codes.append(tflite.OperatorCodeEnd(builder))
    tensor_vector = _offsets(builder, tensors)
    operator_vector = _offsets(builder, operators)
    inputs, outputs = (builder.CreateNumpyVector(np.array(v, dtype=np.int32)) for v in (net.inputs, net.outputs))
    graph_name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensor_vector)
    tflite.SubGraphAddInputs(builder, inputs)
    tflite.SubGraphAddOutputs(builder, outputs)
    tflite.SubGraphAddOperators(builder, operator_vector)
    tflite.SubGraphAddName(builder, graph_name)
    subgraphs = _offsets(builder, [tflite.SubGraphEnd(builder)])
    code_vector, buffer_vector = _offsets(builder, codes), _offsets(builder, buffers)
    text = builder.CreateString(description)
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, code_vector)
    tflite.ModelAddSubgraphs(builder, subgraphs)
    tflite.ModelAddDescription(builder, text)
    tflite.ModelAddBuffers(builder, buffer_vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _offsets(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    """A vector of tables (``offsets``, in order)."""
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _buffer(builder: flatbuffers.Builder, data: bytes) -> int:
    vector = None
    if data:  # 16-byte aligned, as the converters write constants
        builder.StartVector(1, len(data), 16)
        builder.head -= len(data)
        builder.Bytes[builder.head : builder.head + len(data)] = data
        vector = builder.EndVector()
    tflite.BufferStart(builder)
    if vector is not None:
        tflite.BufferAddData(builder, vector)
    return tflite.BufferEnd(builder)


def _tensor(builder: flatbuffers.Builder, tensor: Tensor, buffer: int) -> int:
    quant = None
    if tensor.scale is not None:
        scale = builder.CreateNumpyVector(np.asarray(tensor.scale, dtype=np.float32))
        zero = builder.CreateNumpyVector(np.asarray(tensor.zero, dtype=np.int64))
        tflite.QuantizationParametersStart(builder)
        tflite.QuantizationParametersAddScale(builder, scale)
        tflite.QuantizationParametersAddZeroPoint(builder, zero)
        tflite.QuantizationParametersAddQuantizedDimension(builder, tensor.axis)
        quant = tflite.QuantizationParametersEnd(builder)
    name = builder.CreateString(tensor.name)
    shape = builder.CreateNumpyVector(np.array(tensor.shape, dtype=np.int32))
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, tensor.type)
    tflite.TensorAddBuffer(builder, buffer)
    tflite.TensorAddName(builder, name)
    if quant is not None:
        tflite.TensorAddQuantization(builder, quant)
    return tflite.TensorEnd(builder)


def _operator(builder: flatbuffers.Builder, op: Operator, code: int) -> int:
    options = None
    if op.options != "NONE":
        vectors = {
            name: builder.CreateNumpyVector(np.asarray(value, dtype=np.int32))
            for name, value in op.fields.items()
            if isinstance(value, np.ndarray)
        }
        getattr(tflite, f"{op.options}Start")(builder)
        for name, value in op.fields.items():
            getattr(tflite, f"{op.options}Add{name}")(builder, vectors.get(name, value))
        options = getattr(tflite, f"{op.options}End")(builder)
    inputs = builder.CreateNumpyVector(np.array(op.inputs, dtype=np.int32))
    outputs = builder.CreateNumpyVector(np.array(op.outputs, dtype=np.int32))
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, code)
    tflite.OperatorAddInputs(builder, inputs)
    tflite.OperatorAddOutputs(builder, outputs)
    if options is not None:
        tflite.OperatorAddBuiltinOptionsType(builder, getattr(tflite.BuiltinOptions, op.options))
        tflite.OperatorAddBuiltinOptions(builder, options)
    return tflite.OperatorEnd(builder)


def labels_zip(labels: list[str], name: str = "labels.txt") -> bytes:
    """A zip archive holding one label file, as TFLite's metadata writer appends it to a model file."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as folder:
        folder.writestr(name, "\n".join(labels) + "\n")
    return archive.getvalue()


def int8_file(
    source: Path,
    target: Path,
    *,
    classes: int | None = None,
    labels: list[str] | None = None,
    edge: Edge = "float",
    symmetric_pads: bool = False,
) -> Path:
    """Write ``target``: the TF1 uint8 file ``source`` as the TF2 converter writes an int8 model.

    ``classes`` keeps that many of the classifier's first outputs; ``labels`` are packed into the
    file's metadata zip; ``edge`` is the type of the input and output the outside sees;
    ``symmetric_pads`` pads as PyTorch does (not TensorFlow SAME), a file that must be refused.
    """
    net = read(source)
    if classes is not None:
        keep_classes(net, classes)
    to_int8(net)
    explicit_pads(net, symmetric_pads)
    edges(net, edge)
    target.write_bytes(write(net) + (labels_zip(labels) if labels else b""))
    return target
