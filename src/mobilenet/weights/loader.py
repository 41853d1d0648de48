"""One entry point: any supported weights in, our configured ``MobileNetV1`` out.

:func:`load_weights` reads the source (its format recognised by content), infers the
architecture from the tensors' shapes (width from the last layer's channels, class count from
the classifier, the head convolution if any) and from what the format fixes (padding,
activation), checks it against whatever the caller asked for, and loads the weights strictly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v1 import BODIES, TABLE1, MobileNetV1
from mobilenet.models.registry import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.weights import hub
from mobilenet.weights.formats import detect_format, read_safetensors, read_torch
from mobilenet.weights.from_keras import read_keras
from mobilenet.weights.from_pytorch import from_state_dict, read_hf_folder
from mobilenet.weights.from_tflite import read_tflite
from mobilenet.weights.imagenet import BACKGROUND, BACKGROUND_OFFSET, NUM_CLASSES, classes_for
from mobilenet.weights.layouts import Converted
from mobilenet.weights.native import from_native, is_native

Source = str | Path | Sequence[str | Path]
SHAPING_ARGS = ("width_mult", "in_chans", "head_conv", "body", "block_type")  # fixed by the tensors' shapes
CROP_PCT = 0.875  # the centre crop every published MobileNetV1 was evaluated with (224 of 256)


def load_weights(source: Source, **overrides: Any) -> tuple[MobileNetV1, dict[str, Any]]:
    """Our ``MobileNetV1`` configured from and loaded with the weights in ``source``, and their metadata.

    ``source``: a file (safetensors, PyTorch state dict, Keras .h5, TFLite; recognised by content),
    a Hugging Face ``save_pretrained`` folder, two TFLite files (Google's 1.0-224 body and
    classifier, either order), or a tag (``timm``, ``hf``, ``keras``, ``TAG:VARIANT``) to download.

    ``overrides`` are ``MobileNetV1`` arguments. Those the tensors fix (width_mult, in_chans,
    head_conv, body, block_type) must agree with the weights; ``num_classes=1000`` on Google's
    1001-class weights drops the background class, ``num_classes=0`` drops the classifier; the
    others (dropout, padding, output_stride, features_only...) apply as given.

    The metadata: ``arch`` (the constructor arguments used), ``classes`` (names, or None),
    ``label_offset`` (1 when output 0 is Google's background class: ImageNet class i is output
    i + 1), ``mean``/``std`` (normalisation of ``[0, 1]`` inputs), ``input_size``, ``crop_pct``,
    ``source`` and ``format``. The model is returned in training mode, as built: call
    ``model.eval()`` for inference.
    """
    return build(read(source), overrides)


def read(source: Source) -> Converted:
    """The weights of ``source`` under our names, with what the source says about them."""
    if not isinstance(source, str | Path):
        paths = [_existing(Path(p)) for p in source]
        kinds = [detect_format(p) for p in paths]
        if kinds != ["tflite"] * len(paths):
            raise WeightsError(f"several files make one model only as TFLite body + head; found {', '.join(kinds)}")
        return read_tflite(paths)
    if isinstance(source, str) and hub.is_tag(source) and not Path(source).exists():
        return read(hub.resolve(source))
    path = _existing(Path(source))
    if path.is_dir():
        return read_hf_folder(path)
    kind = detect_format(path)
    if kind == "tflite":
        return read_tflite([path])
    if kind == "hdf5":
        return read_keras(path)
    if kind == "torch":
        return from_state_dict(read_torch(path), str(path))
    tensors, metadata = read_safetensors(path)
    return from_native(tensors, metadata, path) if is_native(metadata) else from_state_dict(tensors, str(path))


def _existing(path: Path) -> Path:
    if not path.exists():
        raise WeightsError(f"no such file or folder: {path} (expected weights, or a tag: {', '.join(hub.TAGS)})")
    return path


def build(converted: Converted, overrides: dict[str, Any]) -> tuple[MobileNetV1, dict[str, Any]]:
    """The model and metadata for converted weights, after checking them against ``overrides``."""
    state, meta = dict(converted.state), dict(converted.meta)
    arch = {**infer_arch(state), **converted.arch}
    source = meta.get("source", "the weights")
    for key in SHAPING_ARGS:
        if key in overrides and not _same(overrides[key], arch[key]):
            raise WeightsError(
                f"{source} holds a MobileNetV1 with {key}={arch[key]!r}, not the {key}={overrides[key]!r} asked for: "
                f"ask for {key}={arch[key]!r} or leave {key} out to take it from the weights"
            )
    classes = meta.get("classes") or classes_for(arch["num_classes"])
    offset = BACKGROUND_OFFSET if arch["num_classes"] == NUM_CLASSES + BACKGROUND_OFFSET and _background(classes) else 0
    asked = overrides.get("num_classes", arch["num_classes"])
    if asked != arch["num_classes"]:
        state, classes, offset = _fit_classifier(state, classes, offset, arch["num_classes"], asked, source)
    kwargs = {**arch, **overrides, "num_classes": asked}
    model = MobileNetV1(**kwargs)
    _load(model, state, converted.bn_eps, source)
    meta = {
        **meta,
        "arch": kwargs,
        "classes": classes,
        "label_offset": offset,
        "mean": list(meta.get("mean", IMAGENET_MEAN)),
        "std": list(meta.get("std", IMAGENET_STD)),
        "input_size": int(meta.get("input_size", 224)),
        "crop_pct": float(meta.get("crop_pct", CROP_PCT)),
    }
    return model, meta


def infer_arch(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The ``MobileNetV1`` arguments that a state dict's shapes fix."""
    blocks = sorted({int(key.split(".")[1]) for key in state if key.startswith("blocks.")})
    bodies = {len(specs): name for name, specs in BODIES.items()}
    if "stem.conv.weight" not in state or len(blocks) not in bodies:
        raise WeightsError(
            f"expected a MobileNetV1 body (stem and {' or '.join(map(str, bodies))} blocks), "
            f"found {len(blocks)} blocks{'' if 'stem.conv.weight' in state else ' and no stem'}"
        )
    separable = f"blocks.{blocks[-1]}.pw.conv.weight" in state
    last = state[f"blocks.{blocks[-1]}.pw.conv.weight" if separable else f"blocks.{blocks[-1]}.conv.weight"]
    return {
        "width_mult": last.shape[0] / TABLE1[-1].out_chs,  # the last layer has 1024 * alpha channels
        "in_chans": state["stem.conv.weight"].shape[1],
        "num_classes": state["classifier.weight"].shape[0] if "classifier.weight" in state else 0,
        "head_conv": state["head.conv.weight"].shape[0] if "head.conv.weight" in state else 0,
        "body": bodies[len(blocks)],
        "block_type": "separable" if separable else "full_conv",
    }


