"""Google's TFLite graphs onto our models by the order computation happens, not by position in a file.

A TFLite classifier runs its weighted operators (``CONV_2D``, ``DEPTHWISE_CONV_2D``,
``FULLY_CONNECTED``) in the same order as our model runs its convolutions and linear layers;
batch norm is folded into the convolution before it, and activations, pooling, residual adds
and the squeeze-and-excite multiply carry no weights. :func:`weighted_layers` lists our layers
in execution order (a forward pass with hooks), :func:`fit_graph` pairs them with the graph's
weighted operators, checking every shape, and returns our state dict: a BN-folded convolution's
bias goes into an identity batch norm (:func:`~mobilenet.weights.converters.identity_bn`,
``bn_eps=0``), a convolution or linear layer with its own bias (squeeze-and-excite, V3's head)
takes it directly. :func:`match_candidates` finds, among candidate configurations of one
architecture, the one the graph fits, or names the first operator that no candidate could place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from mobilenet.errors import WeightsError
from mobilenet.models import MobileNet
from mobilenet.weights.converters import identity_bn, op_bias, tflite_to_torch
from mobilenet.weights.tflite import Op

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class Layer:
    """One of our weighted layers in execution order: its name, module and the BN that follows it (if any)."""

    name: str
    module: nn.Conv2d | nn.Linear
    bn: str | None


def dry_run(model: nn.Module, resolution: int, hooks: Iterable[RemovableHandle]) -> None:
    """One forward pass of a zero image through ``model`` in eval mode (its mode restored after), for the
    forward ``hooks`` to record what runs; the hooks are removed after it."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.in_chans, resolution, resolution))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()


def weighted_layers(model: MobileNet, resolution: int) -> list[Layer]:
    """Our convolutions and linear layers in the order a forward pass runs them.

    A convolution whose parent is a conv-BN unit (children ``conv`` and ``bn``) is paired with
    that batch norm.
    """
    names = {module: name for name, module in model.named_modules()}
    order: list[nn.Module] = []
    hooks = [
        module.register_forward_hook(lambda m, _i, _o: order.append(m))
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    dry_run(model, resolution, hooks)
    state = model.state_dict()
    layers = []
    for module in order:
        name = names[module]
        parent = name.rpartition(".")[0]
        bn = f"{parent}.bn" if name.endswith(".conv") and f"{parent}.bn.running_var" in state else None
        layers.append(Layer(name, module, bn))
    return layers


def _shape_of(op: Op) -> tuple[int, ...]:
    """The operator's weight in PyTorch's layout (OIHW, C1HW, or (out, in) for a 1x1 / fully connected)."""
    weight = op.weight
    if op.name == "FULLY_CONNECTED":
        return tuple(weight.shape)
    return tuple(tflite_to_torch(weight, depthwise=op.name == "DEPTHWISE_CONV_2D").shape)


def _fits(layer: Layer, op: Op) -> bool:
    module = layer.module
    if op.name not in WEIGHTED or op.weight is None:
        return False
    shape = _shape_of(op)
    if isinstance(module, nn.Linear):
        return int(np.prod(shape[1:])) == module.in_features and shape[0] == module.out_features
    depthwise = module.groups > 1 and module.groups == module.in_channels
    if depthwise != (op.name == "DEPTHWISE_CONV_2D"):
        return False
    same = op.kernel <= 1 or op.same_padding  # our tf_same models reproduce TensorFlow's SAME padding only
    return shape == tuple(module.weight.shape) and op.stride == module.stride[0] and same


def placed(layers: list[Layer], weighted: list[Op]) -> int:
    """How many layers, from the first, the weighted operators fit one to one."""
    count = 0
    for layer, op in zip(layers, weighted, strict=False):
        if not _fits(layer, op):
            break
        count += 1
    return count


def fit_graph(layers: list[Layer], ops: list[Op]) -> dict[str, torch.Tensor]:
    """Our state dict from the graph's weighted operators (call only when :func:`placed` fits them all)."""
    weighted = [op for op in ops if op.name in WEIGHTED]
    state: dict[str, torch.Tensor] = {}
    for layer, op in zip(layers, weighted, strict=True):
        weight_name = f"{layer.name}.weight"
        if isinstance(layer.module, nn.Linear):
            state[weight_name] = torch.from_numpy(np.ascontiguousarray(op.weight.reshape(op.weight.shape[0], -1)))
        else:
            state[weight_name] = tflite_to_torch(op.weight, depthwise=op.name == "DEPTHWISE_CONV_2D")
        bias = op_bias(op)
        if layer.bn is not None:
            state.update({f"{layer.bn}.{key}": value for key, value in identity_bn(bias).items()})
        else:
            state[f"{layer.name}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return state


def match_candidates(
    candidates: Iterable[dict[str, Any]],
    build: Callable[[dict[str, Any]], MobileNet],
    ops: list[Op],
    resolution: int,
    what: str,
    source: str,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The first candidate configuration whose model the graph fits, and its state dict.

    Otherwise a :class:`WeightsError` naming the first operator that the best candidate (the one
    placing the most operators) could not place.
    """
    weighted = [op for op in ops if op.name in WEIGHTED]
    best: tuple[int, dict[str, Any], list[Layer]] | None = None
    for kwargs in candidates:
        layers = weighted_layers(build(kwargs), resolution)
        count = placed(layers, weighted)
        if count == len(layers) == len(weighted):
            return kwargs, fit_graph(layers, weighted)
        if best is None or count > best[0]:
            best = (count, kwargs, layers)
    if best is None:
        raise WeightsError(f"{source}: no {what} configuration to try")
    count, kwargs, layers = best
    if count < min(len(layers), len(weighted)):
        op = weighted[count]
        got = f"{op.describe()} {_shape_of(op)}"
        wanted = f"{layers[count].name} {tuple(layers[count].module.weight.shape)}"
        problem = f"weighted operator {count} ({got}) does not fit {wanted}"
    else:
        problem = f"it has {len(weighted)} weighted operators, the closest {what} has {len(layers)}"
    raise WeightsError(f"{source}: not a {what} ({problem}, closest configuration {kwargs})")
