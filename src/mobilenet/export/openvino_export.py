"""OpenVINO: the IR (``.xml`` + ``.bin``) of the exported ONNX graph, int8 through NNCF, running IR files.

The IR is converted (``openvino.convert_model``) from the graph :func:`~.onnx_export.onnx_proto`
writes (BN folded, static TF-SAME pads, symbolic batch), so ONNX Runtime and OpenVINO run the
same graph; ``timm`` and ``torchvision`` peers go through the same two steps. The model card is
stored in the IR's ``rt_info`` under ``mobilenet`` (JSON), as ONNX files store it in their metadata.

int8 is NNCF's post-training quantization on calibration images, int8 weights per output channel
and int8 activations: symmetric (NNCF's ``performance`` preset) unless the graph has hard-swish,
whose outputs dip to -0.375 below a top of several units, where symmetric int8 spends half its grid
on that dip; those graphs (the non-minimalistic V3s) take the ``mixed`` preset, asymmetric
activations (:func:`nncf_preset`). Activation ranges are the global minimum and maximum over the
calibration images (NNCF's default, the mean of each image's, cut off the activations that few
images reach: a V3-Large trained on Flowers-17 read 19 dB of logit SQNR with it, 32 dB with global
ranges; docs/RESULTS.md, "V3 in int8 on OpenVINO"). With ``max_drop`` it is
accuracy-controlled: when the int8 model's top-1 agrees with the float model's on fewer than
``1 - max_drop`` of the calibration images, NNCF returns the most sensitive layers to float until
it does (the agreement needs no labels, so any calibration folder will do), at most
:data:`MAX_FLOAT_LAYERS` of them: each round re-runs the calibration images, and a network whose
int8 reading disagrees with its float one everywhere (Google's uint8-trained V3-Small) would
otherwise take one round per layer. A budget not met is said in a warning and in the card.

IR files run on OpenVINO's CPU plugin with a set thread count and fp32 inference precision: on
CPUs with AVX512-BF16 or AMX the plugin's default is bf16, which would make an "fp32" row bf16.
The IR keeps its batch dynamic; a runner compiles a static copy for each of the first few input
shapes it meets, which OpenVINO runs faster than the dynamic graph (1.1-1.25x for the V3s at batch 1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError
from mobilenet.export.fold import inference_model
from mobilenet.export.metadata import ExportedClassifier, check_writable, export_card, exported_card, require
from mobilenet.export.onnx_export import DEFAULT_OPSET, onnx_proto

INSTALL = "'mobilenet[openvino]'"
META_KEY = "mobilenet"
IR_SUFFIX = ".xml"
DEFAULT_MAX_DROP = 0.005
"""Accuracy budget of int8 export: at most this share of the calibration images may change top-1 class."""
MAX_FLOAT_LAYERS = 8
"""The most layers accuracy-controlled int8 export returns to float (one NNCF round each)."""
ASYMMETRIC_ACTIVATIONS = frozenset({"HSwish", "Swish"})
"""OpenVINO ops whose outputs go a little below zero: int8 activations after them are asymmetric."""
STATIC_SHAPES = 4
"""Input shapes a runner compiles a static model for (the first it sees; :func:`ov_runner`)."""


def ir_model(graph: nn.Module, resolution: int) -> Any:
    """The OpenVINO model (``openvino.Model``) of an inference graph (ours folded, or any image classifier)."""
    require("openvino", INSTALL)
    with tempfile.TemporaryDirectory() as work:
        onnx_file = Path(work) / "graph.onnx"
        onnx_file.write_bytes(onnx_proto(graph, resolution, DEFAULT_OPSET).SerializeToString())
        return ir_from_onnx(onnx_file)


def ir_from_onnx(path: str | Path) -> Any:
    """The OpenVINO model of an ONNX file, converted in memory."""
    ov = require("openvino", INSTALL)
    try:
        return ov.convert_model(str(path))
    except Exception as err:  # OpenVINO's frontends raise their own exception types
        raise ExportError(f"OpenVINO cannot convert {path}: {str(err).strip().splitlines()[-1]}") from err


def quantize_ir(
    model: Any, calib_images: torch.Tensor, max_drop: float | None = DEFAULT_MAX_DROP, preset: str | None = None
) -> tuple[Any, float]:
    """``model`` quantized to int8 by NNCF on ``calib_images``, and its top-1 agreement with ``model`` on them.

    ``max_drop`` (a fraction; None: plain post-training quantization) bounds the share of
    calibration images whose top-1 class may change; NNCF keeps layers in float to stay within it.
    ``preset`` is NNCF's (``performance`` or ``mixed``; None: :func:`nncf_preset`'s choice).
    Activation ranges are the calibration images' global minimum and maximum (see the module's docstring).
    """
    nncf = require("nncf", INSTALL)
    nncf.set_log_level(logging.WARNING)  # its INFO lines go to stdout, where `--json` output goes
    images = [image.unsqueeze(0).float().contiguous().numpy() for image in calib_images]
    calibration = nncf.Dataset(images)
    preset = nncf.QuantizationPreset(preset or nncf_preset(model))
    estimators = require("nncf.quantization.range_estimator", INSTALL).RangeEstimatorParametersSet
    ranges = nncf.AdvancedQuantizationParameters(activations_range_estimator_params=estimators.MINMAX)
    float_run = ov_runner(model, None)
    validation_items = [(image, int(float_run(torch.from_numpy(image)).argmax())) for image in images]
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars
        if max_drop is None:
            quantized = nncf.quantize(
                model, calibration, preset=preset, subset_size=len(images), advanced_parameters=ranges
            )
        else:
            validation = nncf.Dataset(validation_items, lambda item: item[0])
            quantized = nncf.quantize_with_accuracy_control(
                model,
                calibration,
                validation,
                _agreement,
                max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                preset=preset,
                subset_size=len(images),
                advanced_quantization_parameters=ranges,
                advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                    max_num_iterations=MAX_FLOAT_LAYERS
                ),
            )
    int8_run = ov_runner(quantized, None)
    hits = [int(int8_run(torch.from_numpy(image)).argmax()) == label for image, label in validation_items]
    return quantized, sum(hits) / len(hits)


def nncf_preset(model: Any) -> str:
    """NNCF's quantization preset for an OpenVINO model: ``mixed`` where it has hard-swish, else ``performance``."""
    return "mixed" if any(op.get_type_name() in ASYMMETRIC_ACTIVATIONS for op in model.get_ops()) else "performance"


