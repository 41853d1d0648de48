"""Running exported files: the right runtime for a file, chosen by its content."""

from __future__ import annotations

from pathlib import Path

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError
from mobilenet.export.executorch_export import ExecuTorchClassifier, read_executorch_card
from mobilenet.export.metadata import ExportedClassifier
from mobilenet.export.onnx_export import OnnxClassifier, read_onnx_card
from mobilenet.export.openvino_export import IR_SUFFIX, OpenVinoClassifier, read_openvino_card
from mobilenet.export.pt2e import Pt2Classifier, read_pt2_card

PTE_MAGIC = b"ET"  # an ExecuTorch program's flatbuffer identifier (``ET12``) starts at byte 4
ZIP_MAGIC = b"PK"  # torch.export.save writes a zip archive
FORMAT_SUFFIXES = {"onnx": ".onnx", "executorch": ".pte", "pt2": ".pt2", "openvino": IR_SUFFIX}
"""How each export format's files are named (the runtimes take them by these suffixes)."""
EXPORTED_SUFFIXES = tuple(FORMAT_SUFFIXES.values())


def exported_format(path: str | Path) -> str:
    """``openvino`` for an ``.xml`` IR, ``executorch`` for a ``.pte`` program, ``pt2`` for a ``torch.export``
    archive, else ``onnx``.

    (The readers say if the file is not one.)
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such exported model: {path}")
    if path.suffix.lower() == IR_SUFFIX:
        return "openvino"
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:6] == PTE_MAGIC:
        return "executorch"
    return "pt2" if head[:2] == ZIP_MAGIC else "onnx"


READERS = {
    "executorch": read_executorch_card,
    "pt2": read_pt2_card,
    "onnx": read_onnx_card,
    "openvino": read_openvino_card,
}
RUNNERS = {"executorch": ExecuTorchClassifier, "pt2": Pt2Classifier}
THREADED_RUNNERS = {"onnx": OnnxClassifier, "openvino": OpenVinoClassifier}


def read_exported_card(path: str | Path) -> ModelCard:
    """The card an exported file carries (ONNX, .pt2, OpenVINO IR) or has beside it (ExecuTorch)."""
    return READERS[exported_format(path)](path)


def load_exported(path: str | Path, threads: int | None = None) -> tuple[ExportedClassifier, ModelCard]:
    """An exported file as a callable classifier, and its card.

    ``threads`` applies to ONNX Runtime and OpenVINO (default: PyTorch's intra-op count). The card's
    ``classes`` are those of the classifier's outputs (without Google's background class), so
    its ``label_offset`` is 0.
    """
    kind = exported_format(path)
    model = THREADED_RUNNERS[kind](path, threads) if kind in THREADED_RUNNERS else RUNNERS[kind](path)
    if model.classes is None:
        raise ExportError(f"{path} names no classes: export it from a checkpoint or weights that do")
    card = model.card
    return model, card.replace(
        classes=tuple(model.classes), label_offset=0, kwargs={**card.kwargs, "num_classes": len(model.classes)}
    )
