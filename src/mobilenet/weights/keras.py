"""Keras HDF5 files read with h5py: every layer's arrays by ``layer/param`` name.

Either layout Keras writes: a weights file (``save_weights``, the published application files:
one group per layer at the root) or a whole model (``save``: the same groups under
``model_weights``). Each layer group lists its datasets in the ``weight_names`` attribute
(``conv1/kernel:0`` ...); files without it are searched for datasets. What the names mean for
an architecture is its converter's business (:mod:`mobilenet.weights.converters`).

A file that points outside itself (an external link, a dataset stored in another file or
assembled from others) is refused before anything is read: HDF5 would open those files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mobilenet.errors import WeightsError
from mobilenet.weights.formats import one_line, optional_import


def read_keras(path: Path) -> dict[str, np.ndarray]:
    """``layer/param`` -> array for every layer of a Keras HDF5 file (``param`` without Keras's ``:0``)."""
    h5py = optional_import("h5py")
    try:
        with h5py.File(path, "r") as f:
            _check_self_contained(h5py, f, path)
            root = f.get("model_weights", f)  # a whole model keeps its weights under model_weights
            return _layer_weights(h5py, root)
    except WeightsError:
        raise
    except Exception as err:  # HDF5 on a damaged file fails in many ways (OSError, KeyError, TypeError...)
        raise WeightsError(f"{path}: truncated or corrupt HDF5 file ({type(err).__name__}: {one_line(err)})") from err


def _check_self_contained(h5py: Any, f: Any, path: Path) -> None:
    """Refuse external links and datasets whose data lives in other files (external storage, virtual)."""

    def outside(name: str, link: Any) -> str | None:
        return f"{name} links to {link.filename}:{link.path}" if isinstance(link, h5py.ExternalLink) else None

    def elsewhere(name: str, obj: Any) -> str | None:
        if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
            return f"dataset {name} keeps its data in other files"
        return None

    found = f.visititems_links(outside) or f.visititems(elsewhere)
    if found:
        raise WeightsError(f"{path}: refused: {found} (a weights file must hold its own data)")


def _layer_weights(h5py: Any, root: Any) -> dict[str, np.ndarray]:
    """Every layer's arrays, the layers found through the root's ``layer_names`` when it lists them.

    A layer name may contain "/" (Keras's MobileNetV3: ``Conv/BatchNorm``), which HDF5 stores as
    nested groups; ``layer_names`` names them whole. Files without it: the root's groups.
    """
    listed = _strings(root.attrs.get("layer_names", []))
    layers = listed or [name for name, group in root.items() if isinstance(group, h5py.Group)]
    tensors = {}
    for layer in layers:
        group = root.get(layer)
        if not isinstance(group, h5py.Group):  # a layer without weights may have no group
            continue
        names = _strings(group.attrs.get("weight_names", [])) or _datasets(h5py, group)
        for name in names:
            tensors[f"{layer}/{name.rsplit('/', 1)[-1].split(':')[0]}"] = np.asarray(group[name])
    return tensors


def _strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _datasets(h5py: Any, group: Any) -> list[str]:
    """Paths of every dataset under ``group`` (for files without ``weight_names``)."""
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found
