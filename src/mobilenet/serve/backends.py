"""Which runtime serves a source: the one place where the server chooses a backend.

An exported file is served by its own runtime (ONNX Runtime for ``.onnx``, ExecuTorch for
``.pte``, Inductor for ``.pt2``, OpenVINO for an IR ``.xml``), the only one that runs it. Weights
and training runs can run on any of them: ``auto`` takes the fastest fp32 runtime measured on this
machine (:func:`mobilenet.bench.pick_backend`, cached per machine), a named runtime is taken as
asked, and the model is exported for it once (kept in the cache, keyed by the weights) before it
is served; ``eager`` serves the PyTorch module itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mobilenet.bench import package_version, pick_backend
from mobilenet.card import ModelCard
from mobilenet.data.cache import cache_dir
from mobilenet.errors import ConfigError
from mobilenet.export import export
from mobilenet.export.runtime import EXPORTED_SUFFIXES, FORMAT_SUFFIXES, exported_format
from mobilenet.inference import Predictor
from mobilenet.load import load

log = logging.getLogger("mobilenet.serve")

RUNTIMES = {"onnx": "onnxruntime", "executorch": "executorch", "pt2": "pt2", "openvino": "openvino"}
"""The backend that runs each exported format (:func:`mobilenet.export.runtime.exported_format`)."""
FORMATS = {backend: kind for kind, backend in RUNTIMES.items()}
EXPORTS_DIR = "served"
"""Under the cache folder: the exports made to serve weights on a runtime."""
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
    """The backends that can run ``source``: an exported file's runtime; every backend for weights."""
    path = Path(source)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        kind = exported_format(path)
        return (RUNTIMES.get(kind, kind),)
    return ("eager", *RUNTIMES.values())


def choose_backend(source: str, backend: str = "auto") -> str:
    """The backend that serves ``source``: ``backend`` if it can run it; for ``auto``, an exported file's
    runtime, or ``auto`` itself for weights (measured when they are loaded, see :func:`load_served`)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    possible = source_backends(source)
    if backend == "auto":
        return possible[0] if len(possible) == 1 else "auto"
    if backend not in possible:
        raise ConfigError(f"{source} cannot run on {backend}: its backend is {', '.join(possible)}")
    return backend


def load_served(source: str, backend: str = "auto", threads: int | None = None) -> Served:
    """``source`` loaded by :func:`mobilenet.load.load` for ``backend`` (see :func:`choose_backend`), on the CPU.

    Weights for a runtime are exported to it first (see :func:`exported_for`).
    """
    chosen = choose_backend(source, backend)
    model, card = load(source, threads=threads)
    if chosen == "eager" or not isinstance(model, nn.Module) or not hasattr(model, "arch"):
        return Served(Predictor(model, card), chosen)
    if chosen == "auto":
        pick = pick_backend(model, "fp32", resolution=card.input_size, threads=threads)
        log.info("fastest here: %s", pick.describe())
        chosen = RUNTIMES[pick.export_format]
    path = exported_for(model, card, FORMATS[chosen])
    return Served(Predictor(*load(path, threads=threads)), chosen)


def exported_for(model: nn.Module, card: ModelCard, kind: str) -> Path:
    """``model`` exported to format ``kind`` (fp32) in the cache, once: the file is keyed by the weights,
    the architecture, the card and the versions of torch and of the runtime, so a change of any
    exports again."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    versions = {name: package_version(name) for name in ("torch", "mobilenet", RUNTIMES[kind])}
    described = [model.arch, model.config, card.to_dict(), versions]
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    path = cache_dir() / EXPORTS_DIR / f"{model.arch}-{digest.hexdigest()[:20]}{FORMAT_SUFFIXES[kind]}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting for %s: %s", RUNTIMES[kind], path)
        with torch.no_grad():
            export(model, path, kind, card.input_size, card)
    return path


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
