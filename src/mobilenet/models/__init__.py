"""The MobileNet family: shared layers and base class, one file per architecture, one registry of names.

Importing this package registers every architecture: adding one is a new file here (its table
as data, its class, its registration) and its import below.
"""

from mobilenet.models import mobilenet_v1, mobilenet_v2, mobilenet_v3
from mobilenet.models.base import MobileNet
from mobilenet.models.registry import (
    ModelInfo,
    architectures,
    create_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "MobileNet",
    "ModelInfo",
    "architectures",
    "create_model",
    "get_model_info",
    "list_models",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3",
    "register_model",
]
