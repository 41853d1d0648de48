"""Our own format: a ``.safetensors`` file of the model's state dict with its model card.

The safetensors header's metadata holds the card (:class:`mobilenet.card.ModelCard`, JSON)
under the key ``mobilenet``. Training checkpoints (``best.safetensors``, ``last.safetensors``)
and converted weights are the same format. Files written before the card existed carry older
metadata, which :meth:`ModelCard.from_dict` reads. Reading runs no code from the file and
guesses nothing: the model is rebuilt from the card and loaded strictly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import WeightsError
from mobilenet.fileio import atomic_write_bytes
from mobilenet.weights.formats import read_safetensors

META_KEY = "mobilenet"


def save_native(model: nn.Module, card: ModelCard, path: str | Path) -> Path:
    """Write ``model``'s weights with ``card`` atomically; a one-line :class:`WeightsError` if it cannot.

    The card's classes must match the model's outputs (after ``reset_classifier``, give the
    card of the new classes: ``card.with_classes(names)``).
    """
    path = Path(path)
    outputs = getattr(model, "num_classes", card.num_classes)
    if card.classes is not None and len(card.classes) != outputs:
        raise WeightsError(f"the card names {len(card.classes)} classes, the model has {outputs} outputs")
    config = getattr(model, "config", None)
    card = card.replace(kwargs=dict(config)) if config is not None else card
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    text = json.dumps(card.to_dict())
    try:
        atomic_write_bytes(path, save(state, metadata={META_KEY: text}))  # bytes: a full disk is an OSError
    except OSError as err:
        raise WeightsError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def is_native(metadata: dict[str, str]) -> bool:
    """Whether a safetensors file's metadata is ours."""
    return META_KEY in metadata


def native_card(metadata: dict[str, str], path: Path) -> ModelCard:
    """The card in a native file's safetensors metadata, or a :class:`WeightsError` naming the file."""
    try:
        data = json.loads(metadata[META_KEY])
    except (ValueError, RecursionError) as err:  # bad JSON, or nested past the parser's depth
        raise WeightsError(f"{path}: corrupt metadata ({err})") from err
    return ModelCard.from_dict(data, str(path))


def read_native(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """The state dict and card of a file written by :func:`save_native` (or a training checkpoint)."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    if not is_native(metadata):
        raise WeightsError(
            f"{path}: a safetensors file without our metadata (key {META_KEY!r}): not written by save_native"
        )
    return tensors, native_card(metadata, path)
