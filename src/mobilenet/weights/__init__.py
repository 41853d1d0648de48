"""Pretrained weights from every ecosystem, loaded into our models, and our own format.

- :func:`load_weights`: a file, folder or tag in, a configured model and its card out. Readers
  per format (:mod:`.tflite`, :mod:`.keras`, :mod:`.hf`, :mod:`.formats`) turn bytes into data;
  converters per architecture (:mod:`.converters`) turn the data into our names.
- :func:`save_native` / :func:`read_native`: our ``.safetensors`` with the model card.
- :func:`imagenet_classes`: ImageNet's 1000 class names (1001 with Google's background).

Nothing here runs code from a file: safetensors, ``torch.load(weights_only=True)``, h5py and a
flatbuffer reader only read data.
"""

from mobilenet.weights.formats import FORMATS, detect_format
from mobilenet.weights.imagenet import imagenet_classes
from mobilenet.weights.loader import load_weights
from mobilenet.weights.native import read_native, save_native

__all__ = ["FORMATS", "detect_format", "imagenet_classes", "load_weights", "read_native", "save_native"]
