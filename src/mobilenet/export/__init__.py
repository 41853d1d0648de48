"""Deployment: the folded inference graph, exported files, int8 quantization, running exported files.

- :func:`fold_bn`, :func:`inference_model`: conv + BN as one convolution; TF-SAME padding frozen.
- :func:`export_onnx` (the model card inside), :func:`export_executorch` (XNNPACK ``.pte``, the
  card in ``<file>.json`` beside it) and :func:`export_pt2` (``torch.export`` archive run by
  Inductor, the card inside), :func:`export_openvino` (OpenVINO IR ``.xml`` + ``.bin``, the card
  inside; int8 through NNCF); :func:`read_exported_card`.
- :func:`calibration_images`; int8 with :func:`quantize_onnx` (ONNX Runtime, QDQ, per-channel)
  or :func:`quantize_pt2e` (PyTorch PT2E with the x86 or XNNPACK quantizer).
- :func:`load_exported`: an exported file as a classifier that ``mobilenet.evaluate`` can count.
- :mod:`.qat`: quantization-aware training's prepare and convert steps (training runs between).
- :func:`export`: what ``mobilenet export`` does, in one call.

ONNX needs ``pip install 'mobilenet[onnx]'``; ExecuTorch ``pip install executorch``; OpenVINO
``pip install 'mobilenet[openvino]'``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError
from mobilenet.export.executorch_export import export_executorch
from mobilenet.export.fold import fold_bn, inference_model
from mobilenet.export.metadata import check_writable, export_card, scratch_folder
from mobilenet.export.onnx_export import DEFAULT_OPSET, export_onnx, read_onnx_card
from mobilenet.export.openvino_export import DEFAULT_MAX_DROP, export_openvino
from mobilenet.export.pt2e import QUANTIZERS, compile_for_cpu, export_pt2, quantize_pt2e
from mobilenet.export.quantize import DEFAULT_CALIB_IMAGES, calibration_images, quantize_onnx
from mobilenet.export.runtime import load_exported, read_exported_card

FORMATS = ("onnx", "executorch", "pt2", "openvino")
"""Export formats, by the name ``mobilenet export --format`` takes."""


def export(
    model: nn.Module,
    out: str | Path,
    format: str = "onnx",
    resolution: int | None = None,
    card: ModelCard | None = None,
    *,
    int8: bool = False,
    calib_data: str | Path | None = None,
    calib_images: int = DEFAULT_CALIB_IMAGES,
    calib_split: str = "train",
    data_root: str | None = None,
    per_channel: bool = True,
    reduce_range: bool | None = None,
    max_drop: float | None = DEFAULT_MAX_DROP,
    nncf_preset: str | None = None,
) -> ModelCard:
    """Export ``model`` to ``out`` in ``format``, quantized to int8 if asked; returns the file's card.

    Every argument is checked (format, model, calibration data, output path) before the export
    starts; a failure at any point leaves no file behind. ``int8`` calibrates on ``calib_images``
    images of ``calib_data`` (see :func:`calibration_images`) and quantizes for the format's
    runtime (onnx: ONNX Runtime static QDQ; pt2: PT2E with the x86 Inductor quantizer;
    executorch: PT2E with the XNNPACK quantizer; openvino: NNCF, accuracy-controlled so that at
    most ``max_drop`` of the calibration images change class, None: plain; ``nncf_preset``
    ``performance`` or ``mixed``, None: mixed where the graph has hard-swish), weights per output
    channel or (``per_channel=False``; not for ``pt2`` and ``openvino``) one scale per tensor;
    ``reduce_range`` (onnx: 7-bit weights, pt2: 7-bit activations) avoids the saturation of x86's
    uint8 x int8 multiply on CPUs without VNNI; ``None``: onnx picks by measurement
    (:func:`quantize_onnx`), pt2 reduces.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if nncf_preset is not None and not (int8 and format == "openvino"):
        raise ExportError("--nncf-preset is for --format openvino --int8")
    out = Path(out)
    info = export_card(model, card, resolution)
    images = None
    if int8:
        if calib_data is None:
            raise ExportError("--int8 needs calibration images: pass --calib-data PATH (a folder or data set name)")
        if not per_channel and format in ("pt2", "openvino"):
            raise ExportError(f"--format {format} quantizes weights per channel only")
        images = calibration_images(calib_data, info, calib_images, calib_split, data_root)
    if format == "executorch":
        return export_executorch(model, out, info.input_size, card=card, calib_images=images, per_channel=per_channel)
    if format == "openvino":
        return export_openvino(
            model, out, info.input_size, card=card, calib_images=images, max_drop=max_drop, preset=nncf_preset
        )
    if format == "pt2":
        pt2_reduce = True if reduce_range is None else reduce_range
        return export_pt2(model, out, info.input_size, card=card, calib_images=images, reduce_range=pt2_reduce)
    if images is None:
        return export_onnx(model, out, info.input_size, card=card)
    check_writable(out)
    with scratch_folder(out) as work:
        float_file = Path(work) / "float.onnx"
        export_onnx(model, float_file, info.input_size, card=card)
        return quantize_onnx(float_file, out, images, per_channel=per_channel, reduce_range=reduce_range)


__all__ = [
    "DEFAULT_CALIB_IMAGES",
    "DEFAULT_OPSET",
    "FORMATS",
    "QUANTIZERS",
    "calibration_images",
    "compile_for_cpu",
    "export",
    "export_executorch",
    "export_onnx",
    "export_openvino",
    "export_pt2",
    "fold_bn",
    "inference_model",
    "load_exported",
    "quantize_onnx",
    "quantize_pt2e",
    "read_exported_card",
    "read_onnx_card",
]