def _agreement(compiled: Any, items: Any) -> tuple[float, list[float]]:
    """NNCF's validation function: the share of ``(image, float top-1)`` items whose top-1 ``compiled`` keeps."""
    hits = [float(compiled(image)[0].argmax() == label) for image, label in items]
    return sum(hits) / len(hits), hits


def export_openvino(
    model: nn.Module,
    path: str | Path,
    resolution: int | None = None,
    *,
    card: ModelCard | None = None,
    calib_images: torch.Tensor | None = None,
    max_drop: float | None = DEFAULT_MAX_DROP,
    preset: str | None = None,
) -> ModelCard:
    """Write ``model`` as an OpenVINO IR ``path`` (``.xml``; weights in the ``.bin`` beside it), int8 if calibrated.

    The file's card (see :func:`~mobilenet.export.metadata.export_card`), with ``quantization``
    saying how it was made int8, is stored inside the IR and returned. Both files appear only when
    complete (the ``.xml`` last). ``preset`` is NNCF's for int8 (None: :func:`nncf_preset`'s choice).
    """
    path = Path(path)
    if path.suffix.lower() != IR_SUFFIX:
        raise ExportError(f"an OpenVINO IR is an .xml file (weights in .bin beside it): got --out {path}")
    ov = require("openvino", INSTALL)
    info = export_card(model, card, resolution)
    check_writable(path)
    graph = ir_model(inference_model(model, info.input_size), info.input_size)
    if calib_images is not None:
        preset = preset or nncf_preset(graph)
        graph, agreement = quantize_ir(graph, calib_images, max_drop, preset)
        if max_drop is not None and agreement < 1 - max_drop:
            warnings.warn(
                f"int8 keeps the float top-1 on {agreement:.1%} of the calibration images, short of the "
                f"{1 - max_drop:.1%} asked, with {MAX_FLOAT_LAYERS} layers returned to float; the file is "
                "written (a larger --max-drop or more calibration images may do better)",
                stacklevel=2,
            )
        info = info.replace(
            quantization={
                "runtime": "openvino",
                "tool": f"nncf {require('nncf', INSTALL).__version__}",
                "preset": preset,
                "weights": "int8 per-channel",
                "activations": "int8 asymmetric" if preset == "mixed" else "int8 symmetric",
                "activation_ranges": "global min/max",
                "calib_images": len(calib_images),
                "max_drop": max_drop,
                "max_float_layers": None if max_drop is None else MAX_FLOAT_LAYERS,
                "int8_layers": _count_ops(graph, "FakeQuantize"),
                "calib_top1_agreement": agreement,
            }
        )
    graph.set_rt_info(json.dumps(info.to_dict()), [META_KEY])
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=os.fspath(path.parent)) as work:
        scratch = Path(work) / "model.xml"
        try:
            ov.save_model(graph, str(scratch), compress_to_fp16=False)
            os.replace(scratch.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(scratch, path)
        except (OSError, RuntimeError) as err:
            raise ExportError(f"cannot write {path}: {err}; nothing usable was written") from err
    return info


def _count_ops(model: Any, kind: str) -> int:
    return sum(op.get_type_name() == kind for op in model.get_ops())


def read_ir(path: str | Path) -> Any:
    """The ``openvino.Model`` of the IR ``path``; :class:`ExportError` for a missing, foreign or corrupt file."""
    ov = require("openvino", INSTALL)
    path = Path(path)
    weights = path.with_suffix(".bin")
    if not path.is_file():
        raise ExportError(f"no such exported model: {path}")
    with path.open("rb") as handle:
        if b"<net " not in handle.read(4096):  # OpenVINO would try every frontend on it and log each failure
            raise ExportError(f"{path} is not an OpenVINO IR (no <net> element): export it with `mobilenet export`")
    if not weights.is_file():
        raise ExportError(f"{path} has no weights file beside it: {weights.name} is missing")
    try:
        return ov.Core().read_model(str(path), str(weights))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()
        raise ExportError(f"OpenVINO cannot read {path}: {reason[-1] if reason else 'corrupt IR'}") from err


def read_openvino_card(path: str | Path) -> ModelCard:
    """The card that :func:`export_openvino` stored in the IR ``path``."""
    return _card(read_ir(path), path)


def _card(model: Any, path: str | Path) -> ModelCard:
    if not model.has_rt_info([META_KEY]):
        raise ExportError(f"{path} carries no mobilenet metadata: export it with `mobilenet export`")
    return exported_card(model.get_rt_info([META_KEY]).astype(str), path)


def ov_runner(
    model: Any, threads: int | None = None, static_shapes: int = STATIC_SHAPES
) -> Callable[[torch.Tensor], torch.Tensor]:
    """An ``openvino.Model``'s first output on a float32 CPU batch, compiled for OpenVINO's CPU plugin in fp32.

    The model is compiled as it is (batch dynamic) at once; the first ``static_shapes`` input shapes
    a call brings are each compiled again for that exact shape and run so from then on (OpenVINO plans
    a static graph's memory and kernels once: 1.07-1.25x faster for the V3s at batch 1,
    docs/results/openvino_shapes.md), later shapes run the dynamic model. ``threads`` defaults to
    PyTorch's intra-op count.
    """
    ov = require("openvino", INSTALL)
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32"}
    dynamic = _compile(core, model, config).create_infer_request()
    requests: dict[tuple[int, ...], Any] = {}

    def request_for(shape: tuple[int, ...]) -> Any:
        if shape not in requests and len(requests) < static_shapes:
            fixed = model.clone()
            try:
                fixed.reshape({0: list(shape)})
            except RuntimeError:  # a shape the model cannot take: the dynamic model says why
                requests[shape] = dynamic
            else:
                requests[shape] = _compile(core, fixed, config).create_infer_request()
        return requests.get(shape, dynamic)

    def run(x: torch.Tensor) -> torch.Tensor:
        # shared: OpenVINO reads the batch in place and returns a view of its output (copied before the next call)
        out = request_for(tuple(x.shape)).infer({0: x.contiguous().numpy()}, share_inputs=True, share_outputs=True)
        return torch.from_numpy(out[0].copy())

    return run


def _compile(core: Any, model: Any, config: dict[str, Any]) -> Any:
    try:
        return core.compile_model(model, "CPU", config)
    except RuntimeError as err:
        raise ExportError(f"OpenVINO cannot compile the model: {str(err).strip().splitlines()[-1]}") from err


class OpenVinoClassifier(ExportedClassifier):
    """An OpenVINO IR run by OpenVINO's CPU plugin; ``threads`` defaults to PyTorch's intra-op count."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        model = read_ir(path)
        super().__init__(_card(model, path))
        self.runner = ov_runner(model, threads)

    def run(self, images: torch.Tensor) -> torch.Tensor:
        return self.runner(images)
