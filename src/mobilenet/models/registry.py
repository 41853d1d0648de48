"""One registry of named models, each with its metadata.

Every name knows how to build its network and carries what a user needs to use it: the
default input size (the resolution multiplier rho), the normalisation, the class count and the
figures published for it. MobileNetV2/V3 register their names here the same way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from mobilenet import paper
from mobilenet.errors import UnknownModelError
from mobilenet.models.mobilenet_v1 import MobileNetV1

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: how to build it and what was published about it."""

    name: str
    builder: Callable[..., nn.Module]
    kwargs: dict[str, Any]
    description: str
    input_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 1000
    published: dict[str, paper.Figures] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly metadata (the builder by name)."""
        meta = asdict(self)
        meta["builder"] = self.builder.__name__
        meta["published"] = {src: asdict(fig) for src, fig in self.published.items()}
        return meta


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    """Add ``info`` to the registry (names are unique)."""
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is already registered")
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


def create_model(name: str, weights: str | Path | Sequence[str | Path] | None = None, **overrides: Any) -> nn.Module:
    """Build the model called ``name``; keyword arguments override its architecture.

    ``create_model("mobilenet_v1_075_192")`` is the paper's 0.75 MobileNet-192;
    ``create_model("mobilenet_v1", width_mult=0.5, num_classes=10)`` any other alpha.
    ``resolution`` sets the default input size recorded on the model (rho is the input size:
    the network itself accepts any size). The model's ``model_info`` holds its metadata.

    ``weights`` loads pretrained weights: a file or folder in any supported format, or a tag
    (``timm``, ``hf``, ``keras``), see :func:`mobilenet.weights.load_weights`. The architecture
    then comes from the weights (the name's arguments and ``overrides`` must agree with them;
    ``num_classes=1000`` drops Google's background class), and ``model_info`` takes their input
    size, normalisation and metadata (``model_info["weights"]``: class names, source).
    """
    info = get_model_info(name)
    resolution = overrides.pop("resolution", None)
    kwargs = {**info.kwargs, **overrides}
    from_weights: dict[str, Any] = {}
    if weights is None:
        model = info.builder(**kwargs)
    else:
        from mobilenet.weights import load_weights  # imported here: models do not depend on weights

        model, meta = load_weights(weights, **kwargs)
        kwargs = meta["arch"]
        resolution = resolution or meta["input_size"]
        from_weights = {"mean": tuple(meta["mean"]), "std": tuple(meta["std"]), "weights": meta}
    model.model_info = {
        **info.as_dict(),
        **from_weights,
        "kwargs": kwargs,
        "input_size": resolution or info.input_size,
        "num_classes": kwargs.get("num_classes", info.num_classes),
    }
    return model


def _published(name: str, width: float, resolution: int) -> dict[str, paper.Figures]:
    figures = {title: table[name] for title, table in paper.PAPER_TABLES.items() if name in table}
    figures["TF-slim"] = paper.TFSLIM[(width, resolution)]
    return figures


def variant_name(width_mult: float, resolution: int) -> str:
    """Registry name of a published alpha x rho variant, e.g. ``mobilenet_v1_075_192``."""
    return f"mobilenet_v1_{round(width_mult * 100):03d}_{resolution}"


def _register_v1() -> None:
    register_model(
        ModelInfo(
            "mobilenet_v1",
            MobileNetV1,
            {},
            "MobileNetV1 (Table 1); width_mult (alpha) and resolution (rho) as arguments",
        )
    )
    register_model(
        ModelInfo(
            "mobilenet_v1_conv",
            MobileNetV1,
            {"block_type": "full_conv"},
            "Table 4 baseline: every depthwise separable block a standard 3x3 convolution",
            published={"Table 4": paper.TABLE4["mobilenet_v1_conv"]},
        )
    )
    register_model(
        ModelInfo(
            "mobilenet_v1_shallow",
            MobileNetV1,
            {"body": "shallow"},
            "Table 5 baseline: without the five 512-channel blocks at 14x14",
            published={"Table 5": paper.TABLE5["mobilenet_v1_shallow"]},
        )
    )
    for width in paper.WIDTHS:
        for resolution in paper.RESOLUTIONS:
            name = variant_name(width, resolution)
            register_model(
                ModelInfo(
                    name,
                    MobileNetV1,
                    {"width_mult": width},
                    f"{width} MobileNet-{resolution} (alpha = {width}, rho = {resolution / 224:.3f})",
                    input_size=resolution,
                    published=_published(name, width, resolution),
                )
            )


_register_v1()
