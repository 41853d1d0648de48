"""Checkpoints: model weights with their card (native safetensors) plus a resume state.

An output folder holds ``config.json``, ``metrics.jsonl``, and for each of ``last`` and
``best``: ``<tag>.safetensors`` (the weights with their model card: ``mobilenet.load`` reads
them like any native file) and ``<tag>.state.pt`` (optimizer, scheduler, grad scaler, EMA,
epoch, step, RNG states; plain tensors and containers only, so it loads with
``torch.load(weights_only=True)``). Every file is written atomically: a temporary file in the
same folder, then a rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import MobileNetError
from mobilenet.fileio import atomic_write
from mobilenet.weights import save_native

TAGS = ("last", "best")


class CheckpointError(MobileNetError):
    """A checkpoint folder or file that is missing, incomplete or unreadable."""


def save_checkpoint(folder: Path, tag: str, model: nn.Module, card: ModelCard, state: dict[str, Any]) -> None:
    """Write ``<tag>.state.pt`` then ``<tag>.safetensors``, each atomically."""
    atomic_write(folder / f"{tag}.state.pt", lambda tmp: torch.save(state, tmp))
    save_native(model, card, folder / f"{tag}.safetensors")


def load_state(folder: Path, tag: str = "last") -> dict[str, Any]:
    """The resume state of ``<folder>/<tag>.state.pt`` (no code is unpickled)."""
    path = Path(folder) / f"{tag}.state.pt"
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} does not exist (no checkpoint was saved in {folder})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"cannot read resume state {path}: {err}") from err
