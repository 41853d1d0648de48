"""The MobileNetV1 family: Table 1, the stride erratum, the arguments, shapes and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet.errors import ConfigError, InputShapeError, UnknownModelError
from mobilenet.models import create_model, list_models
from mobilenet.models.layers import ConvBNAct, DepthwiseSeparable, TFSameConv2d, tf_same_padding
from mobilenet.models.mobilenet_v1 import MobileNetV1, scale_channels

# Table 1 of the paper, (channels, stride) of the 13 depthwise separable blocks, last one s1.
PAPER_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def _ceil_halvings(size: int, times: int) -> int:
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


def test_body_is_table1() -> None:
    model = MobileNetV1()
    assert model.stem.conv.out_channels == 32 and model.stem.conv.stride == (2, 2)
    assert model.stem.conv.kernel_size == (3, 3) and model.stem.conv.bias is None
    got = [(b.pw.conv.out_channels, b.dw.conv.stride[0]) for b in model.blocks]
    assert got == PAPER_BLOCKS
    for block in model.blocks:
        assert block.dw.conv.groups == block.dw.conv.in_channels  # depthwise: one filter per channel
        assert block.dw.conv.kernel_size == (3, 3) and block.pw.conv.kernel_size == (1, 1)
        assert block.dw.conv.bias is None and block.pw.conv.bias is None
        assert isinstance(block.dw.bn, nn.BatchNorm2d) and isinstance(block.pw.act, nn.ReLU6)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 1024
    # 28 layers counting depthwise and pointwise separately (Section 3.2)
    assert 1 + 2 * len(model.blocks) + 1 == 28


def test_last_block_keeps_7x7() -> None:
    """The paper prints s2 for the last depthwise layer; with it the map would be 4x4, not 7x7."""
    model = MobileNetV1().eval()
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 224, 224))
    assert features.shape == (1, 1024, 7, 7)
    assert model.blocks[-1].dw.conv.stride == (1, 1)


@pytest.mark.parametrize("width", [0.1, 0.25, 1.0, 1.4])
@pytest.mark.parametrize("size", [32, 96, 100, 224, 320, 513])
def test_shapes_across_width_and_size(width: float, size: int) -> None:
    model = MobileNetV1(num_classes=7, width_mult=width).eval()
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, size, size))
        logits = model.forward_head(features)
    final = _ceil_halvings(size, 5)
    assert features.shape == (1, max(int(1024 * width), 8), final, final)
    assert logits.shape == (1, 7)


@pytest.mark.parametrize(("width", "expected"), [(0.75, [24, 48, 96, 192, 384, 768]), (0.1, [8, 8, 12, 25, 51, 102])])
def test_width_rule_truncates_with_floor_of_8(width: float, expected: list[int]) -> None:
    assert [scale_channels(c, width) for c in (32, 64, 128, 256, 512, 1024)] == expected


def test_features_only_levels() -> None:
    model = MobileNetV1(width_mult=0.5, features_only=True).eval()
    assert model.feature_channels() == [32, 64, 128, 256, 512]
    assert model.feature_reductions() == [2, 4, 8, 16, 32]
    with torch.no_grad():
        maps = model(torch.zeros(2, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [
        (2, 32, 112, 112),
        (2, 64, 56, 56),
        (2, 128, 28, 28),
        (2, 256, 14, 14),
        (2, 512, 7, 7),
    ]
    assert not hasattr(model, "classifier")


def test_features_only_out_indices() -> None:
    model = MobileNetV1(features_only=True, out_indices=(1, 3)).eval()
    assert model.feature_channels() == [128, 512]
    with torch.no_grad():
        maps = model(torch.zeros(1, 3, 96, 96))
    assert [m.shape[-1] for m in maps] == [24, 6]


@pytest.mark.parametrize(("output_stride", "final", "dilations"), [(16, 14, [1, 2]), (8, 28, [1, 2, 2, 2, 2, 2, 2, 4])])
def test_output_stride_dilates_the_last_blocks(output_stride: int, final: int, dilations: list[int]) -> None:
    model = MobileNetV1(output_stride=output_stride, features_only=True).eval()
    dense = MobileNetV1(features_only=True)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in dense.parameters())
    tail = [b.dw.conv.dilation[0] for b in model.blocks][-len(dilations) :]
    assert tail == dilations
    assert all(b.dw.conv.stride == (1, 1) for b in model.blocks[-len(dilations) :])
    with torch.no_grad():
        maps = model(torch.zeros(1, 3, 224, 224))
    assert maps[-1].shape[-2:] == (final, final)
    assert model.feature_reductions()[-1] == output_stride


def test_stem_stride_1_for_cifar() -> None:
    model = MobileNetV1(num_classes=10, stem_stride=1).eval()
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (2, 2)
    assert model.min_input_size == 16
    assert model.feature_reductions() == [1, 2, 4, 8, 16]


def test_head_surface() -> None:
    model = MobileNetV1(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert model.forward_head(features, pre_logits=True).shape == (2, 1024)
        assert torch.equal(model(x), model.forward_head(features))
    model.reset_classifier(5)
    assert model.classifier.out_features == 5 and model.num_classes == 5
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, 1024)


def test_activation_and_in_chans() -> None:
    model = MobileNetV1(act="relu", in_chans=1, num_classes=10)
    assert not any(isinstance(m, nn.ReLU6) for m in model.modules())
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 27
    assert model.stem.conv.in_channels == 1
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_baselines() -> None:
    conv = create_model("mobilenet_v1_conv")
    assert all(isinstance(b, ConvBNAct) and b.conv.kernel_size == (3, 3) and b.conv.groups == 1 for b in conv.blocks)
    assert [(b.conv.out_channels, b.conv.stride[0]) for b in conv.blocks] == PAPER_BLOCKS
    shallow = create_model("mobilenet_v1_shallow")
    assert all(isinstance(b, DepthwiseSeparable) for b in shallow.blocks)
    kept = [(b.pw.conv.out_channels, b.dw.conv.stride[0]) for b in shallow.blocks]
    assert kept == [spec for spec in PAPER_BLOCKS if spec != (512, 1)]
    with torch.no_grad():
        assert shallow.eval().forward_features(torch.zeros(1, 3, 224, 224)).shape[-2:] == (7, 7)


# ------------------------------------------------------------------------ TF "SAME" padding


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "expected"),
    [
        (224, 3, 2, 1, (0, 1)),  # even size, stride 2: the extra pixel after
        (225, 3, 2, 1, (1, 1)),  # odd size, stride 2: symmetric
        (7, 3, 1, 1, (1, 1)),
        (14, 3, 1, 2, (2, 2)),
        (8, 1, 2, 1, (0, 0)),
        (9, 5, 2, 1, (2, 2)),
        (10, 5, 2, 1, (1, 2)),
    ],
)
def test_tf_same_padding_rule(size: int, kernel: int, stride: int, dilation: int, expected: tuple[int, int]) -> None:
    assert tf_same_padding(size, kernel, stride, dilation) == expected


@pytest.mark.parametrize(("size", "pads"), [(8, (0, 1)), (9, (1, 1))])
def test_tf_same_conv_matches_explicit_padding(size: int, pads: tuple[int, int]) -> None:
    """TensorFlow's SAME for a stride-2 3x3 conv: pad (0, 1) on even sizes, (1, 1) on odd."""
    torch.manual_seed(0)
    conv = TFSameConv2d(2, 3, 3, stride=2, bias=False)
    x = torch.randn(1, 2, size, size)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (*pads, *pads)), conv.weight, stride=2)
    out = conv(x)
    assert out.shape[-1] == math.ceil(size / 2)
    torch.testing.assert_close(out, expected)
    symmetric = torch.nn.functional.conv2d(x, conv.weight, stride=2, padding=1)
    assert torch.equal(out, expected) and (size % 2 == 1) == torch.allclose(out, symmetric)


