"""PyTorch state dicts: ours, timm's and Hugging Face's MobileNetV1.

- timm (``mobilenetv1_100``, ``mobilenetv1_100h``, ``mobilenetv1_125``; ``.pth`` or
  ``.safetensors``): symmetric PyTorch padding, 1000 classes, BN epsilon 1e-5 like ours; the
  ``h`` variant's 1x1 ``conv_head`` becomes our ``head_conv``. Normalisation mean = std = 0.5
  (timm's ``IMAGENET_INCEPTION_MEAN``/``STD`` for these weights).
- Hugging Face ``MobileNetV1ForImageClassification`` (a ``save_pretrained`` folder: config.json
  and model.safetensors or pytorch_model.bin): ``config.depth_multiplier`` is our width_mult,
  ``tf_padding`` selects TensorFlow SAME padding, ``layer_norm_eps`` (1e-3 for Google's
  checkpoints) is the BN epsilon, ``id2label`` the class names (1001 with background for the
  ``google/mobilenet_v1_*`` checkpoints).
- Our own names (a training checkpoint's state dict, without metadata).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mobilenet.errors import WeightsError
from mobilenet.models.blocks import ACTIVATIONS
from mobilenet.weights.formats import read_tensor_file
from mobilenet.weights.layouts import LAYOUTS, Converted, rename

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_MODEL_TYPE = "mobilenet_v1"
HF_PREFIX = "mobilenet_v1."  # MobileNetV1ForImageClassification's body; a bare MobileNetV1Model has none
GOOGLE_NORM = (0.5, 0.5, 0.5)  # inputs scaled to [-1, 1], as TF-slim and timm's MobileNetV1 weights expect
OUR_STEM_KEY = "stem.conv.weight"


def layout_of(keys: Mapping[str, Any]) -> str:
    """``ours``, ``timm`` or ``hf``: which library's names a state dict uses."""
    if OUR_STEM_KEY in keys:
        return "ours"
    for name in ("timm", "hf"):
        if LAYOUTS[name].stem_key in keys:
            return name
    raise WeightsError(
        f"unrecognised state dict: expected MobileNetV1 keys named as ours ({OUR_STEM_KEY}), timm's "
        f"({LAYOUTS['timm'].stem_key}) or Hugging Face's ({LAYOUTS['hf'].stem_key}); found {len(keys)} keys "
        f"({', '.join(sorted(keys)[:3])}, ...)"
    )


def from_state_dict(
    tensors: Mapping[str, torch.Tensor], source: str, hf_config: dict | None = None, hf_processor: dict | None = None
) -> Converted:
    """A state dict in our, timm's or Hugging Face's names, converted (a one-line error for others).

    ``hf_config`` and ``hf_processor`` are a Hugging Face folder's config.json and
    preprocessor_config.json; without them transformers' defaults apply.
    """
    if LAYOUTS["hf"].stem_key.removeprefix(HF_PREFIX) in tensors:
        tensors = {HF_PREFIX + k if not k.startswith("classifier.") else k: v for k, v in tensors.items()}
    layout = layout_of(tensors)
    if layout == "ours":
        return Converted(dict(tensors), meta={"format": "state_dict", "source": source})
    state = rename(tensors, LAYOUTS[layout], source)
    if layout == "timm":
        meta = {"format": "timm", "source": source, "mean": GOOGLE_NORM, "std": GOOGLE_NORM, "input_size": 224}
        return Converted(state, {"padding": "torch", "act": "relu6"}, meta)
    return _from_hf(state, hf_config or {}, hf_processor or {}, source)


def _from_hf(state: dict[str, torch.Tensor], config: dict, processor: dict, source: str) -> Converted:
    """Hugging Face weights with their config (transformers' defaults where a key is absent)."""
    act = config.get("hidden_act", "relu6")
    if act not in ACTIVATIONS:
        raise WeightsError(f"{source}: hidden_act {act!r} is not supported: expected one of {', '.join(ACTIVATIONS)}")
    labels = config.get("id2label") or {}
    names = [labels.get(str(i)) for i in range(_num_classes(state))]
    generic = all(re.fullmatch(r"LABEL_\d+", str(name)) for name in names)  # transformers' placeholders
    meta = {
        "format": "hf",
        "source": source,
        "classes": None if generic or None in names else names,
        "mean": tuple(processor.get("image_mean", GOOGLE_NORM)),
        "std": tuple(processor.get("image_std", GOOGLE_NORM)),
        "input_size": int(config.get("image_size", 224)),
    }
    arch = {"padding": "tf_same" if config.get("tf_padding", True) else "torch", "act": act}
    return Converted(state, arch, meta, bn_eps=float(config.get("layer_norm_eps", 1e-3)))


def _num_classes(state: Mapping[str, torch.Tensor]) -> int:
    weight = state.get("classifier.weight")
    return 0 if weight is None else weight.shape[0]


def read_hf_folder(folder: Path) -> Converted:
    """A Hugging Face ``save_pretrained`` folder of ``MobileNetV1ForImageClassification`` (or its body)."""
    names = sorted(p.name for p in folder.iterdir())
    weights = next((folder / name for name in HF_WEIGHT_FILES if name in names), None)
    if "config.json" not in names or weights is None:
        raise WeightsError(
            f"{folder}: a folder of weights must be a Hugging Face save_pretrained folder (config.json and "
            f"{' or '.join(HF_WEIGHT_FILES)}); found {', '.join(names[:6]) or 'nothing'}"
        )
    config = _read_json(folder / "config.json")
    if config.get("model_type") != HF_MODEL_TYPE:
        raise WeightsError(
            f"{folder}: expected a Hugging Face MobileNetV1 (config.json model_type {HF_MODEL_TYPE!r}), "
            f"found model_type {config.get('model_type')!r}"
        )
    processor = _read_json(folder / "preprocessor_config.json") if "preprocessor_config.json" in names else {}
    tensors, _ = read_tensor_file(weights)
    return from_state_dict(tensors, str(folder), config, processor)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise WeightsError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value
