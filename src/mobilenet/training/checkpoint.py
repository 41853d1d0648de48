"""Checkpoints: model weights in safetensors (with metadata) plus a resume state.

An output folder holds ``config.json``, ``metrics.jsonl``, and for each of ``last`` and
``best``: ``<tag>.safetensors`` (the weights and, as safetensors metadata, everything needed to
rebuild and use the model: registry name, architecture arguments, class names, mean/std,
input size) and ``<tag>.state.pt`` (optimizer, scheduler, grad scaler, EMA, epoch, step, RNG
states; plain tensors and containers only, so it loads with ``torch.load(weights_only=True)``).
Every file is written atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.errors import MobileNetError, WeightsError
from mobilenet.fileio import atomic_write
from mobilenet.models import create_model
from mobilenet.weights.native import read_model_file, write_model_file

TAGS = ("last", "best")


class CheckpointError(MobileNetError):
    """A checkpoint folder or file that is missing, incomplete or unreadable."""


def save_weights(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Weights as safetensors, with ``meta`` (JSON) in the file's metadata."""
    write_model_file(path, model, meta)


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of a file written by :func:`save_weights`."""
    try:
        return read_model_file(path)
    except WeightsError as err:
        raise CheckpointError(f"cannot read weights: {err}") from err


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Rebuild the (untrained) model a checkpoint's metadata describes."""
    try:
        return create_model(meta["model"], **meta["kwargs"])
    except KeyError as err:
        raise CheckpointError(f"checkpoint metadata lacks {err}: not a mobilenet checkpoint") from err


def checkpoint_file(folder: Path, tag: str = "best") -> Path:
    """``<folder>/<tag>.safetensors`` (or ``folder`` itself if it is such a file), checked to exist."""
    folder = Path(folder)
    path = folder if folder.suffix == ".safetensors" else folder / f"{tag}.safetensors"
    if not path.is_file():
        fallback = folder / "last.safetensors"
        if folder.is_dir() and fallback.is_file():
            return fallback
        raise CheckpointError(f"no checkpoint at {path}: pass a training --out folder holding {tag}.safetensors")
    return path


def load_model(folder: Path, tag: str = "best") -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a checkpoint folder (``best``, else ``last``) and its metadata."""
    tensors, meta = read_weights(checkpoint_file(folder, tag))
    model = model_from_meta(meta)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {folder} does not fit its own architecture: {err}") from err
    return model, meta


def save_checkpoint(folder: Path, tag: str, model: nn.Module, meta: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``<tag>.safetensors`` and ``<tag>.state.pt`` atomically (state first)."""
    atomic_write(folder / f"{tag}.state.pt", lambda tmp: torch.save(state, tmp))
    save_weights(folder / f"{tag}.safetensors", model, meta)


def load_state(folder: Path, tag: str = "last") -> dict[str, Any]:
    """The resume state of ``<folder>/<tag>.state.pt`` (no code is unpickled)."""
    path = Path(folder) / f"{tag}.state.pt"
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} does not exist (no checkpoint was saved in {folder})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged or foreign file
        raise CheckpointError(f"cannot read resume state {path}: {err}") from err
