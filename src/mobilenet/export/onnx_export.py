"""ONNX: export (dynamic batch, static TF-SAME pads, metadata inside) and running exported files.

The graph is produced by ``torch.onnx.export(dynamo=True)`` from the folded inference model
(:func:`~mobilenet.export.fold.inference_model`): Conv (with bias), Clip (ReLU6), ReduceMean,
Reshape and Gemm, the batch dimension symbolic and everything else constant. Opset 18 is the
default because it is the oldest opset the exporter implements (it converts to 17 only when it can).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError
from mobilenet.export.fold import inference_model
from mobilenet.export.metadata import (
    ExportedClassifier,
    check_writable,
    export_card,
    exported_card,
    require,
    unexpressible,
    write_atomically,
)

DEFAULT_OPSET = 18
MIN_OPSET = 17
META_KEY = "mobilenet"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


def export_onnx(
    model: nn.Module,
    path: str | Path,
    resolution: int | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    card: ModelCard | None = None,
) -> ModelCard:
    """Write ``model`` as an ONNX file for ``resolution x resolution`` inputs and any batch size.

    ``card`` is the model's card (from :func:`mobilenet.load`); the file's card (see
    :func:`~mobilenet.export.metadata.export_card`) is stored in its ``metadata_props`` under
    ``"mobilenet"`` and returned. The file appears only when complete.
    """
    require("onnx")
    require("onnxscript")  # the dynamo exporter's translation library
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: use {MIN_OPSET} or later (default {DEFAULT_OPSET})")
    path = Path(path)
    info = export_card(model, card, resolution)
    check_writable(path)
    graph = inference_model(model, info.input_size)
    proto = onnx_proto(graph, info.input_size, opset)
    set_card(proto, info)
    write_atomically(path, lambda tmp: tmp.write_bytes(proto.SerializeToString()))
    return info


def onnx_proto(graph: nn.Module, resolution: int, opset: int) -> Any:
    """The ``ModelProto`` of an inference model, with a symbolic batch dimension.

    Raises :class:`ExportError` naming the operator when the model uses one that ONNX cannot express.
    """
    example = torch.zeros(2, getattr(graph, "in_chans", 3), resolution, resolution)
    try:
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            external_data=False,
            verbose=False,
        )
    except torch.onnx.OnnxExporterError as err:  # an operator without an ONNX translation
        raise unexpressible(f"ONNX (opset {opset})", err) from err
    proto = program.model_proto
    produced = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if produced != opset:
        raise ExportError(f"the exporter could not write opset {opset} (it wrote {produced}): use {DEFAULT_OPSET}")
    return proto


def set_card(proto: Any, card: ModelCard) -> None:
    """Store ``card`` (JSON) in the model's ``metadata_props`` under ``"mobilenet"``, replacing any earlier."""
    kept = [p for p in proto.metadata_props if p.key != META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(card.to_dict())


def read_onnx_card(path: str | Path) -> ModelCard:
    """The card that :func:`export_onnx` stored in ``path``; :class:`ExportError` for any other file."""
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such exported model: {path}")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and onnx's own errors
        raise ExportError(f"{path} is not an ONNX model: {err}") from err
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise ExportError(f"{path} carries no mobilenet metadata: export it with `mobilenet export`")
    return exported_card(props[META_KEY], path)


def ort_runner(
    path: str | Path, threads: int | None = None, spin: bool = True
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Any ONNX file's first output on a float32 CPU batch, run by ONNX Runtime's CPU provider.

    ``threads`` defaults to PyTorch's intra-op count. ``spin=False`` stops the intra-op threads from
    spinning while they wait for work (ONNX Runtime's ``session.intra_op.allow_spinning``): a little
    slower alone, but it leaves the cores to other work between calls.
    """
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        runtime = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime's Fail / InvalidGraph carry the reason
        raise ExportError(f"ONNX Runtime cannot load {path}: {err}") from err
    name = runtime.get_inputs()[0].name
    return lambda x: torch.from_numpy(runtime.run(None, {name: x.numpy()})[0])


class OnnxClassifier(ExportedClassifier):
    """An exported ONNX file run by ONNX Runtime (CPU); ``threads`` defaults to PyTorch's intra-op count."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__(read_onnx_card(path))
        self.runner = ort_runner(path, threads)

    def run(self, images: torch.Tensor) -> torch.Tensor:
        return self.runner(images)
