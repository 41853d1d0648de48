"""mobilenet: MobileNetV1 exactly as published, with the tools to analyse, train and deploy it."""

from mobilenet.errors import MobileNetError
from mobilenet.models import MobileNetV1, create_model, get_model_info, list_models

__version__ = "0.1.0"
__all__ = ["MobileNetError", "MobileNetV1", "__version__", "create_model", "get_model_info", "list_models"]
