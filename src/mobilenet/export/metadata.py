"""What every export format shares: the card a file carries, safe writing, the runner interface.

Every exported file carries the model card (:class:`mobilenet.card.ModelCard`) of its model at
the exported resolution, with ``quantization`` saying how it was made int8 (None: float).
:class:`ExportedClassifier` is what each runtime's runner implements so that exported files are
evaluated by the same code as PyTorch models.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.data.transforms import adapt_stats
from mobilenet.errors import ExportError, WeightsError
from mobilenet.export.fold import check_exportable
from mobilenet.fileio import atomic_write
from mobilenet.weights.imagenet import classes_for


def export_card(model: nn.Module, card: ModelCard | None, resolution: int | None = None) -> ModelCard:
    """The card an exported ``model`` carries: ``card`` at the exported ``resolution`` (default: the card's).

    Without a card (a model fresh from ``create_model``) the model describes itself: ImageNet's
    classes for 1000 outputs, none otherwise. Raises :class:`ExportError` when the card names a
    different number of classes than the model outputs.
    """
    model = check_exportable(model)
    if card is None:
        card = ModelCard(model.arch, classes=_tuple(classes_for(model.num_classes)), in_chans=model.in_chans)
    if card.classes is not None and len(card.classes) != model.num_classes:
        raise ExportError(
            f"the card names {len(card.classes)} classes, the model has {model.num_classes} outputs: "
            "pass the card that came with these weights"
        )
    mean, std = adapt_stats(card.mean, card.std, model.in_chans)
    return card.replace(
        arch=model.arch,
        kwargs=dict(model.config),
        in_chans=model.in_chans,
        mean=mean,
        std=std,
        input_size=int(resolution or card.input_size),
        quantization=None,
    )


def _tuple(classes: list[str] | None) -> tuple[str, ...] | None:
    return tuple(classes) if classes is not None else None


def exported_card(text: str, path: str | Path) -> ModelCard:
    """The card stored (as JSON ``text``) in the exported file ``path``; an :class:`ExportError` if unreadable."""
    try:
        return ModelCard.from_dict(json.loads(text), str(path))
    except (ValueError, RecursionError, WeightsError) as err:  # bad JSON, or nested past the parser's depth
        raise ExportError(f"{path}: unreadable mobilenet metadata ({err})") from err


OP_PATTERNS = (
    re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)', overload='(\w+)'\)>"),
    re.compile(r"Operator torch\._ops\.([\w.]+) is not in Core ATen opset"),
    re.compile(r"Unsupported FX nodes: \{'call_function': \['([\w.]+)'"),
)
"""Where the exporters' messages name the operator they could not translate."""


def unexpressible(fmt: str, err: BaseException) -> ExportError:
    """The one-line error for a model that the format ``fmt`` cannot express, naming the operator if it can be found.

    ``err`` is the exporter's own (multi-line) error; its text is searched for the operator.
    """
    text = str(err)
    for pattern in OP_PATTERNS:
        found = pattern.search(text)
        if found:
            op = ".".join(part for part in found.groups() if part and part != "default")
            return ExportError(
                f"{fmt} cannot express the operator {op} of this model: export another format "
                "or build the model without it"
            )
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    return ExportError(f"{fmt} cannot express this model: {first}")


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

    def __init__(self, card: ModelCard) -> None:
        super().__init__()
        self.card = card
        self.offset = card.label_offset
        self.classes: list[str] | None = card.eval_classes

    def run(self, images: torch.Tensor) -> torch.Tensor:
        """All the model's logits for a contiguous float32 CPU batch."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.run(x.detach().float().cpu().contiguous())
        return logits[:, self.offset :].to(x.device)
