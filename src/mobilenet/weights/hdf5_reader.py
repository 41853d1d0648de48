"""Read a Keras HDF5 file's weights, as a script: ``python hdf5_reader.py FILE OUT.npz MAX_BYTES``.

Run by :mod:`mobilenet.weights.keras` in a child process with a time and memory limit, because
libhdf5 runs native code that Python cannot interrupt: a damaged file (a fuzzed global-heap address
in a variable-length string) kept it busy for minutes. The script imports only h5py and numpy (no
torch, no package import), so the child starts in a fraction of a second.

Either layout Keras writes: a weights file (``save_weights``, the published application files: one
group per layer at the root) or a whole model (``save``: the same groups under ``model_weights``).
Each layer group lists its datasets in the ``weight_names`` attribute (``conv1/kernel:0`` ...);
files without it are searched for datasets. A file that points outside itself (an external link, a
dataset stored in another file or assembled from others) is refused before anything is read: HDF5
would open those files. The process limits its own address space to ``MAX_BYTES``. Exit status 0:
``OUT.npz`` holds ``layer/param`` -> array; 2: stdout holds the reason as one line.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import h5py
import numpy as np


class RefusedError(Exception):
    """A file this reader will not read (it points outside itself)."""


def read(path: str) -> dict[str, np.ndarray]:
    """``layer/param`` -> array for every layer of a Keras HDF5 file (``param`` without Keras's ``:0``)."""
    with h5py.File(path, "r") as f:
        check_self_contained(f)
        root = f.get("model_weights", f)  # a whole model keeps its weights under model_weights
        return layer_weights(root)


def check_self_contained(f: Any) -> None:
    """Refuse external links and datasets whose data lives in other files (external storage, virtual)."""

    def outside(name: str, link: Any) -> str | None:
        return f"{name} links to {link.filename}:{link.path}" if isinstance(link, h5py.ExternalLink) else None

    def elsewhere(name: str, obj: Any) -> str | None:
        if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
            return f"dataset {name} keeps its data in other files"
        return None

    found = f.visititems_links(outside) or f.visititems(elsewhere)
    if found:
        raise RefusedError(f"{found} (a weights file must hold its own data)")


def layer_weights(root: Any) -> dict[str, np.ndarray]:
    """Every layer's arrays, the layers found through the root's ``layer_names`` when it lists them.

    A layer name may contain "/" (Keras's MobileNetV3: ``Conv/BatchNorm``), which HDF5 stores as
    nested groups; ``layer_names`` names them whole. Files without it: the root's groups.
    """
    listed = strings(root.attrs.get("layer_names", []))
    layers = listed or [name for name, group in root.items() if isinstance(group, h5py.Group)]
    tensors = {}
    for layer in layers:
        group = root.get(layer)
        if not isinstance(group, h5py.Group):  # a layer without weights may have no group
            continue
        names = strings(group.attrs.get("weight_names", [])) or datasets(group)
        for name in names:
            tensors[f"{layer}/{name.rsplit('/', 1)[-1].split(':')[0]}"] = np.asarray(group[name])
    return tensors


def strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def datasets(group: Any) -> list[str]:
    """Paths of every dataset under ``group`` (for files without ``weight_names``)."""
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def main(argv: list[str]) -> int:
    source, out, max_bytes = argv
    resource.setrlimit(resource.RLIMIT_AS, (int(max_bytes), int(max_bytes)))  # an allocation past it fails
    try:
        tensors = read(source)
    except RefusedError as err:
        print(f"refused: {err}")
        return 2
    except Exception as err:  # HDF5 on a damaged file fails in many ways (OSError, KeyError, TypeError...)
        message = " ".join(str(err).split())
        print(f"truncated or corrupt HDF5 file ({type(err).__name__}: {message})")
        return 2
    np.savez(out, **{f"t{i}": value for i, value in enumerate(tensors.values())}, names=np.array(list(tensors)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
