"""int8 post-training static quantization of an exported ONNX model with ONNX Runtime (issue 5, section 3).

Weights are quantized per output channel (int8, symmetric), activations per tensor (uint8 by
default, the fast kernel pair on x86), with ranges calibrated (min/max) on N images of a data
set seen through the same evaluation transform as ``mobilenet eval``. The result is in QDQ
format: QuantizeLinear/DequantizeLinear pairs around the float operators, which ONNX Runtime
fuses into integer kernels. ReLU6's Clip disappears into the quantized range. The float graph
first goes through ONNX Runtime's recommended pre-processing (shape inference, graph clean-up).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mobilenet.data import load_eval_folder
from mobilenet.errors import ExportError
from mobilenet.export.metadata import check_writable, require, scratch_folder, write_atomically
from mobilenet.export.onnx_export import INPUT_NAME, read_onnx_meta, set_meta

DEFAULT_CALIB_IMAGES = 256
ACTIVATION_TYPES = ("uint8", "int8")


def calibration_images(
    data: str | Path,
    meta: dict[str, Any],
    count: int = DEFAULT_CALIB_IMAGES,
    split: str = "train",
    data_root: str | None = None,
) -> torch.Tensor:
    """``count`` images of ``data``, spread evenly over its (sorted) files, as the model sees them.

    ``data`` is anything ``mobilenet eval --data`` takes (a folder, a data root with splits, where
    ``split`` is used, or a named data set); its classes must be the model's (``meta``, as
    :func:`~mobilenet.export.metadata.export_meta` makes it), so that a model is not calibrated
    on another data set by mistake. Raises :class:`ExportError` when ``data`` has fewer than
    ``count`` images.
    """
    if count < 1:
        raise ExportError(f"--calib-images must be at least 1, got {count}")
    classes = meta["classes"][meta["label_offset"] :] if meta["classes"] is not None else None
    dataset, _ = load_eval_folder(
        str(data),
        resolution=meta["input_size"],
        in_chans=meta["in_chans"],
        mean=meta["mean"],
        std=meta["std"],
        classes=classes,
        data_root=data_root,
        split=split,
        cache="none",
    )
    if len(dataset) < count:
        raise ExportError(
            f"calibration data {data} has {len(dataset)} images, {count} were asked for: "
            f"pass --calib-images {len(dataset)} or less, or more data"
        )
    picks = torch.linspace(0, len(dataset) - 1, count).round().long().tolist()
    return torch.stack([dataset[i][0] for i in picks])


def quantize_onnx(
    float_onnx: str | Path,
    out: str | Path,
    calib_images: torch.Tensor,
    *,
    per_channel: bool = True,
    activations: str = "uint8",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Quantize the float file ``float_onnx`` (from :func:`export_onnx`) to an int8 QDQ file ``out``.

    ``calib_images`` are preprocessed ``(N, C, R, R)`` images (:func:`calibration_images`). The
    metadata of ``float_onnx`` is carried over, with ``int8`` describing the quantization, and
    returned. ``out`` appears only when complete.
    """
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    shape_inference = require("onnxruntime.quantization.shape_inference")
    if activations not in ACTIVATION_TYPES:
        raise ExportError(f"activations must be one of {', '.join(ACTIVATION_TYPES)}, got {activations!r}")
    meta = read_onnx_meta(float_onnx)
    expected = (meta["in_chans"], meta["input_size"], meta["input_size"])
    if calib_images.ndim != 4 or tuple(calib_images.shape[1:]) != expected or len(calib_images) == 0:
        shape = ", ".join(map(str, expected))
        raise ExportError(f"calibration images must be (N, {shape}), got {tuple(calib_images.shape)}")
    out = Path(out)
    check_writable(out)
    reader = _reader(quantization.CalibrationDataReader, calib_images, batch_size)
    types = {"uint8": quantization.QuantType.QUInt8, "int8": quantization.QuantType.QInt8}
    with scratch_folder(out) as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        shape_inference.quant_pre_process(str(float_onnx), str(prepared))
        quantization.quantize_static(
            str(prepared),
            str(quantized),
            reader,
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=types[activations],
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
        proto = onnx.load_model(str(quantized))
    info = {
        **meta,
        "int8": {
            "runtime": "onnxruntime",
            "format": "QDQ",
            "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": activations,
            "calibration": "minmax",
            "calib_images": len(calib_images),
        },
    }
    set_meta(proto, info)
    write_atomically(out, lambda tmp: tmp.write_bytes(proto.SerializeToString()))
    return info


def _reader(base: type, images: torch.Tensor, batch_size: int) -> Any:
    """ONNX Runtime's ``CalibrationDataReader`` over ``images`` in batches (its base class is imported lazily)."""

    class Batches(base):
        def __init__(self) -> None:
            self.batches: Iterator[torch.Tensor] = iter(images.split(batch_size))

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch.float().contiguous().numpy()}

    return Batches()
