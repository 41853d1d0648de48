"""mobilenet: the MobileNet family exactly as published, with the tools to analyse, train and deploy it.

``create_model(name)`` builds a network of the registry (``list_models()``); ``load(source)``
returns a trained, converted or exported model with its :class:`ModelCard`.
"""

from importlib.metadata import PackageNotFoundError, version

from mobilenet.card import ModelCard
from mobilenet.errors import MobileNetError
from mobilenet.load import load
from mobilenet.models import create_model, get_model_info, list_models

try:
    __version__ = version("mobilenet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "unknown"
__all__ = ["MobileNetError", "ModelCard", "__version__", "create_model", "get_model_info", "list_models", "load"]
