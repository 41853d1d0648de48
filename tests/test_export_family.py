"""V2 and V3 through the export path: BN folding, ONNX / ExecuTorch / .pt2 files, `eval --exported`, bad input.

V3-Small (TF-SAME padding) uses every operator of the family in fewer blocks than V3-Large: 3x3
and 5x5 depthwise convolutions, ReLU, hard-swish, squeeze-and-excite's mean, hard-sigmoid and
multiply, the residual add, the asymmetric pad and the two linear layers; V1 and V2 add only
ReLU6 (tests/test_export.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError
from mobilenet.export import export, fold_bn, load_exported, read_exported_card
from mobilenet.models import create_model
from mobilenet.models.layers import SqueezeExcite
from mobilenet.weights import save_native
from reference import randomize_bn
from test_export import fails, run_json

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("cat", "dog")
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
FAMILY = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v3_large_minimal")
SUFFIXES = {"onnx": "onnx", "executorch": "pte", "pt2": "pt2"}
NEEDS = {"onnx": ("onnxruntime", "onnxscript"), "executorch": ("executorch",), "pt2": ("torchao",)}


def family_model(name: str, num_classes: int = 2, seed: int = 0, **kwargs) -> nn.Module:
    """A narrow family member with non-trivial BN statistics and a classifier with large logits."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=num_classes, width_mult=0.5, **kwargs)
    with torch.no_grad():
        randomize_bn(model, torch.Generator().manual_seed(seed))
        model.classifier.weight.normal_(0, 2.0)
    return model.eval()


def needs(fmt: str) -> None:
    for module in NEEDS[fmt]:
        pytest.importorskip(module)


# --- BN folding ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILY)
def test_fold_bn_covers_inverted_residuals_and_squeeze_excite(name: str) -> None:
    model = family_model(name, padding="tf_same")
    folded = fold_bn(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert expected.abs().max().item() > 1  # logits of a useful size
    assert (got - expected).abs().max().item() <= 1e-6 * expected.abs().max().item()  # float32 rounding
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert batch_norms > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    # every expansion, depthwise and projection conv took its BN as a bias; SE's two convs had a bias already
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    biased = sum(isinstance(m, nn.Conv2d) and m.bias is not None for m in folded.modules())
    assert biased == batch_norms + 2 * len(se)
    folded_se = [m for m in folded.modules() if isinstance(m, SqueezeExcite)]
    assert all(torch.equal(a.expand.weight, b.expand.weight) for a, b in zip(se, folded_se, strict=True))
    assert sum(isinstance(m, nn.Hardswish) for m in folded.modules()) == sum(
        isinstance(m, nn.Hardswish) for m in model.modules()
    )
    assert (len(se) > 0) == (name in ("mobilenet_v3_large", "mobilenet_v3_small"))


# --- every format, from the command line -----------------------------------------------------


@pytest.fixture(scope="module")
def v3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path, Path]:
    """A 2-class 32-px V3-Small checkpoint (TF-SAME padding) and a 2-class folder of 6 images of that size."""
    root = tmp_path_factory.mktemp("family")
    model = family_model("mobilenet_v3_small", padding="tf_same")
    card = ModelCard("mobilenet_v3", classes=CLASSES, mean=MEAN, std=STD, input_size=32, kind="small")
    save_native(model, card, root / "run" / "best.safetensors")
    generator = torch.Generator().manual_seed(0)
    for index, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for i in range(3):
            pixels = torch.randint(0, 256, (32, 32, 3), generator=generator, dtype=torch.uint8)
            pixels[..., index] //= 4
            Image.fromarray(pixels.numpy()).save(root / "data" / name / f"{i}.png")
    return model, root / "run", root / "data"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_v3_export_matches_pytorch_and_evaluates_like_it(fmt: str, v3_checkpoint, tmp_path: Path, capsys) -> None:
    needs(fmt)
    model, run, data = v3_checkpoint
    out = tmp_path / f"model.{SUFFIXES[fmt]}"
    info = run_json(capsys, ["export", "--checkpoint", str(run), "--format", fmt, "--out", str(out), "--json"])
    card = read_exported_card(out)
    assert card.arch == "mobilenet_v3" and card.kwargs == model.config and card.kwargs["size"] == "small"
    assert (card.classes, card.mean, card.std, card.input_size, card.kind) == (CLASSES, MEAN, STD, 32, "small")
    assert card.quantization is None and info["classes"] == list(CLASSES)

    runtime, _ = load_exported(out)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected, got = model(x), runtime(x)
        assert expected.abs().max().item() > 1
        assert (got - expected).abs().max().item() <= 1e-4
        assert torch.equal(got.argmax(1), expected.argmax(1))

    exported = run_json(capsys, ["eval", "--exported", str(out), "--data", str(data), "--json"])
    original = run_json(capsys, ["eval", "--checkpoint", str(run), "--data", str(data), "--json"])
    assert exported["n"] == original["n"] == 6
    assert (exported["top1"], exported["per_class"]) == (original["top1"], original["per_class"])
    assert abs(exported["loss"] - original["loss"]) <= 1e-4


# --- bad input: one line, exit status 2, no file left behind ---------------------------------


class Erfinv(nn.Module):
    """An activation built on ``erfinv``, an operator neither ONNX nor ExecuTorch's core opset has."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erfinv(torch.tanh(x) * 0.5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "op"),
    [
        ("onnx", "ONNX (opset 18) cannot express the operator prims.erf_inv"),
        ("executorch", "ExecuTorch cannot express the operator aten.erfinv"),
    ],
)
def test_export_names_the_operator_a_format_cannot_express(
    fmt: str, op: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    needs(fmt)
    model = family_model("mobilenet_v3_small")
    model.head_act = Erfinv()
    card = ModelCard("mobilenet_v3", classes=CLASSES, input_size=32)
    monkeypatch.setattr("mobilenet.cli.export.load", lambda source: (model, card))
    out = tmp_path / f"model.{SUFFIXES[fmt]}"
    fails(capsys, ["export", "--weights", "v3-with-erfinv", "--format", fmt, "--out", str(out)], op)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", list(SUFFIXES))
def test_too_few_calibration_images_for_a_v3(fmt: str, v3_checkpoint, tmp_path: Path, capsys) -> None:
    _, run, data = v3_checkpoint
    out = tmp_path / f"int8.{SUFFIXES[fmt]}"
    argv = ["export", "--checkpoint", str(run), "--format", fmt, "--out", str(out), "--int8"]
    fails(capsys, [*argv, "--calib-data", str(data), "--calib-images", "7"], "has 6 images, 7 were asked")
    fails(capsys, [*argv, "--calib-data", str(data), "--calib-images", "0"], "at least 1")
    assert not any(tmp_path.iterdir())


def test_library_export_refuses_what_the_cli_refuses(v3_checkpoint, tmp_path: Path) -> None:
    model, _, data = v3_checkpoint
    card = ModelCard("mobilenet_v3", classes=CLASSES, input_size=32)
    with pytest.raises(ExportError, match="has 6 images, 64 were asked"):
        export(model, tmp_path / "int8.onnx", card=card, int8=True, calib_data=data, calib_images=64)
    assert not any(tmp_path.iterdir())
