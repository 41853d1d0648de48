"""Where the cost goes: parameters and mult-adds per layer, and the paper's tables reproduced.

Convention (the paper's, Section 3.1 and Table 2): mult-adds are those of the convolution and
fully connected layers; batch norm, activations and pooling are not counted (they cost well
under 1% and the paper leaves them out). One mult-add is one multiply and one add, so
``FLOPs = 2 * mult-adds``. Counts come from the real modules, measured with forward hooks on
one input of the requested size (batch 1), so any variant the builder makes is analysed the
same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import torch
from torch import nn

from mobilenet import paper
from mobilenet.constants import DEFAULT_INPUT_SIZE
from mobilenet.models import create_model, get_model_info, list_models
from mobilenet.models.layers import ConvBNAct, DepthwiseSeparable
from mobilenet.models.mobilenet_v1 import scale_channels


def standard_conv_mult_adds(kernel: int, in_chs: int, out_chs: int, size: int, width: int | None = None) -> int:
    """Equation 2: ``DK*DK*M*N*DF*DF``, a standard convolution on a DF x DF output.

    ``width`` gives a rectangular DF x width output its own second side.
    """
    return kernel * kernel * in_chs * out_chs * size * (width or size)


def separable_conv_mult_adds(kernel: int, in_chs: int, out_chs: int, size: int, width: int | None = None) -> int:
    """Equation 5: ``DK*DK*M*DF*DF + M*N*DF*DF``, depthwise then pointwise."""
    return (kernel * kernel * in_chs + in_chs * out_chs) * size * (width or size)


def separable_cost_ratio(kernel: int, out_chs: int) -> float:
    """Equation 6: separable over standard cost, ``1/N + 1/DK^2``."""
    return 1 / out_chs + 1 / kernel**2


@dataclass
class LayerCost:
    """One convolution or fully connected layer, as the model ran it (batch 1)."""

    index: int
    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int
    stride: int
    params: int
    mult_adds: int
    params_share: float = 0.0  # percent of all conv + fc parameters
    mult_adds_share: float = 0.0  # percent of all mult-adds
    standard_mult_adds: int | None = None  # the standard conv a (depthwise, pointwise) pair replaces
    separable_ratio: float | None = None  # the pair's mult-adds over standard_mult_adds

    @property
    def in_size(self) -> int:
        """Input height (1 for a fully connected layer)."""
        return self.in_shape[1] if len(self.in_shape) == 3 else 1


@dataclass
class Profile:
    """The per-layer cost table of one model at one input size."""

    model: str
    input_size: tuple[int, int]
    params: int  # every parameter of the model, batch norm included
    mult_adds: int
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def layer_params(self) -> int:
        """Parameters of the conv and fc layers (the paper's Table 2 convention)."""
        return sum(layer.params for layer in self.layers)

    def by_kind(self) -> dict[str, dict[str, float]]:
        """Table 2: share of mult-adds and parameters (percent) per layer kind."""
        shares: dict[str, dict[str, float]] = {}
        for layer in self.layers:
            row = shares.setdefault(layer.kind, {"mult_adds": 0.0, "params": 0.0})
            row["mult_adds"] += layer.mult_adds_share
            row["params"] += layer.params_share
        return shares

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form: totals, shares by kind and every layer."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "params": self.params,
            "layer_params": self.layer_params,
            "mult_adds": self.mult_adds,
            "flops": 2 * self.mult_adds,
            "by_kind": self.by_kind(),
            "convention": "mult-adds of conv and fc layers; BN, activations and pooling excluded",
            "layers": [asdict(layer) for layer in self.layers],
        }


def _layer_kind(name: str, module: nn.Module, first_conv: bool) -> str:
    """The layer's role: ``stem_conv``, ``depthwise``, ``pointwise``, ``expansion`` / ``projection``
    (an inverted residual's 1x1 convolutions), ``se`` (squeeze-and-excite), ``full_conv`` or ``fc``."""
    if isinstance(module, nn.Linear):
        return "fc"
    if ".se." in name:
        return "se"
    if module.groups > 1 and module.groups == module.in_channels:
        return "depthwise"
    if module.kernel_size == (1, 1):
        return {"expand": "expansion", "project": "projection"}.get(name.split(".")[-2], "pointwise")
    return "stem_conv" if first_conv else "full_conv"


