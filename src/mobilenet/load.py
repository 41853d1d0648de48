"""``load(source) -> (model, card)``: anything a user has, ready for inference.

- a training run folder (``mobilenet train --out``): its ``best`` checkpoint, else ``last``;
- a native ``.safetensors`` (``mobilenet convert``) or any foreign weights file, folder or tag
  that :func:`mobilenet.weights.load_weights` reads (TFLite, Keras, timm, Hugging Face);
- an exported file (``.onnx``, ``.pte``, ``.pt2``, OpenVINO ``.xml``, by suffix as their runtimes take them): a
  runner with a PyTorch module's call signature, whose card names the classes it returns.

The card (:class:`mobilenet.card.ModelCard`) says what the model is and how to feed it
(``card.eval_transform()``). Nothing here imports the training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import WeightsError
from mobilenet.export.runtime import EXPORTED_SUFFIXES, load_exported
from mobilenet.weights import load_weights
from mobilenet.weights.hf import HF_WEIGHT_FILES
from mobilenet.weights.tflite_grid import attach_to_files

CHECKPOINT_TAGS = ("best", "last")


def run_file(folder: str | Path, name: str) -> Path:
    """``folder / name`` in a training run folder; a :class:`WeightsError` when a link leads it outside the folder.

    A run folder holds its own files: a checkpoint or ``config.json`` that is a link to somewhere
    else (``/etc/...``, another user's files) is refused rather than read.
    """
    path = Path(folder) / name
    target, inside = path.resolve(), Path(folder).resolve()
    if not target.is_relative_to(inside):
        raise WeightsError(f"{path} is a link to {target}, outside the run folder {folder}: refused")
    return path


def run_checkpoint(folder: str | Path, tag: str = "best") -> Path:
    """The checkpoint file of a training run folder: ``<tag>.safetensors``, else the other tag's."""
    folder = Path(folder)
    for name in dict.fromkeys((tag, *CHECKPOINT_TAGS)):
        path = run_file(folder, f"{name}.safetensors")
        if path.is_file():
            return path
    raise WeightsError(
        f"{folder} is a training run without a checkpoint (no {tag}.safetensors): it has not finished an epoch"
    )


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a ``mobilenet train --out`` folder: a checkpoint, or a ``config.json`` without a
    Hugging Face weights file beside it (a ``save_pretrained`` folder has a ``config.json`` too)."""
    if not path.is_dir():
        return False
    if any((path / f"{tag}.safetensors").is_file() for tag in CHECKPOINT_TAGS):
        return True
    return (path / "config.json").is_file() and not any((path / name).is_file() for name in HF_WEIGHT_FILES)


ACTIVATIONS = ("float", "uint8")
"""How a converted 8-bit TFLite model computes: in float, or rounding each operator's output to the file's
uint8 grid as the TFLite interpreter does (:mod:`mobilenet.weights.tflite_grid`)."""


def load(
    source: str | Path | Sequence[str | Path],
    *,
    tag: str = "best",
    threads: int | None = None,
    activations: str = "float",
    **overrides: Any,
) -> tuple[nn.Module, ModelCard]:
    """The model (or exported-file runner) in ``source`` and its card.

    ``tag`` picks a run folder's checkpoint (``best`` or ``last``); ``threads`` sets ONNX
    Runtime's thread count for an ``.onnx`` file; ``overrides`` are constructor arguments for
    weights (``num_classes=1000`` drops Google's background class; see ``load_weights``).
    ``activations="uint8"`` (an 8-bit TFLite file only) rounds every layer's output to the file's
    uint8 grid, as the TFLite interpreter computes: Google's V3 files were trained that way.
    A PyTorch model comes back in eval mode.
    """
    if activations not in ACTIVATIONS:
        raise WeightsError(f"activations must be one of {', '.join(ACTIVATIONS)}, not {activations!r}")
    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix.lower() in EXPORTED_SUFFIXES:
            if overrides or activations != "float":
                asked = sorted(overrides) + ([f"activations={activations}"] if activations != "float" else [])
                raise WeightsError(f"{path} is an exported file: it cannot be rebuilt with {', '.join(asked)}")
            return load_exported(path, threads)
        if is_run_folder(path):
            source = run_checkpoint(path, tag)
    model, card = load_weights(source, **overrides)
    if activations == "uint8":
        attach_to_files(model, source)
        card = card.replace(extra={**card.extra, "activations": "uint8 (the TFLite file's output grids)"})
    return model.eval(), card
