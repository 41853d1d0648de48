"""Hugging Face ``save_pretrained`` folders: ``config.json``, the weights and the preprocessor config.

Read as data (JSON, safetensors or a weights-only PyTorch file); which ``model_type`` is which
of our architectures is its converter's business (:mod:`mobilenet.weights.converters`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mobilenet.errors import WeightsError
from mobilenet.weights.formats import read_tensor_file

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HFFolder:
    """A ``save_pretrained`` folder's tensors, ``config.json`` and ``preprocessor_config.json`` ({} if absent)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    config: dict
    processor: dict


def read_hf_folder(folder: Path) -> HFFolder:
    """The contents of a Hugging Face ``save_pretrained`` folder; a one-line error for any other folder."""
    names = sorted(p.name for p in folder.iterdir())
    weights = next((folder / name for name in HF_WEIGHT_FILES if name in names), None)
    if "config.json" not in names or weights is None:
        raise WeightsError(
            f"{folder}: a folder of weights must be a Hugging Face save_pretrained folder (config.json and "
            f"{' or '.join(HF_WEIGHT_FILES)}) or a training run (best.safetensors); found "
            f"{', '.join(names[:6]) or 'nothing'}"
        )
    config = _read_json(folder / "config.json")
    processor = _read_json(folder / "preprocessor_config.json") if "preprocessor_config.json" in names else {}
    tensors, _ = read_tensor_file(weights)
    return HFFolder(folder, tensors, config, processor)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise WeightsError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value
