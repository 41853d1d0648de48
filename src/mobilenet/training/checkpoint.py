"""Checkpoints: model weights with their card (native safetensors) plus a resume state.

An output folder holds ``config.json``, ``metrics.jsonl``, and for each of ``last`` and
``best``: ``<tag>.safetensors`` (the weights with their model card: ``mobilenet.load`` reads
them like any native file) and ``<tag>.state.pt`` (optimizer, scheduler, grad scaler, EMA,
epoch, step, RNG states; plain tensors and containers only, so it loads with
``torch.load(weights_only=True)``). Every file is written atomically (a temporary file in the
same folder, flushed, then a rename), and ``<tag>.state.pt`` is written last: it commits the
epoch, so a process killed at any instant leaves a ``last.state.pt`` that ``--resume`` reads.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import MobileNetError
from mobilenet.fileio import atomic_write_bytes
from mobilenet.load import run_file
from mobilenet.weights import save_native

TAGS = ("last", "best")


class CheckpointError(MobileNetError):
    """A checkpoint folder or file that is missing, incomplete or unreadable."""


def state_path(folder: Path, tag: str = "last") -> Path:
    """Where the resume state of ``tag`` lives (its presence means an epoch was committed)."""
    return Path(folder) / f"{tag}.state.pt"


def save_checkpoint(folder: Path, tag: str, model: nn.Module, card: ModelCard, state: dict[str, Any]) -> None:
    """Write ``<tag>.safetensors`` then ``<tag>.state.pt``, each atomically; an :class:`OSError` names the file."""
    save_native(model, card, Path(folder) / f"{tag}.safetensors")
    buffer = io.BytesIO()
    torch.save(state, buffer)  # into memory: written by the file writer, a full disk is an OSError
    atomic_write_bytes(state_path(folder, tag), buffer.getvalue())


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` already holds a training run's checkpoint (committed or being written)."""
    return any((Path(folder) / f"last{suffix}").exists() for suffix in (".safetensors", ".state.pt"))


def load_state(folder: Path, tag: str = "last") -> dict[str, Any]:
    """The resume state of ``<folder>/<tag>.state.pt`` (no code is unpickled; a link out of the folder is refused)."""
    path = run_file(folder, state_path(folder, tag).name)
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} does not exist (no checkpoint was saved in {folder})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"cannot read resume state {path}: {err}") from err
