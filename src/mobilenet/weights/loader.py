"""One entry point for weights: any supported file, folder or tag in, a configured model and its card out.

:func:`load_weights` reads the source (its format recognised by content) into data (tensors,
a TFLite graph), lets the architectures' converters turn it into our names
(:mod:`mobilenet.weights.converters`), infers the rest of the architecture from the tensors'
shapes (the model class's ``kwargs_from_state_dict``), checks it against whatever the caller
asked for, and loads the weights strictly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mobilenet.card import ModelCard
from mobilenet.errors import WeightsError
from mobilenet.models import MobileNet, architectures, create_model, get_model_info
from mobilenet.weights import hub
from mobilenet.weights.converters import Converted, convert
from mobilenet.weights.formats import detect_format, read_safetensors, read_torch
from mobilenet.weights.hf import read_hf_folder
from mobilenet.weights.imagenet import BACKGROUND, BACKGROUND_OFFSET, NUM_CLASSES, classes_for
from mobilenet.weights.keras import read_keras
from mobilenet.weights.labels import embedded_labels
from mobilenet.weights.native import is_native, native_card
from mobilenet.weights.tflite import parse

Source = str | Path | Sequence[str | Path]


def load_weights(source: Source, **overrides: Any) -> tuple[MobileNet, ModelCard]:
    """Our model configured from and loaded with the weights in ``source``, and its card.

    ``source``: a file (safetensors, PyTorch state dict, Keras .h5, TFLite; recognised by content),
    a Hugging Face ``save_pretrained`` folder, two TFLite files (Google's 1.0-224 body and
    classifier, either order), or a tag (``timm``, ``hf``, ``keras``, ``TAG:VARIANT``) to download.

    ``overrides`` are constructor arguments. Those the tensors fix (the class's ``shaping_args``:
    width, channels...) must agree with the weights; ``num_classes=1000`` on Google's 1001-class
    weights drops the background class, ``num_classes=0`` drops the classifier; the others
    (dropout, padding, output_stride, features_only...) apply as given. The model is returned in
    training mode, as built: call ``model.eval()`` for inference.
    """
    return build(read(source), overrides)


def read(source: Source) -> Converted:
    """The weights of ``source`` under our names, with what the source says about them."""
    if not isinstance(source, str | Path):
        paths = [_existing(Path(p)) for p in source]
        kinds = [detect_format(p) for p in paths]
        if kinds != ["tflite"] * len(paths) or not 1 <= len(paths) <= 2:
            raise WeightsError(f"several files make one model only as TFLite body + head; found {', '.join(kinds)}")
        return _tflite(paths)
    if isinstance(source, str) and hub.is_tag(source) and not Path(source).exists():
        return read(hub.resolve(source))
    path = _existing(Path(source))
    if path.is_dir():
        hf = read_hf_folder(path)
        return convert("state_dict", str(path), hf.tensors, str(path), hf)
    kind = detect_format(path)
    if kind == "tflite":
        return _tflite([path])
    if kind == "hdf5":
        return convert("keras", str(path), read_keras(path), str(path))
    if kind == "torch":
        return from_state_dict(read_torch(path), str(path))
    tensors, metadata = read_safetensors(path)
    if is_native(metadata):
        card = native_card(metadata, path)
        card = card if card.source else card.replace(source=str(path))
        return Converted(tensors, card.arch, dict(card.kwargs), {"card": card})
    return from_state_dict(tensors, str(path))


def _tflite(paths: list[Path]) -> Converted:
    """The converted graph(s), with the class names that the (last) file's metadata carries, if any."""
    source = " + ".join(str(path) for path in paths)
    converted = convert("tflite", source, [parse(path) for path in paths], source)
    classes = embedded_labels(paths[-1], converted.state["classifier.weight"].shape[0])
    return replace(converted, meta={**converted.meta, "classes": classes}) if classes else converted


