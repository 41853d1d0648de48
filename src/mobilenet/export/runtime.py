"""Running exported files: the right runtime for a file, chosen by its content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobilenet.errors import ExportError
from mobilenet.export.executorch_export import ExecuTorchClassifier, read_executorch_meta
from mobilenet.export.metadata import ExportedClassifier
from mobilenet.export.onnx_export import OnnxClassifier, read_onnx_meta
from mobilenet.export.pt2e import Pt2Classifier, read_pt2_meta

PTE_MAGIC = b"ET"  # an ExecuTorch program's flatbuffer identifier (``ET12``) starts at byte 4
ZIP_MAGIC = b"PK"  # torch.export.save writes a zip archive


def exported_format(path: str | Path) -> str:
    """``executorch`` for a ``.pte`` program, ``pt2`` for a ``torch.export`` archive, else ``onnx``.

    (ONNX's reader says if the file is not one.)
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such exported model: {path}")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:6] == PTE_MAGIC:
        return "executorch"
    return "pt2" if head[:2] == ZIP_MAGIC else "onnx"


READERS = {"executorch": read_executorch_meta, "pt2": read_pt2_meta, "onnx": read_onnx_meta}
RUNNERS = {"executorch": ExecuTorchClassifier, "pt2": Pt2Classifier}


def read_exported_meta(path: str | Path) -> dict[str, Any]:
    """The metadata an exported file carries (ONNX, .pt2) or has beside it (ExecuTorch)."""
    return READERS[exported_format(path)](path)


def load_exported(path: str | Path, threads: int | None = None) -> tuple[ExportedClassifier, dict[str, Any]]:
    """An exported file as a callable classifier, and its metadata as ``eval`` needs it.

    ``threads`` applies to ONNX Runtime (default: PyTorch's intra-op count). The metadata's
    ``classes`` are those of the classifier's outputs (without Google's background class), so
    its ``label_offset`` is 0.
    """
    kind = exported_format(path)
    model = OnnxClassifier(path, threads) if kind == "onnx" else RUNNERS[kind](path)
    if model.classes is None:
        raise ExportError(f"{path} names no classes: export it from a checkpoint or weights that do")
    return model, {**model.meta, "classes": model.classes, "label_offset": 0}
