"""MobileNetV2: Table 2, the width rule, the published figures and their errata, the arguments and errors."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import mobilenet
from mobilenet import analysis
from mobilenet.errors import ConfigError, InputShapeError
from mobilenet.models import architectures, create_model, get_model_info, list_models
from mobilenet.models.layers import TFSameConv2d
from mobilenet.models.mobilenet_v1 import MobileNetV1
from mobilenet.models.mobilenet_v2 import TABLE4_ERRATA, TFSLIM, TFSLIM_MACS, TFSLIM_PARAMS, MobileNetV2

# Table 2 of the paper, one (t, c, s) per block: a row's stride applies to its first block only.
PAPER_BLOCKS = (
    [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2)]
    + [(6, 64, 1)] * 3
    + [(6, 96, 1)] * 3
    + [(6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1)]
)
# Stride 1 and as many channels out as in: blocks 2, 4-5, 7-9, 11-12, 14-15.
RESIDUAL = [False, False, True, False, True, True, False, True, True, True, False, True, True, False, True, True, False]
FIRST_OF_ROW = [0, 1, 3, 6, 10, 13, 16]  # the block that starts each of Table 2's seven bottleneck rows

# TF-slim's checkpoint table (research/slim/nets/mobilenet/README.md): MACs (M), params (M), top-1, top-5.
TFSLIM_PRINTED = {
    (1.4, 224): (582, 6.06, 75.0, 92.5),
    (1.3, 224): (509, 5.34, 74.4, 92.1),
    (1.0, 224): (300, 3.47, 71.8, 91.0),
    (1.0, 192): (221, 3.47, 70.7, 90.1),
    (1.0, 160): (154, 3.47, 68.8, 89.0),
    (1.0, 128): (99, 3.47, 65.3, 86.9),
    (1.0, 96): (56, 3.47, 60.3, 83.2),
    (0.75, 224): (209, 2.61, 69.8, 89.6),
    (0.75, 192): (153, 2.61, 68.7, 88.9),
    (0.75, 160): (107, 2.61, 66.4, 87.3),
    (0.75, 128): (69, 2.61, 63.2, 85.3),
    (0.75, 96): (39, 2.61, 58.8, 81.6),
    (0.5, 224): (97, 1.95, 65.4, 86.4),
    (0.5, 192): (71, 1.95, 63.9, 85.4),
    (0.5, 160): (50, 1.95, 61.0, 83.2),
    (0.5, 128): (32, 1.95, 57.7, 80.8),
    (0.5, 96): (18, 1.95, 51.2, 75.8),
    (0.35, 224): (59, 1.66, 60.3, 82.9),
    (0.35, 192): (43, 1.66, 58.2, 81.2),
    (0.35, 160): (30, 1.66, 55.7, 79.1),
    (0.35, 128): (20, 1.66, 50.8, 75.0),
    (0.35, 96): (11, 1.66, 45.5, 70.4),
}
# The paper's Table 4: MAdds (M), params (M), top-1 of MobileNetV2 and MobileNetV2 (1.4).
TABLE4_PRINTED = {1.0: (300, 3.4, 72.0), 1.4: (585, 6.9, 74.7)}

# 1.0-224 under our convention (conv + fc mult-adds; every parameter, BN included; 1000 classes).
MULT_ADDS_100_224 = 300_774_272
PARAMS_100_224 = 3_504_872
BN_PARAMS_100_224 = 34_112  # weight and bias of 17,056 batch-norm channels


pytestmark = pytest.mark.usefixtures("one_thread")


def _name(width: float, resolution: int) -> str:
    return f"mobilenet_v2_{round(width * 100):03d}_{resolution}"


def _params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, batch-norm parameters)."""
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    return sum(p.numel() for p in model.parameters()), bn


def _in_chs(block: nn.Module) -> int:
    return block.dw.conv.in_channels if isinstance(block.expand, nn.Identity) else block.expand.conv.in_channels


@pytest.fixture(scope="module")
def tfslim_mult_adds() -> dict[tuple[float, int], int]:
    """Our mult-adds of every TF-slim variant, profiled once."""
    return {key: analysis.profile(_name(*key)).mult_adds for key in TFSLIM_PRINTED}


# ------------------------------------------------------------------------------ Table 2


