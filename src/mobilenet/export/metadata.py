"""What every export format shares: the metadata a file carries, safe writing, the runner interface.

Checkpoints (``load_model``) and converted weights (``load_weights``) describe their model with
slightly different metadata; :func:`export_meta` turns either into the one dictionary an exported
file carries: ``arch``, ``classes``, ``label_offset`` (1 when output 0 is Google's background
class), ``mean``/``std``, ``input_size`` (the exported resolution), ``in_chans``, ``kind``
(``photo`` or ``small``: which evaluation transform fits), ``source`` and ``int8`` (None for a
float file, else how it was quantized). :class:`ExportedClassifier` is what each runtime's
runner implements so that exported files are evaluated by the same code as PyTorch models.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from mobilenet.data.transforms import adapt_stats
from mobilenet.errors import ExportError
from mobilenet.export.fold import check_exportable
from mobilenet.fileio import atomic_write
from mobilenet.models.registry import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.weights.imagenet import classes_for


def export_meta(model: nn.Module, meta: dict[str, Any] | None, resolution: int | None = None) -> dict[str, Any]:
    """The metadata an exported ``model`` carries, from a checkpoint's or converted weights' ``meta``.

    ``resolution`` defaults to the ``input_size`` of ``meta`` (224 without one). Raises
    :class:`ExportError` when ``meta`` names a different number of classes than the model outputs.
    """
    model = check_exportable(model)
    meta = meta or {}
    offset = int(meta.get("label_offset", 0))
    classes = meta.get("classes") or classes_for(model.num_classes)
    if classes is not None and len(classes) != model.num_classes:
        raise ExportError(
            f"the metadata names {len(classes)} classes, the model has {model.num_classes} outputs: "
            "pass the metadata that came with these weights"
        )
    mean, std = adapt_stats(meta.get("mean", IMAGENET_MEAN), meta.get("std", IMAGENET_STD), model.in_chans)
    arch = {**meta.get("kwargs", {}), **meta.get("arch", {})}
    arch.update(width_mult=model.width_mult, num_classes=model.num_classes, in_chans=model.in_chans)
    return {
        "model": meta.get("model", "mobilenet_v1"),
        "arch": arch,
        "classes": list(classes) if classes is not None else None,
        "label_offset": offset,
        "mean": list(mean),
        "std": list(std),
        "input_size": int(resolution or meta.get("input_size", 224)),
        "in_chans": model.in_chans,
        "kind": meta.get("kind", "photo"),
        "source": meta.get("source"),
        "int8": None,
    }


def require(module: str, install: str = "'mobilenet[onnx]'") -> ModuleType:
    """Import an optional dependency of exporting, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ExportError(f"{module.split('.')[0]} is not installed: pip install {install}") from err


def check_writable(path: Path) -> None:
    """Fail early, before any work, when ``path`` cannot be written (its folder is created if needed)."""
    if path.is_dir():
        raise ExportError(f"--out {path} is a folder: pass a file name such as {path / 'model.onnx'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise ExportError(f"cannot write {path}: {err.strerror or err}; choose a writable location") from err


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``atomic_write`` whose OS errors (disk full, permissions) are an :class:`ExportError`."""
    try:
        atomic_write(path, write)
    except OSError as err:
        raise ExportError(f"cannot write {path}: {err.strerror or err}; nothing was written") from err


def scratch_folder(beside: Path) -> tempfile.TemporaryDirectory:
    """A hidden temporary folder beside ``beside`` (same file system: its files can be renamed into place)."""
    return tempfile.TemporaryDirectory(prefix=f".{beside.name}.", dir=os.fspath(beside.parent))


class ExportedClassifier(nn.Module):
    """An exported file run by its runtime, behind the interface of a PyTorch classifier.

    Calling it on a ``(batch, C, R, R)`` tensor returns the logits of :attr:`classes` (Google's
    background output, if any, is dropped) on the input's device, so that
    :func:`mobilenet.evaluate.evaluate` counts it exactly as it counts a PyTorch model.
    Subclasses implement :meth:`run` for one runtime.
    """

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__()
        self.meta = meta
        self.offset = int(meta["label_offset"])
        self.classes: list[str] | None = meta["classes"][self.offset :] if meta["classes"] is not None else None

    def run(self, images: torch.Tensor) -> torch.Tensor:
        """All the model's logits for a contiguous float32 CPU batch."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.run(x.detach().float().cpu().contiguous())
        return logits[:, self.offset :].to(x.device)
