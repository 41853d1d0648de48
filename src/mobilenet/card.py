"""The model card: one typed record of everything a user of a trained or converted model needs.

Which network (the registry name and its constructor arguments), what its outputs mean (class
names; ``label_offset`` 1 when output 0 is Google's background class, so ImageNet class ``i`` is
output ``i + 1``), what it expects as input (size, channels, mean/std of ``[0, 1]`` pixels, the
evaluation crop and the kind of images), where the weights came from, and how it was quantized.
Checkpoints, native ``.safetensors`` files and every exported file (``.onnx``, ``.pte``,
``.pt2``) carry it as JSON; :meth:`ModelCard.from_dict` also reads the metadata that files
written before the card existed carry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torchvision.transforms import v2

from mobilenet.constants import CROP_FRACTION, DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from mobilenet.data.transforms import adapt_stats, eval_transform
from mobilenet.errors import WeightsError

CARD_VERSION = 2
"""Version 1 is the untyped metadata of earlier files (checkpoint, native and export dialects)."""
KINDS = ("photo", "small")


@dataclass(frozen=True)
class ModelCard:
    """What a model is and how to use it; immutable, JSON round-trip with :meth:`to_dict` / :meth:`from_dict`."""

    arch: str
    """Registry name that, with ``kwargs``, rebuilds the network (``create_model(arch, **kwargs)``)."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None
    """Names of all outputs, in order (Google's background included); None when unknown."""
    label_offset: int = 0
    input_size: int = DEFAULT_INPUT_SIZE
    in_chans: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_fraction: float = CROP_FRACTION
    """Photos are evaluated by resizing the shorter side to ``input_size / crop_fraction`` and cropping the centre."""
    kind: str = "photo"
    """``photo`` or ``small`` (images of at most 64 px, evaluated at their own size)."""
    source: str | None = None
    """Where the weights came from: a file, a tag, a training run."""
    format: str | None = None
    """The format they were read from (``tflite``, ``keras``, ``timm``, ``hf``, ``native``...)."""
    quantization: Mapping[str, Any] | None = None
    """None for a float model; else how it was quantized (runtime, weights, activations, calibration)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Facts particular to one file: ``weights_of`` (model or EMA), ``max_batch``, ``converted_from``."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise WeightsError(f"model card: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.classes is not None and self.label_offset >= len(self.classes) and self.classes:
            raise WeightsError(f"model card: label_offset {self.label_offset} leaves no class")

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier (0: none)."""
        return int(self.kwargs.get("num_classes", len(self.classes) if self.classes else 0))

    @property
    def eval_classes(self) -> list[str] | None:
        """The classes a data set's labels index: the outputs after ``label_offset``."""
        return list(self.classes[self.label_offset :]) if self.classes is not None else None

    def output_names(self) -> list[str]:
        """A name for every output: the class names, else the output indices as strings."""
        return list(self.classes) if self.classes is not None else [str(i) for i in range(self.num_classes)]

    def eval_transform(self) -> v2.Compose:
        """The transform from a uint8 image tensor to this model's input (resize, crop, normalise)."""
        return eval_transform(self.kind, self.input_size, self.mean, self.std, crop_fraction=self.crop_fraction)

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def with_classes(self, classes: Sequence[str] | None, label_offset: int = 0) -> ModelCard:
        """The card of the same network with a new classifier for ``classes``."""
        count = len(classes) if classes is not None else 0
        names = tuple(classes) if classes is not None else None
        return self.replace(kwargs={**self.kwargs, "num_classes": count}, classes=names, label_offset=label_offset)

    def with_labels(self, names: Sequence[str], source: str = "--labels") -> ModelCard:
        """The card with ``names`` for its outputs: one per output, or one per output after Google's background.

        A one-line :class:`WeightsError` when the count fits neither.
        """
        outputs = self.num_classes
        if len(names) == outputs:
            offset = 1 if self.label_offset and names[0].lower() == "background" else 0
            return self.replace(classes=tuple(names), label_offset=offset)
        if self.label_offset and len(names) == outputs - self.label_offset:
            prefix = self.classes[: self.label_offset] if self.classes else ("background",) * self.label_offset
            return self.replace(classes=(*prefix, *names))
        background = f" (or {outputs - self.label_offset} after its background class)" if self.label_offset else ""
        raise WeightsError(f"{source} names {len(names)} classes; the model has {outputs} outputs{background}")

    def summary(self) -> str:
        """One line: architecture, width, classes, input, source format."""
        width = f" width_mult={self.kwargs['width_mult']:g}" if "width_mult" in self.kwargs else ""
        background = " (0 = background)" if self.label_offset else ""
        padding = f", {self.kwargs['padding']} padding" if "padding" in self.kwargs else ""
        quant = ", int8" if self.quantization else ""
        return (
            f"{self.arch}{width}, {self.num_classes} classes{background}{padding}, input "
            f"{self.in_chans}x{self.input_size}x{self.input_size}{quant}, from {self.format or self.source or '?'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with ``card_version``."""
        data = dataclasses.asdict(self)
        for key in ("kwargs", "extra"):
            data[key] = dict(getattr(self, key))
        data["kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["kwargs"].items()}
        return {"card_version": CARD_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "metadata") -> ModelCard:
        """A card from :meth:`to_dict`'s output, or from the metadata files written before cards existed.

        Raises :class:`WeightsError` naming ``where`` for anything else.
        """
        if not isinstance(data, Mapping):
            raise WeightsError(f"{where}: expected a JSON object, found {type(data).__name__}")
        version = data.get("card_version", 1)
        if not isinstance(version, int) or version > CARD_VERSION:
            raise WeightsError(f"{where}: model card version {version} is newer than this package's {CARD_VERSION}")
        try:
            fields = data if version == CARD_VERSION else _from_v1(data, where)
        except WeightsError:
            raise
        except (TypeError, ValueError, OverflowError) as err:  # a value of the wrong type: int(None), float("x")
            raise WeightsError(f"{where}: malformed model card ({err})") from err
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in fields.items() if k in known}
        if not isinstance(values.get("arch"), str) or not isinstance(values.get("kwargs", {}), Mapping):
            raise WeightsError(f"{where}: expected a model card naming its architecture, found {str(data)[:80]}")
        try:
            return cls(**_typed(values))
        except (TypeError, ValueError, OverflowError) as err:  # OverflowError: int(Infinity)
            raise WeightsError(f"{where}: malformed model card ({err})") from err


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to tuples; numbers to their types."""
    out = dict(values)
    out["kwargs"] = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(out.get("kwargs", {})).items()}
    for key in ("mean", "std"):
        if key in out:
            out[key] = tuple(float(v) for v in out[key])
    if out.get("classes") is not None:
        out["classes"] = tuple(str(c) for c in out["classes"])
    for key in ("label_offset", "input_size", "in_chans"):
        if key in out:
            out[key] = int(out[key])
    if "crop_fraction" in out:
        out["crop_fraction"] = float(out["crop_fraction"])
    out["extra"] = dict(out.get("extra") or {})
    return out


def _from_v1(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The three metadata dialects of earlier files, as card fields.

    Training checkpoints: ``model`` (a registry name) + ``kwargs`` (its overrides), ``classes``,
    ``mean``/``std``, ``input_size``, ``in_chans``, ``kind``, ``source``, ``weights_of``. Native
    weights: ``arch`` (every constructor argument), ``label_offset``, ``crop_pct``, ``format``,
    ``converted_from``. Exported files: ``model`` + ``arch``, ``int8``, ``max_batch``.
    """
    arch = data.get("arch") if isinstance(data.get("arch"), Mapping) else None
    overrides = data.get("kwargs") if isinstance(data.get("kwargs"), Mapping) else None
    if arch is None and overrides is None:
        raise WeightsError(f"{where}: expected the model's architecture ('arch' or 'model' + 'kwargs'), found none")
    kwargs = {**(overrides or {}), **(arch or {})}
    name = data.get("model") if isinstance(data.get("model"), str) else "mobilenet_v1"
    mean, std = data.get("mean", IMAGENET_MEAN), data.get("std", IMAGENET_STD)
    in_chans = int(data.get("in_chans", kwargs.get("in_chans", 3)))
    mean, std = adapt_stats(mean, std, in_chans)
    extra = {key: data[key] for key in ("weights_of", "max_batch", "converted_from") if data.get(key) is not None}
    return {
        "arch": name,
        "kwargs": kwargs,
        "classes": data.get("classes"),
        "label_offset": data.get("label_offset", 0),
        "input_size": data.get("input_size", DEFAULT_INPUT_SIZE),
        "in_chans": in_chans,
        "mean": mean,
        "std": std,
        "crop_fraction": data.get("crop_pct", CROP_FRACTION),
        "kind": data.get("kind", "photo"),
        "source": data.get("source"),
        "format": data.get("format"),
        "quantization": data.get("int8"),
        "extra": extra,
    }
