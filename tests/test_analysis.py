"""The cost analysis against the paper's figures (Tables 2-9, TF-slim) and torch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mobilenet import analysis
from mobilenet.models import create_model
from mobilenet.models.mobilenet_v1 import variant_name

# TF-slim's checkpoint table: (alpha, resolution) -> (million mult-adds, million params). Where it
# contradicts the arithmetic (alpha = 0.75, and 0.25-192) the network's own figure is expected.
TFSLIM = {
    (1.0, 224): (569, 4.24),
    (1.0, 192): (418, 4.24),
    (1.0, 160): (291, 4.24),
    (1.0, 128): (186, 4.24),
    (0.75, 224): (325, 2.59),  # TF-slim prints 317; the paper's Table 6 prints 325
    (0.75, 192): (239, 2.59),  # TF-slim prints 233
    (0.75, 160): (166, 2.59),  # TF-slim prints 162
    (0.75, 128): (107, 2.59),  # TF-slim prints 104
    (0.5, 224): (150, 1.34),
    (0.5, 192): (110, 1.34),
    (0.5, 160): (77, 1.34),
    (0.5, 128): (49, 1.34),
    (0.25, 224): (41, 0.47),
    (0.25, 192): (30, 0.47),  # TF-slim prints 34
    (0.25, 160): (21, 0.47),
    (0.25, 128): (14, 0.47),
}


@pytest.mark.parametrize(("width", "resolution"), list(TFSLIM))
def test_all_16_variants(width: float, resolution: int) -> None:
    macs, params = TFSLIM[(width, resolution)]
    cost = analysis.profile(variant_name(width, resolution))
    assert cost.input_size == (resolution, resolution)
    assert abs(cost.mult_adds / 1e6 - macs) <= max(0.5, 0.005 * macs)
    assert abs(cost.params / 1e6 - params) <= 0.05


def test_table2_shares_by_layer_type() -> None:
    shares = analysis.profile("mobilenet_v1_100_224").by_kind()
    expected = {"pointwise": (94.86, 74.59), "depthwise": (3.06, 1.06), "fc": (0.18, 24.33)}
    for kind, (macs_share, params_share) in expected.items():
        assert shares[kind]["mult_adds"] == pytest.approx(macs_share, abs=0.01)
        assert shares[kind]["params"] == pytest.approx(params_share, abs=0.05)
    # the stem: 0.02% of parameters as printed; 1.91% of mult-adds (the paper's 1.19 makes its column sum 99.29)
    assert shares["stem_conv"]["params"] == pytest.approx(0.02, abs=0.005)
    assert shares["stem_conv"]["mult_adds"] == pytest.approx(1.91, abs=0.01)
    assert sum(row["mult_adds"] for row in shares.values()) == pytest.approx(100)


def test_table3_one_layer_and_the_formulas() -> None:
    # DK = 3, M = N = 512, DF = 14: standard 462M / 2.36M, separable 52.3M / 0.27M
    assert analysis.standard_conv_mult_adds(3, 512, 512, 14) / 1e6 == pytest.approx(462, abs=0.5)
    assert analysis.separable_conv_mult_adds(3, 512, 512, 14) / 1e6 == pytest.approx(52.3, abs=0.05)
    assert analysis.separable_conv_mult_adds(3, 384, 384, 14) / 1e6 == pytest.approx(29.6, abs=0.05)
    assert analysis.separable_conv_mult_adds(3, 384, 384, 10) / 1e6 == pytest.approx(15.1, abs=0.05)
    ratio = analysis.separable_conv_mult_adds(3, 512, 512, 14) / analysis.standard_conv_mult_adds(3, 512, 512, 14)
    assert ratio == pytest.approx(analysis.separable_cost_ratio(3, 512)) == pytest.approx(1 / 512 + 1 / 9)
    table3 = {c.item: c for c in analysis.paper_checks() if c.table == "Table 3" and c.quantity == "params_m"}
    assert table3["standard"].ours == pytest.approx(2.36, abs=0.005)
    assert table3["separable"].ours == pytest.approx(0.27, abs=0.005)
    assert table3["alpha_0.75"].ours == pytest.approx(0.15, abs=0.005)


@pytest.mark.parametrize(
    ("name", "macs", "params"),
    [
        ("mobilenet_v1_100_224", 569, 4.2),  # Tables 4, 6, 7, 8
        ("mobilenet_v1_conv", 4866, 29.3),  # Table 4
        ("mobilenet_v1_shallow", 307, 2.9),  # Table 5
        ("mobilenet_v1_075_224", 325, 2.6),  # Tables 5, 6
        ("mobilenet_v1_050_224", 149, 1.3),  # Table 6
        ("mobilenet_v1_025_224", 41, 0.5),  # Table 6
        ("mobilenet_v1_100_192", 418, 4.2),  # Table 7
        ("mobilenet_v1_100_160", 290, 4.2),  # Table 7
        ("mobilenet_v1_100_128", 186, 4.2),  # Table 7
    ],
)
def test_paper_tables_4_to_7(name: str, macs: float, params: float) -> None:
    cost = analysis.profile(name)
    assert abs(cost.mult_adds / 1e6 - macs) <= max(0.5, 0.005 * macs)
    assert abs(cost.params / 1e6 - params) <= 0.05


def test_table9_half_width_160() -> None:
    # Table 9 prints 76M / 1.32M: 149M scaled by (160/224)^2; the network computes 76.5M
    cost = analysis.profile("mobilenet_v1_050_160")
    assert cost.mult_adds / 1e6 == pytest.approx(76.5, abs=0.05)
    assert cost.params / 1e6 == pytest.approx(1.32, abs=0.05)


@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    [
        ("mobilenet_v1", {}, 224),
        ("mobilenet_v1", {"width_mult": 0.35, "num_classes": 10}, 100),
        ("mobilenet_v1_conv", {}, 128),
        ("mobilenet_v1", {"stem_stride": 1, "num_classes": 10}, 32),
        ("mobilenet_v1", {"padding": "tf_same", "output_stride": 16}, 161),
    ],
)
def test_mult_adds_agree_with_torch_flop_counter(name: str, kwargs: dict, size: int) -> None:
    model = create_model(name, **kwargs).eval()
    cost = analysis.profile_module(model, (3, size, size))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    assert counter.get_total_flops() == 2 * cost.mult_adds


def test_profile_rows() -> None:
    cost = analysis.profile("mobilenet_v1_100_224")
    assert len(cost.layers) == 28
    assert [layer.kind for layer in cost.layers[:3]] == ["stem_conv", "depthwise", "pointwise"]
    assert cost.layers[-1].kind == "fc" and cost.layers[-1].mult_adds == 1024 * 1000
    assert cost.params == sum(p.numel() for p in create_model("mobilenet_v1_100_224").parameters())
    pw = cost.layers[14]  # blocks.6: the Table 3 layer
    assert pw.name == "blocks.6.pw.conv" and pw.in_shape == (512, 14, 14)
    assert pw.standard_mult_adds == 3 * 3 * 512 * 512 * 14 * 14
    assert pw.separable_ratio == pytest.approx(1 / 512 + 1 / 9)
    full_conv = analysis.profile("mobilenet_v1_conv")
    assert {layer.kind for layer in full_conv.layers} == {"stem_conv", "full_conv", "fc"}


def test_every_paper_check_passes_and_errata_are_named() -> None:
    checks = analysis.paper_checks()
    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
    errata = {(c.table, c.item) for c in checks if c.note}
    assert ("Table 1", "row 26 dw/s2 @7") in errata
    assert ("TF-slim", "mobilenet_v1_075_224") in errata and ("Table 6", "mobilenet_v1_075_224") not in errata
    assert len({(table, item) for table, item in errata if not item.startswith(("mobilenet_v2", "mobilenet_v3"))}) == 8
