"""Keras ``applications.MobileNet`` weights (``mobilenet_{1_0,7_5,5_0,2_5}_{224,192,160,128}_tf.h5``).

Read with h5py, from either HDF5 layout Keras 2 writes: a weights file (``save_weights``, the
published files: one group per layer at the root) or a whole model (``save``: the same groups
under ``model_weights``). Each layer group lists its datasets in the ``weight_names`` attribute
(``conv1/kernel:0`` ...). Layer names: ``conv1``/``conv1_bn`` (the stem), ``conv_dw_N``,
``conv_dw_N_bn``, ``conv_pw_N``, ``conv_pw_N_bn`` (N = 1-13) and ``conv_preds`` (a 1x1
convolution with bias, 1000 classes; absent in the ``_no_top`` files).

Conventions: kernels are HWIO (depthwise: HW C 1), transposed here to PyTorch's OIHW; BN
epsilon is 1e-3 (Keras's default); inputs are scaled to [-1, 1] (mean = std = 0.5). Keras pads
stride-2 convolutions with an explicit (0, 1) zero padding (bottom/right) and stride-1 ones
"same": on even input sizes, which all published resolutions are, this is exactly TensorFlow
SAME padding (``padding="tf_same"``); on odd sizes TF SAME pads (1, 1) where Keras pads (0, 1).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenet.errors import WeightsError
from mobilenet.weights.formats import one_line, optional_import
from mobilenet.weights.layouts import LAYOUTS, Converted, rename

KERAS_BN_EPS = 1e-3
KERAS_NORM = (0.5, 0.5, 0.5)
KERAS_FILE_SIZE = re.compile(r"mobilenet_\d_\d_(\d+)_tf")  # the published files name their resolution


def read_keras(path: Path) -> Converted:
    """A Keras MobileNet HDF5 file as our weights (a one-line error if its layers are not MobileNet's)."""
    h5py = optional_import("h5py")
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)  # a whole model keeps its weights under model_weights
            tensors = _layer_weights(h5py, root)
    except OSError as err:
        raise WeightsError(f"{path}: truncated or corrupt HDF5 file ({one_line(err)})") from err
    state = {key: _torch_layout(key, value) for key, value in rename(tensors, LAYOUTS["keras"], str(path)).items()}
    size = KERAS_FILE_SIZE.search(path.name)
    meta = {
        "format": "keras",
        "source": str(path),
        "mean": KERAS_NORM,
        "std": KERAS_NORM,
        "input_size": int(size.group(1)) if size else 224,
    }
    return Converted(state, {"padding": "tf_same", "act": "relu6"}, meta, bn_eps=KERAS_BN_EPS)


def _layer_weights(h5py: Any, root: Any) -> dict[str, np.ndarray]:
    """``layer/param`` -> array for every layer group (``param`` without Keras's ``:0`` suffix)."""
    tensors = {}
    for layer, group in root.items():
        if not isinstance(group, h5py.Group):
            continue
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        if not names:
            names = _datasets(h5py, group)
        for name in names:
            tensors[f"{layer}/{name.rsplit('/', 1)[-1].split(':')[0]}"] = np.asarray(group[name])
    return tensors


def _datasets(h5py: Any, group: Any) -> list[str]:
    """Paths of every dataset under ``group`` (for files without ``weight_names``)."""
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def _torch_layout(key: str, value: np.ndarray) -> torch.Tensor:
    """Keras HWIO kernels (depthwise HWC1; ``conv_preds`` 11IO) to PyTorch's layouts."""
    if key.endswith("conv.weight"):
        value = value.transpose((2, 3, 0, 1) if ".dw." in key else (3, 2, 0, 1))
    elif key == "classifier.weight":
        value = value.reshape(value.shape[-2:]).T
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