def _layer_cost(name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor, first: bool) -> LayerCost:
    params = sum(p.numel() for p in module.parameters(recurse=False))
    if isinstance(module, nn.Linear):
        macs = module.in_features * module.out_features
        kernel = stride = 1
    else:
        kh, kw = module.kernel_size
        macs = y[0].numel() * (module.in_channels // module.groups) * kh * kw
        kernel, stride = kh, module.stride[0]
    return LayerCost(
        0, name, _layer_kind(name, module, first), tuple(x.shape[1:]), tuple(y.shape[1:]), kernel, stride, params, macs
    )


def profile_module(module: nn.Module, input_shape: tuple[int, ...], name: str = "") -> Profile:
    """Run ``module`` once on zeros of ``input_shape`` (C, H, W) and count every layer."""
    layers: list[LayerCost] = []
    hooks = []

    def hook(sub_name: str) -> Any:
        def record(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            layers.append(_layer_cost(sub_name, mod, inputs[0], output, first=not layers))

        return record

    for sub_name, sub in module.named_modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)):
            hooks.append(sub.register_forward_hook(hook(sub_name)))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_shape))
    finally:
        module.train(was_training)
        for handle in hooks:
            handle.remove()
    _annotate(layers)
    total_params = sum(p.numel() for p in module.parameters())
    mult_adds = sum(layer.mult_adds for layer in layers)
    return Profile(name, (input_shape[1], input_shape[2]), total_params, mult_adds, layers)


def _annotate(layers: list[LayerCost]) -> None:
    """Number the layers, compute shares and the standard-conv equivalent of each separable block.

    A block ends with the 1x1 convolution after a depthwise one (V1's pointwise, V2/V3's
    projection, with any squeeze-and-excite between) and starts at the expansion before the
    depthwise, if any. It replaces a standard convolution with the depthwise kernel from the
    block's input channels to its output channels; ``separable_ratio`` is the block's cost over it.
    """
    total_macs = sum(layer.mult_adds for layer in layers) or 1
    total_params = sum(layer.params for layer in layers) or 1
    for index, layer in enumerate(layers):
        layer.index = index
        layer.mult_adds_share = 100 * layer.mult_adds / total_macs
        layer.params_share = 100 * layer.params / total_params
        if layer.kind not in ("pointwise", "projection"):
            continue
        dw = index - 1
        while dw >= 0 and layers[dw].kind == "se":
            dw -= 1
        if dw < 0 or layers[dw].kind != "depthwise":
            continue
        start = dw - 1 if dw and layers[dw - 1].kind == "expansion" else dw
        out_chs, height, width = layer.out_shape
        layer.standard_mult_adds = standard_conv_mult_adds(
            layers[dw].kernel, layers[start].in_shape[0], out_chs, height, width
        )
        block = sum(part.mult_adds for part in layers[start : index + 1])
        layer.separable_ratio = block / layer.standard_mult_adds


def profile(
    model: str | nn.Module = "mobilenet_v1",
    resolution: int | None = None,
    width_mult: float | None = None,
) -> Profile:
    """The cost table of a registered model (or a module) at ``resolution`` (its default if None)."""
    if isinstance(model, str):
        name = model
        overrides = {} if width_mult is None else {"width_mult": width_mult}
        module = create_model(name, **overrides)
        size = resolution or get_model_info(name).input_size
    else:
        name, module, size = type(model).__name__, model, resolution or DEFAULT_INPUT_SIZE
    in_chans = getattr(module, "in_chans", 3)
    return profile_module(module, (in_chans, size, size), name)


# ----------------------------------------------------------------------------- the paper


@dataclass
class Check:
    """One published figure against ours."""

    table: str
    item: str
    quantity: str
    paper: float
    ours: float
    tolerance: float
    ok: bool
    note: str = ""

    @property
    def deviation(self) -> float:
        """Relative deviation of ours from the paper, in percent."""
        return 100 * (self.ours - self.paper) / self.paper if self.paper else 0.0


BASE_MODEL = "mobilenet_v1_100_224"
"""The paper's baseline, 1.0 MobileNet-224: the model of Tables 1 and 2."""


def _half_unit(value: float) -> float:
    """Half a unit of the last digit printed: the paper's own rounding."""
    text = repr(float(value)).removesuffix(".0")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10**-decimals


