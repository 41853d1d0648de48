"""The Open Inference Protocol (KServe v2, REST) for a MobileNet: request parsing and response encoding.

A model takes one of two inputs: ``image`` (``BYTES``, shape ``[N]``: encoded image files, decoded
and prepared as the model card says) or ``input`` (``FP32``, ``[N, C, S, S]``: tensors already
prepared). It returns ``probabilities`` (``FP32``, ``[N, classes]``); asking for it with the
``classification`` parameter (Triton's classification extension, ``class_count`` in
``tritonclient``) returns instead the top ``k`` of each image as ``BYTES`` ``"prob:index:label"``.
Tensors travel as JSON or in the binary data extension (``Inference-Header-Content-Length``: a
JSON header, then the raw bytes of each tensor in order; ``BYTES`` elements each prefixed by
their length as a little-endian uint32), which ``tritonclient`` uses by default. In JSON,
``image`` elements are base64 strings (or ``{"b64": ...}``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mobilenet.card import ModelCard

HEADER_LENGTH = "inference-header-content-length"
IMAGE_INPUT, TENSOR_INPUT, OUTPUT = "image", "input", "probabilities"


class ProtocolError(ValueError):
    """A request that does not follow the protocol or does not fit the model (an HTTP 400)."""


@dataclass
class Requested:
    """One output a request asks for."""

    name: str = OUTPUT
    binary: bool = False
    classification: int = 0


@dataclass
class InferRequest:
    """A parsed ``/v2/models/{name}/infer`` request: encoded images or a prepared tensor, and the outputs wanted."""

    id: str | None
    images: list[bytes] | None = None
    tensor: torch.Tensor | None = None
    outputs: list[Requested] = field(default_factory=lambda: [Requested()])

    @property
    def count(self) -> int:
        return len(self.images) if self.images is not None else int(self.tensor.shape[0])


def metadata(name: str, card: ModelCard, backend: str) -> dict[str, Any]:
    """The model metadata response (``GET /v2/models/{name}``)."""
    size = card.input_size
    return {
        "name": name,
        "versions": ["1"],
        "platform": backend,
        "inputs": [
            {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": TENSOR_INPUT, "datatype": "FP32", "shape": [-1, card.in_chans, size, size]},
        ],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, len(card.output_names())]}],
    }


def parse_infer(body: bytes, header_length: str | None, card: ModelCard) -> InferRequest:
    """Parse an inference request (JSON, or JSON + binary data when ``header_length`` is given)."""
    head, binary = _split(body, header_length)
    try:
        request = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProtocolError(f"the request is not JSON: {err}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or len(request["inputs"]) != 1:
        raise ProtocolError(f"expected a JSON object with one input, {IMAGE_INPUT!r} or {TENSOR_INPUT!r}")
    parsed = InferRequest(id=_optional_str(request.get("id")), outputs=_outputs(request))
    spec = request["inputs"][0]
    if not isinstance(spec, dict):
        raise ProtocolError("each input must be a JSON object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    size = _binary_size(spec)
    if size is not None and size > len(binary):
        raise ProtocolError(f"input {name!r}: binary_data_size {size} is more than the {len(binary)} bytes sent")
    raw = binary[:size] if size is not None else None
    if name == IMAGE_INPUT:
        parsed.images = _images(datatype, shape, spec.get("data"), raw)
    elif name == TENSOR_INPUT:
        parsed.tensor = _tensor(datatype, shape, spec.get("data"), raw, card)
    else:
        raise ProtocolError(f"unknown input {name!r}: use {IMAGE_INPUT!r} (BYTES) or {TENSOR_INPUT!r} (FP32)")
    if parsed.count == 0:
        raise ProtocolError(f"input {name!r} holds no image")
    return parsed


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise ProtocolError(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
    if not 0 < length <= len(body):
        raise ProtocolError(f"Inference-Header-Content-Length {length} does not fit a body of {len(body)} bytes")
    return body[:length], body[length:]


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _binary_size(spec: dict[str, Any]) -> int | None:
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ProtocolError(f"binary_data_size must be a non-negative integer, got {size!r}")
    return size


def _outputs(request: dict[str, Any]) -> list[Requested]:
    binary_default = bool((request.get("parameters") or {}).get("binary_data_output", False))
    specs = request.get("outputs")
    if specs is None:
        return [Requested(binary=binary_default)]
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ProtocolError("outputs must be a list of JSON objects")
    outputs = []
    for spec in specs:
        if spec.get("name") != OUTPUT:
            raise ProtocolError(f"unknown output {spec.get('name')!r}: the model's output is {OUTPUT!r}")
        parameters = spec.get("parameters") or {}
        k = parameters.get("classification", 0)
        if not isinstance(k, int) or k < 0:
            raise ProtocolError(f"classification must be a non-negative integer, got {k!r}")
        outputs.append(Requested(OUTPUT, bool(parameters.get("binary_data", binary_default)), k))
    return outputs


def _images(datatype: Any, shape: list[int], data: Any, raw: bytes | None) -> list[bytes]:
    if datatype != "BYTES":
        raise ProtocolError(f"input {IMAGE_INPUT!r} takes datatype BYTES (encoded images), got {datatype!r}")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise ProtocolError(f"input {IMAGE_INPUT!r} takes shape [N] or [N, 1], got {shape}")
    images = _unpack_bytes(raw) if raw is not None else [_b64(item) for item in _flat_list(data, IMAGE_INPUT)]
    if len(images) != shape[0]:
        raise ProtocolError(
            f"input {IMAGE_INPUT!r}: shape {shape} names {shape[0]} images, the data holds {len(images)}"
        )
    return images


def _flat_list(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r} has no data (a JSON list, or binary_data_size)")
    flat: list[Any] = []
    for item in data:
        flat.extend(_flat_list(item, name) if isinstance(item, list) else [item])
    return flat


def _b64(item: Any) -> bytes:
    text = item.get("b64") if isinstance(item, dict) else item
    if not isinstance(text, str):
        raise ProtocolError(f"input {IMAGE_INPUT!r}: in JSON each image is a base64 string, got {type(item).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise ProtocolError(f"input {IMAGE_INPUT!r}: an element is not valid base64") from None


def _unpack_bytes(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError("BYTES data: a length prefix is cut short")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError(f"BYTES data: an element of {length} bytes is cut short")
        items.append(raw[offset : offset + length])
        offset += length
    return items


def _tensor(datatype: Any, shape: list[int], data: Any, raw: bytes | None, card: ModelCard) -> torch.Tensor:
    expected = [card.in_chans, card.input_size, card.input_size]
    if datatype != "FP32":
        raise ProtocolError(f"input {TENSOR_INPUT!r} takes datatype FP32, got {datatype!r}")
    if len(shape) != 4 or shape[1:] != expected:
        raise ProtocolError(f"input {TENSOR_INPUT!r} takes shape [N, {', '.join(map(str, expected))}], got {shape}")
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != 4 * count:
            raise ProtocolError(f"input {TENSOR_INPUT!r}: shape {shape} needs {4 * count} bytes, got {len(raw)}")
        values = np.frombuffer(raw, dtype="<f4").copy()
    else:
        flat = _flat_list(data, TENSOR_INPUT)
        if len(flat) != count or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat):
            raise ProtocolError(f"input {TENSOR_INPUT!r}: shape {shape} needs {count} numbers, got {len(flat)} values")
        values = np.asarray(flat, dtype=np.float32)
    tensor = torch.from_numpy(values).reshape(shape)
    if not torch.isfinite(tensor).all():
        raise ProtocolError(f"input {TENSOR_INPUT!r} holds NaN or infinite values")
    return tensor


def encode_response(
    model: str, request_id: str | None, probs: torch.Tensor, names: Sequence[str], outputs: Sequence[Requested]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when some output travels as binary data."""
    specs, chunks = [], []
    for wanted in outputs:
        if wanted.classification:
            values, indices = probs.topk(min(wanted.classification, probs.shape[1]), 1)
            cells = [
                f"{p:.6f}:{i}:{names[i]}".encode()
                for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
                for p, i in zip(row_p, row_i, strict=True)
            ]
            spec = {"name": wanted.name, "datatype": "BYTES", "shape": list(values.shape)}
            payload = b"".join(struct.pack("<I", len(c)) + c for c in cells) if wanted.binary else None
            data: list[Any] = [c.decode() for c in cells]
        else:
            spec = {"name": wanted.name, "datatype": "FP32", "shape": list(probs.shape)}
            payload = probs.numpy().astype("<f4").tobytes() if wanted.binary else None
            data = probs.flatten().tolist()
        if payload is None:
            spec["data"] = data
        else:
            spec["parameters"] = {"binary_data_size": len(payload)}
            chunks.append(payload)
        specs.append(spec)
    head = {"model_name": model, "model_version": "1", "outputs": specs}
    if request_id is not None:
        head["id"] = request_id
    text = json.dumps(head).encode()
    return (text + b"".join(chunks), len(text)) if chunks else (text, None)
