"""Running exported files: the right runtime for a file, chosen by its content."""

from __future__ import annotations

from pathlib import Path

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError
from mobilenet.export.executorch_export import ExecuTorchClassifier, read_executorch_card
from mobilenet.export.metadata import ExportedClassifier
from mobilenet.export.onnx_export import OnnxClassifier, read_onnx_card
from mobilenet.export.pt2e import Pt2Classifier, read_pt2_card

PTE_MAGIC = b"ET"  # an ExecuTorch program's flatbuffer identifier (``ET12``) starts at byte 4
ZIP_MAGIC = b"PK"  # torch.export.save writes a zip archive
EXPORTED_SUFFIXES = (".onnx", ".pte", ".pt2")
"""How exported files are named (the runtimes take them by these suffixes)."""


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


READERS = {"executorch": read_executorch_card, "pt2": read_pt2_card, "onnx": read_onnx_card}
RUNNERS = {"executorch": ExecuTorchClassifier, "pt2": Pt2Classifier}


def read_exported_card(path: str | Path) -> ModelCard:
    """The card an exported file carries (ONNX, .pt2) or has beside it (ExecuTorch)."""
    return READERS[exported_format(path)](path)


def load_exported(path: str | Path, threads: int | None = None) -> tuple[ExportedClassifier, ModelCard]:
    """An exported file as a callable classifier, and its card.

    ``threads`` applies to ONNX Runtime (default: PyTorch's intra-op count). The card's
    ``classes`` are those of the classifier's outputs (without Google's background class), so
    its ``label_offset`` is 0.
    """
    kind = exported_format(path)
    model = OnnxClassifier(path, threads) if kind == "onnx" else RUNNERS[kind](path)
    if model.classes is None:
        raise ExportError(f"{path} names no classes: export it from a checkpoint or weights that do")
    card = model.card
    return model, card.replace(
        classes=tuple(model.classes), label_offset=0, kwargs={**card.kwargs, "num_classes": len(model.classes)}
    )
