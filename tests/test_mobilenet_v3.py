"""MobileNetV3: Tables 1 and 2 row by row, the minimalistic variants, widths, the published figures and their errata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet import analysis
from mobilenet.errors import ConfigError, InputShapeError
from mobilenet.models import create_model, get_model_info, list_models
from mobilenet.models.layers import InvertedResidual, SqueezeExcite, TFSameConv2d
from mobilenet.models.mobilenet_v1 import MobileNetV1
from mobilenet.models.mobilenet_v3 import MobileNetV3

# The paper's Table 1 (MobileNetV3-Large) and Table 2 (-Small), one bneck row each:
# (kernel, exp size, #out, SE, NL, s). Input channels are the previous row's #out (16 after the stem).
TABLE1_ROWS = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]
TABLE2_ROWS = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]
# (size, rows, conv2d 1x1 before the pool, conv2d 1x1 NBN after it)
TABLES = {"large": (TABLE1_ROWS, 960, 1280), "small": (TABLE2_ROWS, 576, 1024)}
ACT = {"RE": nn.ReLU, "HS": nn.Hardswish}


pytestmark = pytest.mark.usefixtures("one_thread")


def _row(block: InvertedResidual) -> tuple[int, int, int, bool, str, int]:
    """A built block read back as a table row."""
    act = "HS" if isinstance(block.dw.act, nn.Hardswish) else "RE" if isinstance(block.dw.act, nn.ReLU) else "?"
    return (
        block.dw.conv.kernel_size[0],
        block.dw.conv.in_channels,
        block.project.conv.out_channels,
        isinstance(block.se, SqueezeExcite),
        act,
        block.dw.conv.stride[0],
    )


@pytest.mark.parametrize("size", ["large", "small"])
def test_blocks_are_the_table_row_by_row(size: str) -> None:
    rows, head_chs, head_fc_chs = TABLES[size]
    model = MobileNetV3(size=size)
    assert len(model.blocks) == len(rows)
    in_chs = 16
    for index, (block, row) in enumerate(zip(model.blocks, rows, strict=True)):
        assert _row(block) == row, f"row {index + 1}"
        kernel, exp_chs, out_chs, _, nl, stride = row
        assert block.dw.conv.groups == exp_chs and block.dw.conv.padding == ((kernel - 1) // 2,) * 2
        if exp_chs == in_chs:  # Large's and Small's first row: no expansion convolution
            assert isinstance(block.expand, nn.Identity)
        else:
            assert block.expand.conv.in_channels == in_chs and isinstance(block.expand.act, ACT[nl])
        assert isinstance(block.project.act, nn.Identity)  # linear bottleneck
        assert block.use_residual == (stride == 1 and in_chs == out_chs)
        in_chs = out_chs
    # stem: conv2d 3x3, 16, HS, s2; head: conv2d 1x1 (BN, HS), pool, conv2d 1x1 NBN (bias, HS), classifier
    assert model.stem.conv.kernel_size == (3, 3) and model.stem.conv.stride == (2, 2)
    assert model.stem.conv.out_channels == 16 and isinstance(model.stem.act, nn.Hardswish)
    assert model.head.conv.kernel_size == (1, 1) and model.head.conv.out_channels == head_chs
    assert isinstance(model.head.bn, nn.BatchNorm2d) and isinstance(model.head.act, nn.Hardswish)
    assert isinstance(model.head_fc, nn.Linear) and model.head_fc.bias is not None
    assert (model.head_fc.in_features, model.head_fc.out_features) == (head_chs, head_fc_chs)
    assert isinstance(model.head_act, nn.Hardswish) and model.num_features == head_fc_chs
    assert model.classifier.in_features == head_fc_chs and model.dropout.p == 0.2


@pytest.mark.parametrize("size", ["large", "small"])
def test_squeeze_excite_is_a_quarter_of_the_expansion_after_the_depthwise_activation(size: str) -> None:
    model = MobileNetV3(size=size).eval()
    squeezes = [
        (b.dw.conv.out_channels, b.se.reduce.out_channels) for b in model.blocks if isinstance(b.se, SqueezeExcite)
    ]
    expected = {
        "large": [(72, 24), (120, 32), (120, 32), (480, 120), (672, 168), (672, 168), (960, 240), (960, 240)],
        "small": [(16, 8), (96, 24), (240, 64), (240, 64), (120, 32), (144, 40), (288, 72), (576, 144), (576, 144)],
    }[size]
    assert squeezes == expected  # make_divisible(exp / 4, 8): 120 / 4 = 30 -> 32, 144 / 4 = 36 -> 40
    se = next(b.se for b in model.blocks if isinstance(b.se, SqueezeExcite))
    assert isinstance(se.act, nn.ReLU) and isinstance(se.gate, nn.Hardsigmoid)
    assert se.reduce.bias is not None and se.expand.bias is not None
    order: list[str] = []
    block = next(b for b in model.blocks if isinstance(b.se, SqueezeExcite))
    for name in ("dw", "se", "project"):
        getattr(block, name).register_forward_hook(lambda *_, name=name: order.append(name))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    assert order == ["dw", "se", "project"]


def test_table2_erratum_no_squeeze_excite_on_smalls_last_convolution() -> None:
    """Table 2 ticks SE on Small's conv2d 1x1 (576); with it the paper's own 2.5M would be 2.71M."""
    model = MobileNetV3(size="small")
    assert [name for name, m in model.named_modules() if isinstance(m, SqueezeExcite) and "head" in name] == []
    with_se = sum(p.numel() for p in model.parameters()) + (576 * 144 + 144) + (144 * 576 + 576)
    assert with_se == 2_709_464 and round(with_se / 1e6, 1) == 2.7


@pytest.mark.parametrize("size", ["large", "small"])
def test_minimal_variant_has_no_se_no_hard_swish_and_3x3_kernels(size: str) -> None:
    full, minimal = MobileNetV3(size=size), MobileNetV3(size=size, minimal=True)
    modules = list(minimal.modules())
    assert not any(isinstance(m, (SqueezeExcite, nn.Hardswish, nn.Hardsigmoid)) for m in modules)
    assert isinstance(minimal.stem.act, nn.ReLU) and isinstance(minimal.head.act, nn.ReLU)
    assert isinstance(minimal.head_act, nn.ReLU)
    assert all(isinstance(b.dw.act, nn.ReLU) and b.dw.conv.kernel_size == (3, 3) for b in minimal.blocks)
    same = [(r[1], r[2], r[5]) for r in map(_row, full.blocks)]
    assert [(r[1], r[2], r[5]) for r in map(_row, minimal.blocks)] == same  # channels and strides unchanged
    assert minimal.head_fc.out_features == full.head_fc.out_features


@pytest.mark.parametrize(
    ("name", "mult_adds", "params", "torchvision_builder"),
    [
        ("mobilenet_v3_large", 216_589_760, 5_483_032, "mobilenet_v3_large"),
        ("mobilenet_v3_small", 56_510_400, 2_542_856, "mobilenet_v3_small"),
    ],
)
def test_profile_counts(name: str, mult_adds: int, params: int, torchvision_builder: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    cost = analysis.profile(name)
    assert (cost.mult_adds, cost.params) == (mult_adds, params)
    reference = getattr(torchvision.models, torchvision_builder)()
    assert sum(p.numel() for p in reference.parameters()) == params
    assert analysis.profile_module(reference, (3, 224, 224)).mult_adds == mult_adds
    kinds = {layer.kind for layer in cost.layers}
    assert {"stem_conv", "expansion", "depthwise", "se", "projection", "fc"} <= kinds


def test_width_075_follows_tfslim_expansion_rule() -> None:
    """Expansions keep the table's ratio to the scaled input (TF-slim's checkpoints, as timm ports them)."""
    large = MobileNetV3(width_mult=0.75)
    got = [(b.dw.conv.in_channels, b.project.conv.out_channels) for b in large.blocks]
    assert got == [
        (16, 16), (64, 24), (72, 24), (72, 32), (96, 32), (96, 32), (192, 64), (160, 64),
        (144, 64), (144, 64), (384, 88), (528, 88), (528, 120), (720, 120), (720, 120),
    ]  # fmt: skip
    assert [b.se.reduce.out_channels for b in large.blocks if isinstance(b.se, SqueezeExcite)] == [
        24, 24, 24, 96, 136, 136, 184, 184,
    ]  # fmt: skip
    assert (large.stem.conv.out_channels, large.head.conv.out_channels, large.head_fc.out_features) == (16, 720, 1280)
    small = MobileNetV3(size="small", width_mult=0.75)
    assert [b.project.conv.out_channels for b in small.blocks] == [16, 24, 24, 32, 32, 32, 40, 40, 72, 72, 72]
    assert (small.head.conv.out_channels, small.head_fc.out_features) == (432, 1024)
    wide = MobileNetV3(width_mult=1.25)
    assert (wide.head.conv.out_channels, wide.head_fc.out_features) == (1200, 1600)  # head_fc widened above 1
    assert (analysis.profile(large).mult_adds, analysis.profile(large).params) == (154_560_624, 3_993_528)


@pytest.mark.parametrize(
    ("output_stride", "size", "dilations", "reductions"),
    [(16, 14, [1] * 13 + [2, 2], [2, 4, 8, 16, 16]), (8, 28, [1] * 7 + [2] * 6 + [4, 4], [2, 4, 8, 8, 8])],
)
def test_output_stride_dilates_the_last_blocks(
    output_stride: int, size: int, dilations: list[int], reductions: list[int]
) -> None:
    model = MobileNetV3(output_stride=output_stride).eval()
    assert [b.dw.conv.dilation[0] for b in model.blocks] == dilations
    assert sum(b.dw.conv.stride[0] > 1 for b in model.blocks) == {16: 3, 8: 2}[output_stride]
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 960, size, size)
    assert model.min_input_size == 32
    assert MobileNetV3(output_stride=output_stride, features_only=True).feature_reductions() == reductions


@pytest.mark.parametrize(
    ("size", "channels", "modules"),
    [
        ("large", [16, 24, 40, 112, 960], ["blocks.0", "blocks.2", "blocks.5", "blocks.11", "head"]),
        ("small", [16, 16, 24, 48, 576], ["stem", "blocks.0", "blocks.2", "blocks.7", "head"]),
    ],
)
def test_features_only_levels(size: str, channels: list[int], modules: list[str]) -> None:
    model = MobileNetV3(size=size, features_only=True).eval()
    assert not hasattr(model, "classifier") and not hasattr(model, "head_fc")
    assert model.feature_channels() == channels and model.feature_reductions() == [2, 4, 8, 16, 32]
    assert [info["module"] for info in model.feature_info] == modules
    with torch.no_grad():
        maps = model(torch.zeros(1, 3, 224, 224))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (c, 224 // r, 224 // r) for c, r in zip(channels, [2, 4, 8, 16, 32], strict=True)
    ]
    picked = MobileNetV3(size=size, features_only=True, out_indices=(1, 4)).eval()
    with torch.no_grad():
        assert [m.shape[1] for m in picked(torch.zeros(1, 3, 64, 64))] == [channels[1], channels[4]]


def test_stem_stride_1_on_32x32_and_input_checks() -> None:
    model = MobileNetV3(size="small", num_classes=10, stem_stride=1).eval()
    assert model.min_input_size == 16
    with torch.no_grad():
        assert model.forward_features(torch.zeros(2, 3, 32, 32)).shape == (2, 576, 2, 2)
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        with pytest.raises(InputShapeError, match="minimum 16x16"):
            model(torch.zeros(1, 3, 8, 8))
        with pytest.raises(InputShapeError, match="in_chans=1"):
            model(torch.zeros(1, 1, 32, 32))


def test_tf_same_padding() -> None:
    torch_model = MobileNetV3(size="small").eval()
    tf_model = MobileNetV3(size="small", padding="tf_same").eval()
    convs = [m for m in tf_model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(isinstance(m, TFSameConv2d) and m.padding == (0, 0) for m in convs)
    tf_model.load_state_dict(torch_model.state_dict())  # same names and shapes
    with torch.no_grad():
        assert tf_model.forward_features(torch.zeros(1, 3, 225, 225)).shape == (1, 576, 8, 8)  # ceil(225 / 32)
        x = torch.randn(1, 3, 224, 224)
        same, symmetric = tf_model.stem(x), torch_model.stem(x)
    assert same.shape == symmetric.shape == (1, 16, 112, 112)
    # on an even size TF pads the stride-2 stem 0 before and 1 after, torch 1 and 1: one pixel shift
    assert not torch.allclose(same, symmetric, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "medium"}, "size must be 'large'"),
        ({"width_mult": 0}, "width_mult must be > 0"),
        ({"output_stride": 4}, "output_stride must be one of"),
        ({"stem_stride": 3}, "stem_stride must be 1 or 2"),
        ({"padding": "valid"}, "unknown padding 'valid'"),
        ({"out_indices": (5,)}, "must be within 0-4"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"num_classes": -1}, "num_classes must be >= 0"),
        ({"in_chans": 0}, "in_chans must be >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        MobileNetV3(**kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": "large", "minimal": False, "width_mult": 1.0, "num_classes": 1000},
        {"size": "small", "minimal": False, "width_mult": 0.75, "num_classes": 10, "in_chans": 1},
        {"size": "large", "minimal": True, "width_mult": 0.5, "num_classes": 0},
        {"size": "small", "minimal": True, "width_mult": 1.25, "num_classes": 1001},
    ],
)
def test_state_dict_recognised_and_rebuilt(kwargs: dict) -> None:
    model = MobileNetV3(**kwargs)
    state = model.state_dict()
    found = MobileNetV3.kwargs_from_state_dict(state)
    assert found == {"in_chans": 3, **kwargs}
    assert MobileNetV1.kwargs_from_state_dict(state) is None
    rebuilt = create_model(model.arch, **model.config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in state.items()}
    features = MobileNetV3(**{**kwargs, "num_classes": 0}, features_only=True).state_dict()
    assert MobileNetV3.kwargs_from_state_dict(features) == {**found, "num_classes": 0}


def test_bare_state_dict_loads_as_v3(tmp_path: Path) -> None:
    model = MobileNetV3(size="small", width_mult=0.75, num_classes=10).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    loaded, card = mobilenet.load(tmp_path / "weights.pt")
    assert isinstance(loaded, MobileNetV3) and card.arch == "mobilenet_v3"
    assert {k: loaded.config[k] for k in ("size", "minimal", "width_mult", "num_classes")} == {
        "size": "small",
        "minimal": False,
        "width_mult": 0.75,
        "num_classes": 10,
    }
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_other_architectures_are_not_v3_and_v3_is_not_theirs() -> None:
    v1 = create_model("mobilenet_v1").state_dict()
    assert MobileNetV3.kwargs_from_state_dict(v1) is None
    ours = MobileNetV3(size="small").state_dict()
    if "mobilenet_v2" in list_models():
        v2_class = get_model_info("mobilenet_v2").builder
        assert MobileNetV3.kwargs_from_state_dict(create_model("mobilenet_v2").state_dict()) is None
        assert v2_class.kwargs_from_state_dict(ours) is None
        assert v2_class.kwargs_from_state_dict(MobileNetV3(minimal=True).state_dict()) is None
    broken = {k: v for k, v in ours.items() if not k.startswith("blocks.3.se.")}  # SE missing in one block only
    assert MobileNetV3.kwargs_from_state_dict(broken) is None


def test_registered_names_and_published_figures() -> None:
    names = list_models("mobilenet_v3*")
    assert names == [
        "mobilenet_v3",
        "mobilenet_v3_large",
        "mobilenet_v3_large_075",
        "mobilenet_v3_large_minimal",
        "mobilenet_v3_small",
        "mobilenet_v3_small_075",
        "mobilenet_v3_small_minimal",
    ]
    small = get_model_info("mobilenet_v3_small")
    assert small.kwargs == {"size": "small", "minimal": False, "width_mult": 1.0} and small.input_size == 224
    assert small.published["Table 3 (V3)"].top1 == 67.4 and small.published["TF-slim"].top1 == 67.5
    assert set(get_model_info("mobilenet_v3_large_minimal").published) == {"TF-slim"}
    model = create_model("mobilenet_v3_small_075", width_mult=0.5, num_classes=7)  # width as an argument
    assert model.config["size"] == "small" and model.head_fc.out_features == 1024 and model.num_classes == 7


@pytest.mark.parametrize("name", list_models("mobilenet_v3_*"))
def test_published_figures_reproduced_or_explained(name: str) -> None:
    """What ``mobilenet paper`` checks for these names: every figure within its rounding, or an erratum."""
    info = get_model_info(name)
    cost = analysis.profile(name)
    for source, figures in info.published.items():
        for quantity, printed, ours in (
            ("mult_adds_m", figures.mult_adds_m, cost.mult_adds / 1e6),
            ("params_m", figures.params_m, cost.params / 1e6),
        ):
            erratum = info.errata.get((source, quantity))
            check = analysis._check(source, name, quantity, printed, ours, erratum)
            assert check.ok, (source, quantity, printed, ours)
            assert (erratum is not None) == (not analysis._check(source, name, quantity, printed, ours, None).ok)


def test_errata_arithmetic() -> None:
    """The numbers each erratum's reason quotes, from the networks themselves."""
    large, small = create_model("mobilenet_v3_large"), create_model("mobilenet_v3_small")
    small_075 = create_model("mobilenet_v3_small_075")
    count = analysis.profile

    def n_params(model: nn.Module, skip: tuple[type, ...] = ()) -> int:
        return sum(p.numel() for m in model.modules() if not isinstance(m, skip) for p in m.parameters(recurse=False))

    # Small with the 1280-wide head_fc printed before v5 (2.9M / 2.4M; 44M at 0.75)
    for model, params, macs, printed in ((small, 2.947, 56.91, 2.9), (small_075, 2.409, 43.77, 2.4)):
        head, extra = model.head.conv.out_channels, 1280 - model.head_fc.out_features
        cost = count(model)
        assert round((cost.params + extra * (head + 1 + 1000)) / 1e6, 3) == params and round(params, 1) == printed
        assert round((cost.mult_adds + extra * (head + 1000)) / 1e6, 2) == macs
    assert round(43.77) == 44 and round(count(small_075).mult_adds / 1e6) == 43
    # Large: 5.4M matches no convention; 219M is not the first block's expansion or 1001 classes
    no_bn = n_params(large, (nn.BatchNorm2d,))
    no_se_bias = no_bn - sum(p.numel() for n, p in large.named_parameters() if ".se." in n and n.endswith("bias"))
    assert (round(no_bn / 1e6, 3), round(no_se_bias / 1e6, 3)) == (5.459, 5.454)
    assert round(no_se_bias / 1e6, 1) == round((5_483_032 + 1281) / 1e6, 1) == 5.5
    assert 16 * 16 * 112 * 112 == 3_211_264 and round((216_589_760 + 3_211_264) / 1e6, 2) == 219.80
    # Small minimalistic: 65M against 52.29M; SE and 5x5 kernels cost 4.22M
    minimal = count("mobilenet_v3_small_minimal").mult_adds
    assert round((count(small).mult_adds - minimal) / 1e6, 2) == 4.22
    assert round((minimal + 256 * (576 + 1000)) / 1e6, 2) == 52.69