def from_state_dict(tensors: dict[str, torch.Tensor], source: str) -> Converted:
    """A state dict in our names (recognised by each architecture's shapes) or another library's."""
    for cls in architectures():
        if cls.kwargs_from_state_dict(tensors) is not None:
            return Converted(tensors, cls.arch, meta={"format": "state_dict", "source": source})
    return convert("state_dict", source, tensors, source, None)


def _existing(path: Path) -> Path:
    if not path.exists():
        raise WeightsError(f"no such file or folder: {path} (expected weights, or a tag: {', '.join(hub.TAGS)})")
    return path


def build(converted: Converted, overrides: dict[str, Any]) -> tuple[MobileNet, ModelCard]:
    """The model and card for converted weights, after checking them against ``overrides``."""
    state, meta = dict(converted.state), dict(converted.meta)
    cls = get_model_info(converted.arch).builder
    shapes = cls.kwargs_from_state_dict(state)
    if shapes is None:
        raise WeightsError(f"{meta.get('source', 'the weights')}: the tensors do not make a {cls.__name__}")
    kwargs = {**converted.kwargs, **shapes}
    card: ModelCard | None = meta.get("card")
    source = meta.get("source") or (card.source if card else None) or "the weights"
    for key in cls.shaping_args:
        if key in overrides and not _same(overrides[key], kwargs[key]):
            raise WeightsError(
                f"{source} holds a {cls.__name__} with {key}={kwargs[key]!r}, not the {key}={overrides[key]!r} "
                f"asked for: ask for {key}={kwargs[key]!r} or leave {key} out to take it from the weights"
            )
    if card is None:
        classes = meta.get("classes") or classes_for(kwargs["num_classes"])
        offset = BACKGROUND_OFFSET if kwargs["num_classes"] == NUM_CLASSES + 1 and _background(classes) else 0
        card = ModelCard(
            arch=converted.arch,
            classes=tuple(classes) if classes else None,
            label_offset=offset,
            input_size=int(meta.get("input_size", 224)),
            in_chans=int(kwargs.get("in_chans", 3)),
            mean=tuple(meta.get("mean", ModelCard.mean)),
            std=tuple(meta.get("std", ModelCard.std)),
            source=source,
            format=meta.get("format"),
        )
    asked = overrides.get("num_classes", kwargs["num_classes"])
    if asked != kwargs["num_classes"]:
        state, card = _fit_classifier(state, card, kwargs["num_classes"], asked, source)
    model = create_model(converted.arch, **{**kwargs, **overrides, "num_classes": asked})
    _load(model, state, converted.bn_eps, source)
    return model, card.replace(kwargs=dict(model.config))


def _same(asked: Any, found: Any) -> bool:
    return math.isclose(asked, found) if isinstance(found, float) else asked == found


def _background(classes: Sequence[str] | None) -> bool:
    return classes is None or classes[0] == BACKGROUND


def _fit_classifier(
    state: dict[str, torch.Tensor], card: ModelCard, found: int, asked: int, source: str
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Drop the classifier (``asked == 0``) or Google's background class (1001 -> 1000)."""
    if asked == 0:
        return {k: v for k, v in state.items() if not k.startswith("classifier.")}, card.with_classes(None)
    offset = card.label_offset
    if offset and asked == found - offset:
        state = {**state, **{k: state[k][offset:] for k in ("classifier.weight", "classifier.bias")}}
        return state, card.with_classes(card.eval_classes)
    drop = " (or 1000 to drop the background class)" if offset else ""
    raise WeightsError(
        f"{source} has {found} classes; asked for num_classes={asked}: load it with {found}{drop} and call "
        f"model.reset_classifier({asked}) to train a new classifier"
    )


def _load(model: MobileNet, state: dict[str, torch.Tensor], bn_eps: float | None, source: str) -> None:
    """Load ``state`` strictly, folding the source's BN epsilon into ``running_var``."""
    own = model.state_dict()
    if model.features_only:  # no head, pool or classifier to load
        state = {k: v for k, v in state.items() if k in own}
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
        raise WeightsError(
            f"{source} does not fit {type(model).__name__}(num_classes={model.num_classes}): {problem} "
            f"({count} tensors differ)"
        )
    model.load_state_dict({**own, **state})
