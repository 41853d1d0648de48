"""Deployment: the folded inference graph, exported files, int8 quantization, running exported files.

- :func:`fold_bn`, :func:`inference_model`: conv + BN as one convolution; TF-SAME padding frozen.
- :func:`export_onnx` (metadata inside) and :func:`export_executorch` (XNNPACK ``.pte``, metadata
  in ``<file>.json`` beside it); :func:`read_exported_meta`.
- :func:`calibration_images`, :func:`quantize_onnx`: int8 (QDQ, per-channel) with ONNX Runtime.
- :func:`load_exported`: an exported file as a classifier that ``mobilenet.evaluate`` can count.
- :func:`export`: what ``mobilenet export`` does, in one call.

ONNX needs ``pip install 'mobilenet[onnx]'``; ExecuTorch ``pip install executorch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mobilenet.errors import ExportError
from mobilenet.export.executorch_export import export_executorch
from mobilenet.export.fold import fold_bn, inference_model
from mobilenet.export.metadata import check_writable, export_meta, scratch_folder
from mobilenet.export.onnx_export import DEFAULT_OPSET, export_onnx, read_onnx_meta
from mobilenet.export.quantize import DEFAULT_CALIB_IMAGES, calibration_images, quantize_onnx
from mobilenet.export.runtime import load_exported, read_exported_meta

FORMATS = ("onnx", "executorch")
"""Export formats, by the name ``mobilenet export --format`` takes."""


def export(
    model: nn.Module,
    out: str | Path,
    format: str = "onnx",
    resolution: int | None = None,
    meta: dict[str, Any] | None = None,
    *,
    int8: bool = False,
    calib_data: str | Path | None = None,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    calib_split: str = "train",
    data_root: str | None = None,
) -> dict[str, Any]:
    """Export ``model`` to ``out`` in ``format``, quantized to int8 if asked; returns the file's metadata.

    Every argument is checked (format, model, calibration data, output path) before the export
    starts; a failure at any point leaves no file behind. ``int8`` (ONNX only, for now)
    calibrates on ``calib_images`` images of ``calib_data`` (see :func:`calibration_images`).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    out = Path(out)
    info = export_meta(model, meta, resolution)
    if format == "executorch":
        if int8:
            raise ExportError("--int8 is available for --format onnx only (ExecuTorch int8 through PT2E: not yet)")
        return export_executorch(model, out, info["input_size"], meta=meta)
    if not int8:
        return export_onnx(model, out, info["input_size"], meta=meta)
    if calib_data is None:
        raise ExportError("--int8 needs calibration images: pass --calib-data PATH (a folder or data set name)")
    images = calibration_images(calib_data, info, calib_images, calib_split, data_root)
    check_writable(out)
    with scratch_folder(out) as work:
        float_file = Path(work) / "float.onnx"
        export_onnx(model, float_file, info["input_size"], meta=meta)
        return quantize_onnx(float_file, out, images)


__all__ = [
    "DEFAULT_CALIB_IMAGES",
    "DEFAULT_OPSET",
    "FORMATS",
    "calibration_images",
    "export",
    "export_executorch",
    "export_onnx",
    "fold_bn",
    "inference_model",
    "load_exported",
    "quantize_onnx",
    "read_exported_meta",
    "read_onnx_meta",
]
