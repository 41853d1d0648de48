"""Which runtime serves a source: the one place where the server chooses a backend.

Weights and training runs are served by eager PyTorch; an exported file by its own runtime
(ONNX Runtime for ``.onnx``, ExecuTorch for ``.pte``, Inductor for ``.pt2``, OpenVINO for an IR
``.xml``), the only one that runs it. ``auto`` picks that backend; naming one that cannot run the
source is a user error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mobilenet.card import ModelCard
from mobilenet.errors import ConfigError
from mobilenet.export.runtime import EXPORTED_SUFFIXES, exported_format
from mobilenet.inference import Predictor
from mobilenet.load import load

RUNTIMES = {"onnx": "onnxruntime", "executorch": "executorch", "pt2": "pt2", "openvino": "openvino"}
"""The backend that runs each exported format (:func:`mobilenet.export.runtime.exported_format`)."""
BACKENDS = ("auto", "eager", *RUNTIMES.values())
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a model name may be: it is a URL path segment of the Open Inference Protocol."""


@dataclass(frozen=True)
class Served:
    """A loaded model, ready for the batcher: its predictor and the backend that runs it."""

    predictor: Predictor
    backend: str

    @property
    def card(self) -> ModelCard:
        return self.predictor.card


def source_backends(source: str) -> tuple[str, ...]:
    """The backends that can run ``source``, the preferred one first."""
    path = Path(source)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        kind = exported_format(path)
        return (RUNTIMES.get(kind, kind),)
    return ("eager",)


def choose_backend(source: str, backend: str = "auto") -> str:
    """The backend that serves ``source``: ``backend`` if it can run it, the preferred one for ``auto``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    possible = source_backends(source)
    if backend == "auto":
        return possible[0]
    if backend not in possible:
        raise ConfigError(f"{source} cannot run on {backend}: its backend is {', '.join(possible)}")
    return backend


def load_served(source: str, backend: str = "auto", threads: int | None = None) -> Served:
    """``source`` loaded by :func:`mobilenet.load.load` for ``backend`` (see :func:`choose_backend`), on the CPU."""
    chosen = choose_backend(source, backend)
    model, card = load(source, threads=threads)
    return Served(Predictor(model, card), chosen)


def model_name(source: str) -> str:
    """A default model name for ``source``: its file or folder name, made URL-safe."""
    stem = Path(source.rstrip("/")).name
    for suffix in (*EXPORTED_SUFFIXES, ".safetensors", ".tflite", ".h5", ".bin", ".pth", ".pt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-")[:64]
    return name or "model"


def check_model_name(name: str) -> str:
    """``name`` if it can name a model in URLs; a :class:`ConfigError` otherwise."""
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"model name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name