def _same(asked: Any, found: Any) -> bool:
    return math.isclose(asked, found) if isinstance(found, float) else asked == found


def _background(classes: list[str] | None) -> bool:
    return classes is None or classes[0] == BACKGROUND


def _fit_classifier(
    state: dict[str, torch.Tensor], classes: list[str] | None, offset: int, found: int, asked: int, source: str
) -> tuple[dict[str, torch.Tensor], list[str] | None, int]:
    """Drop the classifier (``asked == 0``) or Google's background class (1001 -> 1000)."""
    if asked == 0:
        return {k: v for k, v in state.items() if not k.startswith("classifier.")}, None, 0
    if offset and asked == found - offset:
        state = {**state, **{k: state[k][offset:] for k in ("classifier.weight", "classifier.bias")}}
        return state, classes[offset:] if classes else None, 0
    drop = " (or 1000 to drop the background class)" if offset else ""
    raise WeightsError(
        f"{source} has {found} classes; asked for num_classes={asked}: load it with {found}{drop} and call "
        f"model.reset_classifier({asked}) to train a new classifier"
    )


def _load(model: MobileNetV1, state: dict[str, torch.Tensor], bn_eps: float | None, source: str) -> None:
    """Load ``state`` strictly, folding the source's BN epsilon into ``running_var``."""
    own = model.state_dict()
    if model.features_only:  # no head, pool or classifier to load
        state = {k: v for k, v in state.items() if not k.startswith(("head.", "classifier."))}
    if bn_eps is not None:  # var + eps_source == (var + eps_source - eps_ours) + eps_ours
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d) and f"{name}.running_var" in state:
                state[f"{name}.running_var"] = state[f"{name}.running_var"] + (bn_eps - module.eps)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        if wrong:
            problem = f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}"
        else:
            problem = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        count = len(missing) + len(unexpected) + len(wrong)
        raise WeightsError(f"{source} does not fit MobileNetV1({_args(model)}): {problem} ({count} tensors differ)")
    model.load_state_dict({**own, **state})


def _args(model: MobileNetV1) -> str:
    return f"width_mult={model.width_mult:g}, num_classes={model.num_classes}"