def test_tf_same_model_uses_it_everywhere() -> None:
    model = MobileNetV1(padding="tf_same").eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, TFSameConv2d) and m.padding == (0, 0) for m in convs)
    with torch.no_grad():
        for size in (224, 225):
            assert model.forward_features(torch.zeros(1, 3, size, size)).shape[-1] == _ceil_halvings(size, 5)


# ------------------------------------------------------------------------------- registry


def test_registry_names_and_metadata() -> None:
    names = list_models()
    assert {"mobilenet_v1", "mobilenet_v1_conv", "mobilenet_v1_shallow"} <= set(names)
    variants = list_models("mobilenet_v1_[0-9]*")
    assert len(variants) == 16
    model = mobilenet.create_model("mobilenet_v1_075_192", num_classes=10)
    assert model.width_mult == 0.75 and model.classifier.out_features == 10
    assert model.config["num_classes"] == 10 and model.arch == "mobilenet_v1"
    info = mobilenet.get_model_info("mobilenet_v1_075_192")
    assert info.input_size == 192 and info.num_classes == 1000 and len(info.mean) == 3
    assert info.as_dict()["published"]["TF-slim"]["top1"] == 67.2
    assert mobilenet.get_model_info("mobilenet_v1_050_160").published["Table 9"].top1 == 60.2


