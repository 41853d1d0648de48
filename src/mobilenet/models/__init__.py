"""The MobileNet model family: shared blocks, the V1 network and one registry of names."""

from mobilenet.models.blocks import ConvBNAct, DepthwiseSeparable, TFSameConv2d, tf_same_padding
from mobilenet.models.mobilenet_v1 import TABLE1, LayerSpec, MobileNetV1, scale_channels
from mobilenet.models.registry import (
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    register_model,
    variant_name,
)

__all__ = [
    "TABLE1",
    "ConvBNAct",
    "DepthwiseSeparable",
    "LayerSpec",
    "MobileNetV1",
    "ModelInfo",
    "TFSameConv2d",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
    "scale_channels",
    "tf_same_padding",
    "variant_name",
]
