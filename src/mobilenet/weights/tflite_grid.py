"""Our model computing as an 8-bit TFLite graph does: every operator's output on its tensor's 8-bit grid.

Google's quantized TFLite files (uint8 activations, trained with quantization for V3) store,
for each operator's output tensor, a scale and zero point: the interpreter computes the
operator exactly (integer accumulation), then rounds the result to ``zero + round(x / scale)``
and clamps it to 0..255. A float conversion of the weights skips that rounding; for
MobileNetV3's files, trained with it in place, skipping it costs accuracy (hard-swish and the
squeeze-and-excite multiply see values the training never produced). :func:`attach` puts the
rounding back: a fake-quantize step (``torch.fake_quantize_per_tensor_affine``) after each of
our layers that corresponds to an operator of the graph.

The correspondence is read, not assumed: a forward pass lists our operations in order (a
convolution with its batch norm and ReLU, which the graph fuses into one operator; hard-swish;
the pools; squeeze-and-excite's hard-sigmoid, which the graph computes as an ADD of 3 with ReLU6
and a MUL by 1/6, and its multiply; residual additions), and each graph operator must take the
next one of its kind. A graph whose operators do not line up with the model is refused, naming
the first operator that could not be placed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from mobilenet.errors import WeightsError
from mobilenet.models.layers import InvertedResidual, SqueezeExcite
from mobilenet.weights.converters.graph import dry_run
from mobilenet.weights.formats import detect_format
from mobilenet.weights.tflite import Graph, Op, parse

Quant = tuple[float, int, int, int]
"""An 8-bit tensor's scale, zero point, and lowest and highest integer (0, 255 for uint8; -128, 127 for int8)."""
WEIGHTED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
POOLS = frozenset({"AVERAGE_POOL_2D", "MEAN"})
FUSED_ACTS = nn.ReLU | nn.ReLU6  # a ReLU leaves no operator: the output range's zero point clamps at 0


@dataclass
class Step:
    """One of our operations that a graph operator computes: its kind (the graph operator's name, or
    ``GATE`` for hard-sigmoid: ADD then MUL), the module whose output (or input) carries the result."""

    kind: str
    module: nn.Module
    on_input: bool = False
    quants: list[Quant] = field(default_factory=list)


def rounded(x: torch.Tensor, quant: Quant) -> torch.Tensor:
    """``x`` rounded to the 8-bit grid ``quant`` and clamped to its range."""
    scale, zero, low, high = quant
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, low, high)


def our_steps(model: nn.Module, resolution: int) -> list[Step]:
    """Our operations, in the order a forward pass runs them, as the graph operators that compute them."""
    steps: list[Step] = []

    def on_exit(module: nn.Module, *_: object) -> None:
        if isinstance(module, nn.Conv2d | nn.Linear):
            steps.append(Step("WEIGHTED", module))
        elif isinstance(module, nn.BatchNorm2d | FUSED_ACTS):  # fused into the convolution before it
            steps[-1].module = module
        elif isinstance(module, nn.Hardswish):
            steps.append(Step("HARD_SWISH", module))
        elif isinstance(module, nn.Hardsigmoid):
            steps.append(Step("GATE", module))
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            steps.append(Step("POOL", module))
        elif isinstance(module, SqueezeExcite):
            steps.append(Step("MUL", module))
        elif isinstance(module, InvertedResidual) and module.use_residual:
            steps.append(Step("ADD", module))

    def se_pool(module: nn.Module, *_: object) -> None:  # squeeze-and-excite pools inside its forward
        steps.append(Step("POOL", module.reduce, on_input=True))

    hooks = [module.register_forward_hook(on_exit) for module in model.modules()]
    hooks += [m.register_forward_pre_hook(se_pool) for m in model.modules() if isinstance(m, SqueezeExcite)]
    dry_run(model, resolution, hooks)
    return steps


def _kind(ops: Sequence[Op], index: int) -> str:
    """The step kind graph operator ``index`` computes ("" for a pool of a 1x1 map: nothing to do)."""
    op = ops[index]
    if op.name in WEIGHTED:
        return "WEIGHTED"
    if op.name in POOLS:
        before = ops[index - 1].output_shape if index else ()
        return "" if len(before) == 4 and before[1:3] == (1, 1) else "POOL"
    return op.name


def place(ops: Sequence[Op], steps: list[Step], source: str) -> None:
    """Give each of our ``steps`` the output grid(s) of the graph operators that compute it."""
    remaining = iter(steps)
    index = 0
    while index < len(ops):
        op, kind = ops[index], _kind(ops, index)
        if op.output_quant is None:
            raise WeightsError(f"{source}: operator {index} ({op.describe()}) has a float output: not an 8-bit graph")
        if not kind:
            index += 1
            continue
        step = next(remaining, None)
        gate = step is not None and step.kind == "GATE" and kind == "ADD"
        if gate and index + 1 < len(ops) and ops[index + 1].name == "MUL":  # relu6(x + 3) then * 1/6
            step.quants += [op.output_quant, ops[index + 1].output_quant]
            index += 2
            continue
        if step is None or step.kind != kind:
            ours = f"our next operation is {step.kind.lower()} ({type(step.module).__name__})" if step else "ours ended"
            raise WeightsError(f"{source}: cannot place operator {index} ({op.describe()}) on our model: {ours}")
        step.quants.append(op.output_quant)
        index += 1
    left = next(remaining, None)
    if left is not None:
        raise WeightsError(f"{source}: the graph ended before our {left.kind.lower()} ({type(left.module).__name__})")


def _hook(step: Step) -> Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]:
    if step.on_input:
        return lambda _m, args: (rounded(args[0], step.quants[0]), *args[1:])
    if step.kind == "GATE":  # hard-sigmoid(x) = relu6(x + 3) / 6: the ADD's grid, then the MUL's
        add, mul = step.quants
        return lambda _m, _i, out: rounded(rounded(out * 6, add) / 6, mul)
    return lambda _m, _i, out: rounded(out, step.quants[0])


def attach(model: nn.Module, graphs: Sequence[Graph], resolution: int, source: str) -> list[RemovableHandle]:
    """Round ``model``'s operations to the output grids of ``graphs`` (one file, or a body and its head),
    as the TFLite interpreter computes them; returns the hooks (``handle.remove()`` undoes them)."""
    steps = our_steps(model, resolution)
    place([op for graph in graphs for op in graph.ops], steps, source)
    return [
        step.module.register_forward_pre_hook(_hook(step))
        if step.on_input
        else step.module.register_forward_hook(_hook(step))
        for step in steps
    ]


def attach_to_files(model: nn.Module, source: str | Path | Sequence[str | Path]) -> list[RemovableHandle]:
    """:func:`attach` for the 8-bit TFLite file(s) ``model`` was loaded from (one file, or a body and head)."""
    paths = [Path(source)] if isinstance(source, str | Path) else [Path(path) for path in source]
    if not all(path.is_file() and detect_format(path) == "tflite" for path in paths):
        raise WeightsError(
            f"{' + '.join(map(str, paths))}: uint8 activations come from an 8-bit TFLite file's ranges; "
            "this is not one (use float activations)"
        )
    graphs = [parse(path) for path in paths]
    return attach(model, graphs, graphs[0].input_shape[1], " + ".join(map(str, paths)))
