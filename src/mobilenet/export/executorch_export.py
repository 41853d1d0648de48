"""ExecuTorch: a ``.pte`` program for the XNNPACK backend, and running one with ExecuTorch's runtime.

The folded inference model is captured by ``torch.export`` (batch dimension dynamic up to
``max_batch``, XNNPACK needs an upper bound), lowered with the XNNPACK partitioner (every
convolution, clamp, mean and linear is delegated) and serialised. A ``.pte`` has no place for
free-form metadata, so it sits beside its metadata: ``model.pte`` and ``model.pte.json``.
"""

from __future__ import annotations

import json
import os
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
    scratch_folder,
    unexpressible,
)
from mobilenet.export.pt2e import capture, quantize_pt2e

INSTALL = "executorch"
DEFAULT_MAX_BATCH = 64


def sidecar(path: Path) -> Path:
    """Where the metadata of the program ``path`` lives: ``<path>.json``."""
    return path.with_name(path.name + ".json")


def export_executorch(
    model: nn.Module,
    path: str | Path,
    resolution: int | None = None,
    *,
    card: ModelCard | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    calib_images: torch.Tensor | None = None,
    per_channel: bool = True,
) -> ModelCard:
    """Write ``model`` as an XNNPACK ExecuTorch program ``path`` and its metadata ``<path>.json``.

    The program takes ``resolution x resolution`` inputs in batches of 1 to ``max_batch``; with
    ``calib_images`` it is int8 (PT2E with ExecuTorch's ``XNNPACKQuantizer``: int8 per-channel
    weights, or per tensor, int8 activations). Both files appear only when both are complete; the card is
    returned.
    """
    path = Path(path)
    info = export_card(model, card, resolution)
    info = info.replace(extra={**info.extra, "max_batch": max_batch})
    check_writable(path)
    graph = inference_model(model, info.input_size)
    buffer = pte_program(graph, info.input_size, max_batch, calib_images, per_channel)
    if calib_images is not None:
        info = info.replace(
            quantization={
                "runtime": "executorch-xnnpack",
                "format": "PT2E (XNNPACKQuantizer)",
                "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
                "activations": "int8",
                "calibration": "min/max",
                "calib_images": len(calib_images),
            }
        )
    with scratch_folder(path) as work:
        program_tmp, meta_tmp = Path(work) / "program.pte", Path(work) / "meta.json"
        try:
            program_tmp.write_bytes(buffer)
            meta_tmp.write_text(json.dumps(info.to_dict()))
            os.replace(meta_tmp, sidecar(path))
            try:
                os.replace(program_tmp, path)
            except OSError:
                sidecar(path).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise ExportError(f"cannot write {path}: {err.strerror or err}; nothing was written") from err
    return info


def pte_program(
    graph: nn.Module,
    resolution: int,
    max_batch: int = DEFAULT_MAX_BATCH,
    calib_images: torch.Tensor | None = None,
    per_channel: bool = True,
) -> bytes:
    """The XNNPACK ExecuTorch program of an inference model (any image classifier), int8 with ``calib_images``.

    Raises :class:`ExportError` naming the operator when the model uses one that ExecuTorch cannot express.
    """
    if calib_images is not None:
        graph = quantize_pt2e(graph, calib_images, "xnnpack", per_channel=per_channel, max_batch=max_batch)
    # Traced at the largest batch: ExecuTorch's runtime refuses inputs past a bound derived from the
    # example (traced at batch 2, batches of 16 and more fail with error 0x10 even below max_batch).
    return lower_xnnpack(capture(graph, resolution, max_batch, example_batch=max_batch))


def lower_xnnpack(program: torch.export.ExportedProgram) -> bytes:
    """An exported program lowered to ExecuTorch with XNNPACK's partitioner, serialised as a ``.pte``."""
    exir = require("executorch.exir", INSTALL)
    xnnpack = require("executorch.backends.xnnpack.partition.xnnpack_partitioner", INSTALL)
    try:
        lowered = exir.to_edge_transform_and_lower(program, partitioner=[xnnpack.XnnpackPartitioner()])
    except Exception as err:  # exir's SpecViolationError names an operator outside its opset
        raise unexpressible("ExecuTorch", err) from err
    return lowered.to_executorch().buffer


def load_method(path: str | Path) -> Any:
    """The ``forward`` method of the ``.pte`` program ``path``, loaded by ExecuTorch's runtime."""
    runtime = require("executorch.runtime", INSTALL)
    try:
        return runtime.Runtime.get().load_program(Path(path)).load_method("forward")
    except Exception as err:  # the runtime raises RuntimeError / ValueError with its reason
        raise ExportError(f"ExecuTorch cannot load {path}: {err}") from err


def read_executorch_card(path: str | Path) -> ModelCard:
    """The card :func:`export_executorch` wrote beside ``path``."""
    meta_path = sidecar(Path(path))
    if not meta_path.is_file():
        raise ExportError(f"{path} has no metadata beside it ({meta_path}): export it with `mobilenet export`")
    try:
        text = meta_path.read_text(encoding="utf-8")
    except OSError as err:
        raise ExportError(f"cannot read {meta_path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ExportError(f"{meta_path} is not UTF-8 text ({err})") from err
    return exported_card(text, meta_path)


class ExecuTorchClassifier(ExportedClassifier):
    """An exported ``.pte`` run by ExecuTorch's runtime (XNNPACK); batches over ``max_batch`` are split."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(read_executorch_card(path))
        self.method = load_method(path)
        self.max_batch = int(self.card.extra.get("max_batch", DEFAULT_MAX_BATCH))

    def run(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.method.execute([chunk])[0] for chunk in images.split(self.max_batch)])