def test_config_rebuilds_the_model() -> None:
    """``model.config`` holds the constructor arguments: the same name and config build the same network."""
    model = create_model("mobilenet_v1", width_mult=0.5, head_conv=64, padding="tf_same")
    model.reset_classifier(7)
    model.set_dropout(0.3)
    again = create_model(model.arch, **model.config)
    assert again.classifier.out_features == 7 and again.dropout.p == 0.3
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("width", [0, -0.5])
def test_bad_width(width: float) -> None:
    with pytest.raises(ConfigError, match="width_mult must be > 0"):
        MobileNetV1(width_mult=width)


def test_input_too_small() -> None:
    with pytest.raises(InputShapeError, match="at least 32 pixels"):
        MobileNetV1()(torch.zeros(1, 3, 31, 64))


def test_wrong_channels() -> None:
    with pytest.raises(InputShapeError, match="in_chans=1"):
        MobileNetV1()(torch.zeros(1, 1, 64, 64))


def test_unknown_model() -> None:
    with pytest.raises(UnknownModelError, match="mobilenet models"):
        create_model("mobilenet_v1_080_224")


@pytest.mark.parametrize("kwargs", [{"output_stride": 4}, {"stem_stride": 3}, {"act": "gelu"}, {"padding": "same"}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        MobileNetV1(**kwargs)


# ------------------------------------------------------------------- V2/V3 building blocks


@pytest.mark.parametrize(
    ("value", "expected"),
    [(32 * 0.35, 16), (16 * 0.35, 8), (32 * 0.75, 24), (1280 * 1.4, 1792), (72 / 4, 24), (960 / 4, 240), (100, 104)],
)
def test_make_divisible_rounds_to_8_never_below_90_percent(value: float, expected: int) -> None:
    from mobilenet.models.layers import make_divisible

    assert make_divisible(value) == expected and expected % 8 == 0 and expected >= 0.9 * value


def test_inverted_residual_structure() -> None:
    from mobilenet.models.layers import InvertedResidual, SqueezeExcite

    block = InvertedResidual(16, 64, 16, kernel=5, stride=1, act="hard_swish", se_chs=16).eval()
    assert block.use_residual and isinstance(block.se, SqueezeExcite) and block.se.reduce.out_channels == 16
    assert block.dw.conv.kernel_size == (5, 5) and block.dw.conv.groups == 64
    assert isinstance(block.project.act, nn.Identity)  # the linear bottleneck
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        inner = block.project(block.se(block.dw(block.expand(x))))
        assert torch.allclose(block(x), x + inner)
    no_expand = InvertedResidual(16, 16, 24, stride=2)
    assert isinstance(no_expand.expand, nn.Identity) and not no_expand.use_residual
