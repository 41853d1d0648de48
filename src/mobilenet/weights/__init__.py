"""Pretrained weights from every ecosystem, loaded into our MobileNetV1, and our own format.

- :func:`load_weights`: a file, folder or tag in, a configured model and its metadata out.
  Google's TFLite models (:mod:`.from_tflite`), Keras .h5 (:mod:`.from_keras`), timm and
  Hugging Face state dicts (:mod:`.from_pytorch`), our native safetensors (:mod:`.native`);
  where each library keeps each tensor is written once, in :mod:`.layouts`.
- :func:`save_native` / :func:`read_native`: our ``.safetensors`` with the metadata.
- :func:`imagenet_classes`: ImageNet's 1000 class names (1001 with Google's background).

Nothing here runs code from a file: safetensors, ``torch.load(weights_only=True)``, h5py and a
flatbuffer reader only read data.
"""

from typing import Any

from mobilenet.weights.formats import FORMATS, detect_format
from mobilenet.weights.imagenet import imagenet_classes
from mobilenet.weights.loader import load_weights
from mobilenet.weights.native import read_native, save_native


def summary(meta: dict[str, Any]) -> str:
    """One line describing loaded weights: width, classes, padding, input size, format."""
    arch = meta["arch"]
    background = " (0 = background)" if meta.get("label_offset") else ""
    return (
        f"MobileNetV1 width_mult={arch['width_mult']:g}, {arch['num_classes']} classes{background}, "
        f"{arch.get('padding', 'torch')} padding, input {meta['input_size']}, from {meta.get('format', '?')}"
    )


__all__ = ["FORMATS", "detect_format", "imagenet_classes", "load_weights", "read_native", "save_native", "summary"]