def _check(
    table: str, item: str, quantity: str, printed: float, ours: float, erratum: paper.Erratum | None = None
) -> Check:
    """Within the paper's rounding or 0.5% for mult-adds, 0.05M for parameters, 0.05 points for
    shares; a known erratum (``erratum``, else :data:`paper.ERRATA`) is checked against the figure
    its source's arithmetic implies."""
    erratum = erratum or paper.ERRATA.get((table, item, quantity))
    expected = erratum.corrected if erratum else printed
    if quantity.endswith("share"):
        tolerance = 0.05
    elif quantity == "mult_adds_m":
        tolerance = max(_half_unit(expected), 0.005 * expected)
    else:
        tolerance = max(_half_unit(expected), 0.05)
    note = f"erratum: {erratum.reason} (checked against {erratum.corrected:g})" if erratum else ""
    return Check(table, item, quantity, printed, ours, tolerance, abs(ours - expected) <= tolerance + 1e-9, note)


def _table1_checks(base: Profile) -> Iterator[Check]:
    layers = base.layers
    kinds = {"conv": "stem_conv", "dw": "depthwise", "pw": "pointwise", "fc": "fc"}
    for row, ((kind, stride, size), layer) in enumerate(zip(paper.TABLE1_PRINTED, layers, strict=True)):
        item = f"row {row + 1} {kind}/s{stride} @{size}"
        same = kinds[kind] == layer.kind and layer.in_size == size
        if row == paper.TABLE1_ERRATUM_ROW:
            after = layers[row + 1].in_size
            note = f"erratum: printed s{stride}, but the next row's input is {after}x{after}, so s{layer.stride}"
            yield Check("Table 1", item, "stride", stride, layer.stride, 0, same and layer.stride == 1, note)
        else:
            yield Check("Table 1", item, "input_size", size, layer.in_size, 0, same and layer.stride == stride)


def _table2_checks(base: Profile) -> Iterator[Check]:
    shares = base.by_kind()
    for kind, (macs_share, params_share) in paper.TABLE2.items():
        key = "stem_conv" if kind == "stem" else kind
        yield _check("Table 2", kind, "mult_adds_share", macs_share, shares[key]["mult_adds"])
        yield _check("Table 2", kind, "params_share", params_share, shares[key]["params"])


def _table3_checks() -> Iterator[Check]:
    k, m, df = paper.TABLE3_LAYER["kernel"], paper.TABLE3_LAYER["channels"], paper.TABLE3_LAYER["size"]
    thin = scale_channels(m, paper.TABLE3_LAYER["alpha"])
    layers = {
        "standard": (ConvBNAct(m, m, k), m, df),
        "separable": (DepthwiseSeparable(m, m), m, df),
        "alpha_0.75": (DepthwiseSeparable(thin, thin), thin, df),
        "rho_0.714": (DepthwiseSeparable(thin, thin), thin, paper.TABLE3_LAYER["rho_size"]),
    }
    for item, (module, chs, size) in layers.items():
        cost = profile_module(module, (chs, size, size))
        figures = paper.TABLE3[item]
        yield _check("Table 3", item, "mult_adds_m", figures.mult_adds_m, cost.mult_adds / 1e6)
        yield _check("Table 3", item, "params_m", figures.params_m, cost.layer_params / 1e6)


@cache
def totals(name: str) -> tuple[int, int]:
    """Mult-adds and parameters of a registered name at its own input size (the network is fixed by the name)."""
    cost = profile(name)
    return cost.mult_adds, cost.params


def _model_checks() -> Iterator[Check]:
    """The published tables of every registered model that has figures (V1's Tables 4-9, TF-slim's, V2's, V3's)."""
    for name in list_models():
        published = get_model_info(name).published
        if not published:
            continue
        mult_adds, parameters = totals(name)
        errata = get_model_info(name).errata
        for source, figures in published.items():
            macs, params = mult_adds / 1e6, parameters / 1e6
            yield _check(source, name, "mult_adds_m", figures.mult_adds_m, macs, errata.get((source, "mult_adds_m")))
            yield _check(source, name, "params_m", figures.params_m, params, errata.get((source, "params_m")))


def paper_checks() -> list[Check]:
    """Every cost figure of the paper (Tables 1-9) and of TF-slim's table, against ours."""
    base = profile(BASE_MODEL)  # Tables 1, 2 and 7's first row: profiled once
    return [*_table1_checks(base), *_table2_checks(base), *_table3_checks(), *_model_checks()]
