"""The family table a user picks a model from: cost, accuracy, latency and int8 loss, one row a member.

Cost (parameters, mult-adds) is computed on the spot and the published ImageNet top-1 comes from
the registry (the paper's figure, else TF-slim's). What takes minutes to measure comes from a
results file (:data:`DEFAULT_RESULTS`, JSON) that the benchmark scripts write with
:func:`record`: per model, top-1 on the ImageNet sample of Google's weights, Flowers-17
fine-tuned accuracy, batch-1 latency of the fastest fp32 and int8 backends, and the int8 drop of
each int8 backend measured (the table shows the fastest's, so that a new latency measurement
never leaves it showing another backend's drop); per group of figures, the date, CPU and command
that measured them. A figure not measured is ``None`` (printed ``-``), never a guess.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from mobilenet.analysis import totals
from mobilenet.errors import MobileNetError
from mobilenet.fileio import atomic_write
from mobilenet.models import get_model_info

FAMILY = (
    "mobilenet_v1_100_224",
    "mobilenet_v1_075_192",
    "mobilenet_v2_100_224",
    "mobilenet_v2_140_224",
    "mobilenet_v3_large",
    "mobilenet_v3_large_075",
    "mobilenet_v3_large_minimal",
    "mobilenet_v3_small",
    "mobilenet_v3_small_075",
    "mobilenet_v3_small_minimal",
)
"""The published members compared by default (each with its own width and resolution)."""
DEFAULT_RESULTS = Path(os.environ.get("MOBILENET_RESULTS") or "docs/results/family.json")
MEASURED = ("top1_sample", "flowers17", "fp32_ms", "fp32_backend", "int8_ms", "int8_backend", "int8_drops")
"""The fields a results file provides (the others are computed); ``int8_drops`` maps int8 backends to drops."""
DEFAULT_INT8_BACKEND = "onnxruntime-int8"
"""The backend of ``mobilenet export --int8``'s default path: its drop is shown while no int8 latency is known."""


@dataclass(frozen=True)
class Row:
    """One family member: ``params`` and ``mult_adds`` in millions, accuracies in percent, latencies in ms
    (batch 1 on the measuring machine), ``int8_drop`` in points of top-1."""

    model: str
    params: float
    mult_adds: float
    top1_published: float | None
    top1_sample: float | None = None
    flowers17: float | None = None
    fp32_ms: float | None = None
    fp32_backend: str | None = None
    int8_ms: float | None = None
    int8_backend: str | None = None
    int8_drop: float | None = None

    @property
    def best_ms(self) -> float | None:
        """The lower of the fp32 and int8 latencies (None when neither was measured)."""
        times = [t for t in (self.fp32_ms, self.int8_ms) if t is not None]
        return min(times) if times else None


def published_top1(name: str) -> float | None:
    """The ImageNet top-1 published for ``name``: the paper's table first, then TF-slim's."""
    figures = get_model_info(name).published.values()
    ranked = sorted(figures, key=lambda fig: "TF-slim" in fig.source)
    return next((fig.top1 for fig in ranked if fig.top1 is not None), None)


def read_results(path: str | Path) -> dict[str, Any]:
    """A results file (``{"models": {...}, "sources": {...}}``); empty when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return {"models": {}, "sources": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MobileNetError(f"cannot read results file {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise MobileNetError(f"results file {path}: expected an object with 'models' and 'sources'")
    return {"models": data.get("models", {}), "sources": data.get("sources", {})}


def record(
    path: str | Path, group: str, figures: Mapping[str, Mapping[str, Any]], cpu: str, command: str
) -> dict[str, Any]:
    """Merge ``figures`` (model -> {field: value}, fields of :data:`MEASURED`) into the results file at
    ``path`` under a source ``group`` (what measured them: today's date, ``cpu``, ``command``).

    Every figure keeps the source that measured it: when figures of an earlier command stay in the
    file under ``group``, this command's source is named ``group-2`` (``-3``, ...), and sources no
    figure refers to any more are dropped.
    """
    unknown = {key for values in figures.values() for key in values} - set(MEASURED)
    if unknown:
        raise ValueError(f"unknown result fields {sorted(unknown)}; expected some of {', '.join(MEASURED)}")
    data = read_results(path)
    replaced = {(model, f"{key}_source") for model, values in figures.items() for key in values}
    kept = {
        value
        for model, fields in data["models"].items()
        for key, value in fields.items()
        if key.endswith("_source") and (model, key) not in replaced
    }
    name, n = group, 1
    while name in kept and data["sources"].get(name, {}).get("command") != command:
        n += 1
        name = f"{group}-{n}"
    for model, values in figures.items():
        data["models"].setdefault(model, {}).update({**values, **{f"{key}_source": name for key in values}})
    data["sources"][name] = {"date": date.today().isoformat(), "cpu": cpu, "command": command}
    data["sources"] = {key: value for key, value in data["sources"].items() if key in kept | {name}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n"))
    return data


def family_rows(models: Iterable[str] = FAMILY, results: Mapping[str, Any] | None = None) -> list[Row]:
    """One :class:`Row` a model: cost computed, accuracy published, the rest from ``results``.

    ``int8_drop`` is the drop of the int8 backend the row shows (of :data:`DEFAULT_INT8_BACKEND`
    while none is), None when that backend's drop was not measured.
    """
    measured = (results or {}).get("models", {})
    rows = []
    for name in models:
        mult_adds, params = totals(name)
        values = {key: measured.get(name, {}).get(key) for key in MEASURED}
        drops = values.pop("int8_drops") or {}
        drop = drops.get(values["int8_backend"] or DEFAULT_INT8_BACKEND)
        rows.append(Row(name, params / 1e6, mult_adds / 1e6, published_top1(name), **values, int8_drop=drop))
    return rows


def pareto(rows: Sequence[Row]) -> list[Row]:
    """The rows no other row beats on both published top-1 and best latency (those with both figures)."""
    known = [r for r in rows if r.best_ms is not None and r.top1_published is not None]

    def beaten(r: Row) -> bool:
        return any(
            o.best_ms <= r.best_ms
            and o.top1_published >= r.top1_published
            and (o.best_ms, o.top1_published) != (r.best_ms, r.top1_published)
            for o in known
        )

    return sorted((r for r in known if not beaten(r)), key=lambda r: r.best_ms)


def as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The rows as JSON objects with the documented keys."""
    return [asdict(row) for row in rows]


def plot(rows: Sequence[Row], path: str | Path, title: str = "") -> None:
    """Published ImageNet top-1 against the best batch-1 latency, the Pareto front joined and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    known = [r for r in rows if r.best_ms is not None and r.top1_published is not None]
    if not known:
        raise MobileNetError("no model has both a latency and a published top-1 to plot: run the benchmarks first")
    front = pareto(known)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r.best_ms for r in known], [r.top1_published for r in known], color="0.55", zorder=2)
    ax.plot([r.best_ms for r in front], [r.top1_published for r in front], "o-", color="tab:red", zorder=3)
    for r in known:
        ax.annotate(
            r.model.removeprefix("mobilenet_"),
            (r.best_ms, r.top1_published),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("batch-1 latency, best backend (ms)")
    ax.set_ylabel("ImageNet top-1, published (%)")
    ax.set_title(title or "The MobileNet family: accuracy against latency (Pareto front in red)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