def test_body_is_table2() -> None:
    model = MobileNetV2()
    assert model.stem.conv.out_channels == 32 and model.stem.conv.stride == (2, 2)
    assert model.stem.conv.kernel_size == (3, 3) and isinstance(model.stem.act, nn.ReLU6)
    got, in_chs = [], 32
    for block in model.blocks:
        expanded = block.dw.conv.in_channels
        assert block.dw.conv.groups == expanded and expanded % in_chs == 0  # depthwise on t * c_in channels
        assert block.dw.conv.kernel_size == (3, 3) and block.project.conv.kernel_size == (1, 1)
        assert isinstance(block.dw.act, nn.ReLU6) and isinstance(block.project.act, nn.Identity)  # linear bottleneck
        got.append((expanded // in_chs, block.project.conv.out_channels, block.dw.conv.stride[0]))
        in_chs = block.project.conv.out_channels
    assert got == PAPER_BLOCKS
    assert [b.use_residual for b in model.blocks] == RESIDUAL
    assert model.head.conv.kernel_size == (1, 1) and model.head.conv.out_channels == 1280
    assert isinstance(model.head.act, nn.ReLU6)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 1280
    assert model.dropout.p == 0.2 and model.min_input_size == 32


def test_first_block_has_no_expansion() -> None:
    """Table 2's t = 1 row: depthwise on the stem's 32 channels, then the projection to 16."""
    first = MobileNetV2().blocks[0]
    assert isinstance(first.expand, nn.Identity)
    assert first.dw.conv.in_channels == first.dw.conv.groups == 32 and first.project.conv.out_channels == 16
    assert all(
        isinstance(b.expand[0], nn.Conv2d) and b.expand.conv.kernel_size == (1, 1) for b in MobileNetV2().blocks[1:]
    )
    assert all(isinstance(b.expand.act, nn.ReLU6) for b in MobileNetV2().blocks[1:])


def test_residual_adds_the_input_and_projection_is_linear() -> None:
    """With the projection's BN zeroed a residual block is the identity and the others output zeros."""
    model = MobileNetV2(width_mult=0.5).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        raw = model.blocks[0](x)
        for block in model.blocks:
            nn.init.zeros_(block.project.bn.weight)
            nn.init.zeros_(block.project.bn.bias)
        for block, residual in zip(model.blocks, RESIDUAL, strict=True):
            inp = torch.randn(1, _in_chs(block), 8, 8)
            out = block(inp)
            assert torch.equal(out, inp) if residual else not out.any()
    assert raw.min() < 0  # no activation after the projection


def test_relu_replaces_every_relu6_and_keeps_the_bottleneck_linear() -> None:
    """``act="relu"`` (the ReLU6 comparison): stem, expansions, depthwise and head change; projections do not."""
    model = MobileNetV2(act="relu")
    acts = [type(m) for name, m in model.named_modules() if name.endswith(".act") and ".project." not in name]
    assert len(acts) == 1 + 16 + 17 + 1 and set(acts) == {nn.ReLU}
    assert all(isinstance(b.project.act, nn.Identity) for b in model.blocks)
    assert not any(isinstance(m, nn.ReLU6) for m in model.modules())


# ------------------------------------------------------------------------------ the width rule


@pytest.mark.parametrize(
    ("width", "stem", "rows", "last"),
    [
        (0.35, 16, [8, 8, 16, 24, 32, 56, 112], 1280),
        (0.5, 16, [8, 16, 16, 32, 48, 80, 160], 1280),
        (0.75, 24, [16, 24, 24, 48, 72, 120, 240], 1280),
        (1.0, 32, [16, 24, 32, 64, 96, 160, 320], 1280),
        (1.4, 48, [24, 32, 48, 88, 136, 224, 448], 1792),
    ],
)
def test_width_rule(width: float, stem: int, rows: list[int], last: int) -> None:
    """make_divisible(c * alpha, 8) for every layer; the last 1280 only widened (alpha > 1)."""
    model = MobileNetV2(width_mult=width)
    assert model.stem.conv.out_channels == stem
    assert [model.blocks[i].project.conv.out_channels for i in FIRST_OF_ROW] == rows
    assert model.head.conv.out_channels == last == model.num_features
    assert model.blocks[1].expand.conv.out_channels == 6 * rows[0]  # t times the rounded input


def test_matches_torchvision_parameter_shapes() -> None:
    torchvision = pytest.importorskip("torchvision")
    for width in (1.0, 0.35, 1.4):
        ours = [tuple(p.shape) for p in MobileNetV2(width_mult=width).parameters()]
        theirs = [tuple(p.shape) for p in torchvision.models.mobilenet_v2(width_mult=width).parameters()]
        assert ours == theirs
    assert sum(p.numel() for p in torchvision.models.mobilenet_v2().parameters()) == PARAMS_100_224


# ------------------------------------------------------------------------------ cost


def test_cost_of_100_224() -> None:
    cost = analysis.profile("mobilenet_v2")
    assert cost.mult_adds == MULT_ADDS_100_224 and cost.params == PARAMS_100_224
    assert cost.layer_params == PARAMS_100_224 - BN_PARAMS_100_224
    kinds = [layer.kind for layer in cost.layers]
    assert len(kinds) == 1 + 2 + 16 * 3 + 2
    assert kinds[:3] == ["stem_conv", "depthwise", "projection"] and kinds[-2:] == ["pointwise", "fc"]
    assert kinds[3:-2] == ["expansion", "depthwise", "projection"] * 16
    block1 = cost.layers[5]  # blocks.1's projection: 16 -> 96 -> 24 at 56x56
    assert block1.name == "blocks.1.project.conv" and block1.standard_mult_adds == 3 * 3 * 16 * 24 * 56 * 56
    model = create_model("mobilenet_v2").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    assert counter.get_total_flops() == 2 * MULT_ADDS_100_224


# ------------------------------------------------------------------------------ published figures


def test_published_figures_are_recorded_as_printed() -> None:
    assert {key: (f.mult_adds_m, f.params_m, f.top1, f.top5) for key, f in TFSLIM.items()} == TFSLIM_PRINTED
    assert set(list_models("mobilenet_v2_*")) == {_name(*key) for key in TFSLIM_PRINTED}
    for (width, resolution), printed in TFSLIM_PRINTED.items():
        info = get_model_info(_name(width, resolution))
        assert info.input_size == resolution and info.kwargs == {"width_mult": width}
        figures = info.published["TF-slim"]
        assert (figures.mult_adds_m, figures.params_m, figures.top1, figures.top5) == printed
        table4 = info.published.get("Table 4 (V2)")
        expected = TABLE4_PRINTED.get(width) if resolution == 224 else None
        assert (table4 and (table4.mult_adds_m, table4.params_m, table4.top1)) == expected


def test_tfslim_mult_adds_are_truncated(tfslim_mult_adds: dict[tuple[float, int], int]) -> None:
    """Every TF-slim print is our count truncated to whole millions (rounding would add one to eight of them)."""
    for key, macs in tfslim_mult_adds.items():
        assert math.floor(macs / 1e6) == TFSLIM_PRINTED[key][0], key
    beyond_rounding = {key for key, macs in tfslim_mult_adds.items() if round(macs / 1e6) != TFSLIM_PRINTED[key][0]}
    assert beyond_rounding == set(TFSLIM_MACS)
    assert {key: round(tfslim_mult_adds[key] / 1e6, 1) for key in beyond_rounding} == TFSLIM_MACS
    for key in TFSLIM_PRINTED:
        erratum = get_model_info(_name(*key)).errata.get(("TF-slim", "mult_adds_m"))
        assert (erratum and erratum.corrected) == TFSLIM_MACS.get(key)


@pytest.mark.parametrize("width", [1.4, 1.3, 1.0, 0.75, 0.5, 0.35])
def test_tfslim_params_exclude_batch_norm(width: float) -> None:
    """The network less its BN weights and biases rounds to TF-slim's print, with 1000 or 1001 classes."""
    model = MobileNetV2(width_mult=width)
    total, bn = _params(model)
    printed = TFSLIM_PRINTED[width, 224][1]
    classifier_1001 = model.num_features + 1  # one more class: one more row of weights and a bias
    assert round((total - bn) / 1e6, 2) == round((total - bn + classifier_1001) / 1e6, 2) == printed
    assert round(total / 1e6, 2) == TFSLIM_PARAMS[width] != printed
    for resolution in (224, 192, 160, 128, 96):
        if (width, resolution) in TFSLIM_PRINTED:
            erratum = get_model_info(_name(width, resolution)).errata["TF-slim", "params_m"]
            assert erratum.corrected == TFSLIM_PARAMS[width] and "batch-norm" in erratum.reason


def test_table4_errata(tfslim_mult_adds: dict[tuple[float, int], int]) -> None:
    base, wide = MobileNetV2(), MobileNetV2(width_mult=1.4)
    (total, bn), (wide_total, wide_bn) = _params(base), _params(wide)
    # 1.0: 300.77M mult-adds and 3.47M parameters without BN, both truncated by the print.
    assert math.floor(tfslim_mult_adds[1.0, 224] / 1e6) == 300 and round(tfslim_mult_adds[1.0, 224] / 1e6, 1) == 300.8
    assert math.floor((total - bn) / 1e5) / 10 == 3.4 and round(total / 1e6, 2) == 3.50
    # 1.4: no convention (BN or not, 1000 or 1001 classes) gives 6.9M or 585M.
    conventions = [wide_total, wide_total - wide_bn, wide_total + 1793, wide_total - wide_bn + 1793]
    assert {round(p / 1e6, 1) for p in conventions} == {6.1}
    macs = tfslim_mult_adds[1.4, 224]
    assert {round(m / 1e6) for m in (macs, macs + 1792)} == {582} and round(macs / 1e6, 1) == 582.2
    assert {key: e.corrected for key, e in TABLE4_ERRATA.items()} == {
        (1.0, "mult_adds_m"): 300.8,
        (1.0, "params_m"): 3.50,
        (1.4, "mult_adds_m"): 582.2,
        (1.4, "params_m"): 6.11,
    }
    assert get_model_info("mobilenet_v2_140_224").errata["Table 4 (V2)", "params_m"].corrected == 6.11


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("output_stride", "dilations"),
    [(16, [1] * 14 + [2, 2, 2]), (8, [1] * 7 + [2] * 7 + [4, 4, 4])],
)
def test_output_stride_keeps_map_sizes(output_stride: int, dilations: list[int]) -> None:
    model = MobileNetV2(output_stride=output_stride, features_only=True).eval()
    assert [b.dw.conv.dilation[0] for b in model.blocks] == dilations
    assert [b.dw.conv.stride[0] for b in model.blocks].count(2) == {16: 3, 8: 2}[output_stride]
    assert _params(model) == _params(MobileNetV2(features_only=True))
    assert model.feature_reductions() == [min(r, output_stride) for r in (2, 4, 8, 16, 32)]
    with torch.no_grad():
        maps = model(torch.zeros(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [64 // r for r in model.feature_reductions()]
    classifier = MobileNetV2(output_stride=output_stride, num_classes=5).eval()
    with torch.no_grad():
        assert classifier.forward_features(torch.zeros(1, 3, 64, 64)).shape == (
            1,
            1280,
            64 // output_stride,
            64 // output_stride,
        )


def test_features_only_levels() -> None:
    model = MobileNetV2(features_only=True).eval()
    assert model.feature_channels() == [16, 24, 32, 96, 320]
    assert model.feature_reductions() == [2, 4, 8, 16, 32]
    assert [info["module"] for info in model.feature_info] == [
        "blocks.0",
        "blocks.2",
        "blocks.5",
        "blocks.12",
        "blocks.16",
    ]
    with torch.no_grad():
        maps = model(torch.zeros(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [
        (2, 16, 32, 32),
        (2, 24, 16, 16),
        (2, 32, 8, 8),
        (2, 96, 4, 4),
        (2, 320, 2, 2),
    ]
    assert not hasattr(model, "classifier") and not hasattr(model, "head")
    picked = MobileNetV2(width_mult=1.4, features_only=True, out_indices=(1, 3)).eval()
    assert picked.feature_channels() == [32, 136]
    with torch.no_grad():
        assert [m.shape[1:] for m in picked(torch.zeros(1, 3, 64, 64))] == [(32, 16, 16), (136, 4, 4)]


def test_stem_stride_1_for_cifar() -> None:
    model = MobileNetV2(num_classes=10, stem_stride=1).eval()
    assert model.min_input_size == 16 and model.feature_reductions() == [1, 2, 4, 8, 16]
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 1280, 2, 2)
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_tf_same_padding() -> None:
    model = MobileNetV2(padding="tf_same", width_mult=0.35).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 52 and all(isinstance(m, TFSameConv2d) and m.padding == (0, 0) for m in convs)
    assert not any(isinstance(m, TFSameConv2d) for m in MobileNetV2(width_mult=0.35).modules())
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 65, 65)).shape[-1] == 3  # ceil(65 / 32)


def test_input_checks() -> None:
    with pytest.raises(InputShapeError, match="at least 32 pixels"):
        MobileNetV2()(torch.zeros(1, 3, 31, 64))
    with pytest.raises(InputShapeError, match="in_chans=1"):
        MobileNetV2()(torch.zeros(1, 1, 64, 64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width_mult": 0}, "width_mult must be > 0"),
        ({"width_mult": -1.0}, "width_mult must be > 0"),
        ({"output_stride": 4}, "output_stride must be one of"),
        ({"stem_stride": 3}, "stem_stride must be 1 or 2"),
        ({"padding": "same"}, "unknown padding 'same'"),
        ({"act": "gelu"}, "unknown activation 'gelu'"),
        ({"out_indices": (0, 5)}, "out_indices"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"num_classes": -1}, "num_classes must be >= 0"),
        ({"in_chans": 0}, "in_chans must be >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        MobileNetV2(**kwargs)
    assert "\n" not in str(error.value)


def test_config_rebuilds_the_model() -> None:
    model = create_model("mobilenet_v2", width_mult=0.75, padding="tf_same", output_stride=16, in_chans=1)
    model.reset_classifier(7)
    model.set_dropout(0.3)
    assert set(model.config) == set(inspect.signature(MobileNetV2).parameters)
    again = create_model(model.arch, **model.config)
    assert again.classifier.out_features == 7 and again.dropout.p == 0.3 and again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------ state dicts


@pytest.mark.parametrize(
    ("kwargs", "width"),
    [
        ({"width_mult": 0.35, "num_classes": 10}, 0.35),
        ({"width_mult": 1.4}, 1.4),
        ({"width_mult": 0.6, "in_chans": 1}, 0.6),
        ({"width_mult": 0.33, "num_classes": 0}, 0.325),  # a width with the same channels at every layer
        ({"width_mult": 0.5, "features_only": True}, 0.5),
    ],
)
def test_kwargs_from_state_dict(kwargs: dict, width: float) -> None:
    model = MobileNetV2(**kwargs)
    state = model.state_dict()
    found = MobileNetV2.kwargs_from_state_dict(state)
    expected_classes = 0 if kwargs.get("features_only") else kwargs.get("num_classes", 1000)
    assert found == {"width_mult": width, "in_chans": kwargs.get("in_chans", 3), "num_classes": expected_classes}
    rebuilt = MobileNetV2(**found, features_only=kwargs.get("features_only", False)).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state.items()}


def test_state_dicts_of_other_architectures_are_not_v2() -> None:
    v2_state = MobileNetV2(width_mult=0.5).state_dict()
    others = [cls for cls in architectures() if cls is not MobileNetV2]
    assert MobileNetV1 in others
    for cls in others:
        assert MobileNetV2.kwargs_from_state_dict(create_model(cls.arch).state_dict()) is None, cls.arch
        assert cls.kwargs_from_state_dict(v2_state) is None, cls.arch
    assert MobileNetV2.kwargs_from_state_dict(MobileNetV1(body="shallow").state_dict()) is None
    truncated = {k: v for k, v in v2_state.items() if not k.startswith("blocks.16.")}
    assert MobileNetV2.kwargs_from_state_dict(truncated) is None


def test_bare_state_dict_loads(tmp_path: Path) -> None:
    model = MobileNetV2(width_mult=0.5, num_classes=10).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    loaded, card = mobilenet.load(tmp_path / "weights.pt")
    assert isinstance(loaded, MobileNetV2) and card.arch == "mobilenet_v2"
    assert loaded.config["width_mult"] == 0.5 and loaded.num_classes == 10
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))


# ------------------------------------------------------------------------------ registry


def test_registered_names() -> None:
    wide = mobilenet.create_model("mobilenet_v2_140_224")
    assert isinstance(wide, MobileNetV2) and wide.width_mult == 1.4 and wide.arch == "mobilenet_v2"
    assert wide.stem.conv.out_channels == 48 and wide.num_features == 1792
    small = mobilenet.create_model("mobilenet_v2_035_96", num_classes=10).eval()
    assert small.stem.conv.out_channels == 16 and small.num_features == 1280
    with torch.no_grad():
        assert small(torch.zeros(1, 3, 96, 96)).shape == (1, 10)
    info = mobilenet.get_model_info("mobilenet_v2_035_96")
    assert info.input_size == 96 and info.num_classes == 1000 and info.as_dict()["published"]["TF-slim"]["top1"] == 45.5
    assert mobilenet.get_model_info("mobilenet_v2").input_size == 224
    assert mobilenet.get_model_info("mobilenet_v2_100_224").published["Table 4 (V2)"].top1 == 72.0
