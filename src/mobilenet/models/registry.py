"""One registry of named models, each with its metadata.

Every name knows how to build its network and carries what a user needs to use it: the
default input size (the resolution multiplier rho), the normalisation, the class count and the
figures published for it. Each architecture's file registers its names (``register_model``);
nothing else in the package names an architecture.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

from mobilenet import paper
from mobilenet.constants import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from mobilenet.errors import UnknownModelError
from mobilenet.models.base import MobileNet


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: how to build it and what was published about it."""

    name: str
    builder: type[MobileNet]
    kwargs: dict[str, Any]
    description: str
    input_size: int = DEFAULT_INPUT_SIZE
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 1000
    published: dict[str, paper.Figures] = field(default_factory=dict)
    """Published rows by source (``Table 4``, ``TF-slim``...): mult-adds, parameters, accuracy."""
    errata: dict[tuple[str, str], paper.Erratum] = field(default_factory=dict)
    """(source, quantity) -> the figure a published row's own arithmetic implies, and why."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly metadata (the builder by its architecture name)."""
        meta = asdict(self)
        meta["builder"] = self.builder.arch
        meta["published"] = {src: asdict(fig) for src, fig in self.published.items()}
        meta["errata"] = {f"{src} {quantity}": asdict(err) for (src, quantity), err in self.errata.items()}
        return meta


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    """Add ``info`` to the registry (names are unique; the builder's ``arch`` must be registered by its own name)."""
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is already registered")
    if not info.builder.arch:
        raise ValueError(f"{info.builder.__name__}.arch must name the registry entry that builds it")
    _REGISTRY[info.name] = info
    return info


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, sorted."""
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def get_model_info(name: str) -> ModelInfo:
    """The metadata of a registered model; a clear error for an unknown name."""
    if name not in _REGISTRY:
        close = fnmatch.filter(_REGISTRY, f"*{name.split('_')[-1]}*") if name else []
        hint = f" (did you mean {', '.join(sorted(close)[:4])}?)" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint}: `mobilenet models` lists the {len(_REGISTRY)} names")
    return _REGISTRY[name]


def architectures() -> list[type[MobileNet]]:
    """Every registered architecture (model class), in registration order."""
    return list(dict.fromkeys(info.builder for info in _REGISTRY.values()))


def create_model(name: str, **overrides: Any) -> MobileNet:
    """Build the model called ``name``, randomly initialised; keyword arguments override its architecture.

    ``create_model("mobilenet_v1_075_192")`` is the paper's 0.75 MobileNet-192;
    ``create_model("mobilenet_v1", width_mult=0.5, num_classes=10)`` any other alpha. The
    network accepts any input size from its total stride up (rho is the input size); the name's
    default size is ``get_model_info(name).input_size``. Pretrained weights, trained runs and
    exported files load with :func:`mobilenet.load`.
    """
    info = get_model_info(name)
    return info.builder(**{**info.kwargs, **overrides})
