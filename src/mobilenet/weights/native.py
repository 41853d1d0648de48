"""Our own format: a ``.safetensors`` file of the model's state dict with its metadata.

The safetensors header's metadata holds one JSON object under the key ``mobilenet``:
``arch`` (the ``MobileNetV1`` constructor arguments), ``classes``, ``label_offset``, ``mean``,
``std``, ``input_size``, ``crop_pct``, ``source`` (where the weights came from), ``format`` and
``format_version``; also ``model`` (a registry name) and ``kwargs``, the keys of the weights files
``mobilenet train`` writes, so that either reader takes either file (a training file's
architecture is its registry name's arguments updated by ``kwargs``). Loaded back, ``source`` is
the native file and ``converted_from`` the origin. Reading runs no code from the file and
guesses nothing: the model is rebuilt from ``arch`` and loaded strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from mobilenet.errors import WeightsError
from mobilenet.fileio import atomic_write
from mobilenet.models.registry import get_model_info
from mobilenet.weights.formats import read_safetensors
from mobilenet.weights.layouts import Converted

META_KEY = "mobilenet"
FORMAT_VERSION = 1


def save_native(model: nn.Module, meta: dict[str, Any], path: str | Path) -> Path:
    """Write ``model``'s weights and ``meta`` (as :func:`mobilenet.weights.load_weights` returns it) atomically.

    ``meta["arch"]`` (or, for a model from ``create_model``, ``model.model_info["kwargs"]``) must
    rebuild the model; its ``num_classes`` is taken from the model, so a model whose classifier
    was replaced saves correctly once ``meta["classes"]`` names the new classes (or is None).
    """
    path = Path(path)
    arch = meta.get("arch") or getattr(model, "model_info", {}).get("kwargs")
    if arch is None:
        raise WeightsError(
            "save_native needs meta['arch'], the model's constructor arguments (load_weights returns it)"
        )
    num_classes = getattr(model, "num_classes", arch.get("num_classes"))
    classes = meta.get("classes")
    if classes is not None and len(classes) != num_classes:
        raise WeightsError(f"meta['classes'] names {len(classes)} classes, the model has {num_classes} outputs")
    arch = {**arch, "num_classes": num_classes}
    # "model" + "kwargs" let mobilenet.training.checkpoint.model_from_meta rebuild the model too
    header = {**meta, "arch": arch, "model": meta.get("model", "mobilenet_v1"), "kwargs": arch}
    try:
        write_model_file(path, model, {**header, "format_version": FORMAT_VERSION})
    except OSError as err:
        raise WeightsError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def write_model_file(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """``model``'s state dict as safetensors with ``meta`` (JSON) under :data:`META_KEY`, written atomically.

    The one writer of our weights files: :func:`save_native` and the training checkpoints use it.
    """
    text = json.dumps(meta, default=list)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={META_KEY: text}))


def read_model_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and the raw JSON metadata of a file :func:`write_model_file` wrote ({} if none)."""
    tensors, metadata = read_safetensors(path)
    return tensors, _parse_json(metadata.get(META_KEY, "{}"), path)


def _parse_json(text: str, path: Path) -> Any:
    """Our metadata string parsed, or a :class:`WeightsError` that names the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path}: corrupt metadata ({err})") from err


def is_native(metadata: dict[str, str]) -> bool:
    """Whether a safetensors file's metadata is ours."""
    return META_KEY in metadata


def read_native(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of a file written by :func:`save_native`."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    if not is_native(metadata):
        raise WeightsError(
            f"{path}: a safetensors file without our metadata (key {META_KEY!r}): not written by save_native"
        )
    return tensors, _meta(metadata, path)


def from_native(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> Converted:
    """A native file's contents as the loader's input: ``arch`` is complete, names are ours already."""
    meta = _meta(metadata, path)
    origin = meta.get("converted_from", meta.get("source"))
    return Converted(
        tensors, meta.pop("arch"), {**meta, "format": "native", "source": str(path), "converted_from": origin}
    )


def _meta(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """The metadata of a native file, with ``arch`` completed for a `mobilenet train` checkpoint."""
    meta = _parse_json(metadata[META_KEY], path)
    if isinstance(meta, dict) and "arch" not in meta and {"model", "kwargs"} <= meta.keys():  # a `mobilenet train` file
        meta["arch"] = {**get_model_info(meta["model"]).kwargs, **meta["kwargs"]}
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), dict):
        raise WeightsError(f"{path}: expected metadata with the model's 'arch', found {str(meta)[:80]}")
    if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise WeightsError(
            f"{path}: format version {meta['format_version']} is newer than this package's {FORMAT_VERSION}"
        )
    return meta
