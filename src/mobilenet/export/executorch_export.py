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

from mobilenet.errors import ExportError
from mobilenet.export.fold import inference_model
from mobilenet.export.metadata import ExportedClassifier, check_writable, export_meta, require, scratch_folder

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
    meta: dict[str, Any] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> dict[str, Any]:
    """Write ``model`` as an XNNPACK ExecuTorch program ``path`` and its metadata ``<path>.json``.

    The program takes ``resolution x resolution`` inputs in batches of 1 to ``max_batch``. Both
    files appear only when both are complete; the metadata is returned.
    """
    exir = require("executorch.exir", INSTALL)
    xnnpack = require("executorch.backends.xnnpack.partition.xnnpack_partitioner", INSTALL)
    path = Path(path)
    info = {**export_meta(model, meta, resolution), "max_batch": max_batch}
    check_writable(path)
    graph = inference_model(model, info["input_size"])
    example = torch.zeros(2, graph.in_chans, info["input_size"], info["input_size"])
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.export.export(graph, (example,), dynamic_shapes={"x": {0: batch}})
    lowered = exir.to_edge_transform_and_lower(program, partitioner=[xnnpack.XnnpackPartitioner()])
    buffer = lowered.to_executorch().buffer
    with scratch_folder(path) as work:
        program_tmp, meta_tmp = Path(work) / "program.pte", Path(work) / "meta.json"
        try:
            program_tmp.write_bytes(buffer)
            meta_tmp.write_text(json.dumps(info))
            os.replace(meta_tmp, sidecar(path))
            try:
                os.replace(program_tmp, path)
            except OSError:
                sidecar(path).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise ExportError(f"cannot write {path}: {err.strerror or err}; nothing was written") from err
    return info


def read_executorch_meta(path: str | Path) -> dict[str, Any]:
    """The metadata :func:`export_executorch` wrote beside ``path``."""
    meta_path = sidecar(Path(path))
    if not meta_path.is_file():
        raise ExportError(f"{path} has no metadata beside it ({meta_path}): export it with `mobilenet export`")
    try:
        return json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"cannot read {meta_path}: {err}") from err


class ExecuTorchClassifier(ExportedClassifier):
    """An exported ``.pte`` run by ExecuTorch's runtime (XNNPACK); batches over ``max_batch`` are split."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(read_executorch_meta(path))
        runtime = require("executorch.runtime", INSTALL)
        try:
            self.method = runtime.Runtime.get().load_program(Path(path)).load_method("forward")
        except Exception as err:  # the runtime raises RuntimeError / ValueError with its reason
            raise ExportError(f"ExecuTorch cannot load {path}: {err}") from err
        self.max_batch = int(self.meta["max_batch"])

    def run(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.method.execute([chunk])[0] for chunk in images.split(self.max_batch)])
