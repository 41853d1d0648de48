"""BN folding, ONNX export checked in ONNX Runtime, int8 quantization, `mobilenet export` / `eval --exported`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch
from PIL import Image
from torch import nn

import mobilenet
from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.data import find_images, load_eval_folder, load_image
from mobilenet.errors import ExportError
from mobilenet.evaluate import evaluate
from mobilenet.export import (
    calibration_images,
    export,
    export_onnx,
    fold_bn,
    inference_model,
    load_exported,
    onnx_export,
    quantize_onnx,
    read_exported_card,
    read_onnx_card,
)
from mobilenet.models.mobilenet_v1 import MobileNetV1
from mobilenet.weights import save_native

CLASSES = ["cat", "dog"]
TEN_CLASSES = tuple(f"class{i}" for i in range(10))
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
TFLITE_025 = "weights/tflite/mobilenet_v1_0.25_128_quant.tflite"  # relative to shared/


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def onnx() -> ModuleType:
    """The ``onnx`` module; skips the test when ONNX export or ONNX Runtime is not installed."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return pytest.importorskip("onnx")


def random_model(num_classes: int = 10, seed: int = 0, **kwargs) -> MobileNetV1:
    """A width-0.25 model whose BN statistics and classifier are far from their initial values."""
    torch.manual_seed(seed)
    model = MobileNetV1(num_classes=num_classes, width_mult=0.25, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.1, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.5)
    return model.eval()


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


# --- BN folding and frozen padding -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"padding": "torch"}, {"padding": "tf_same"}, {"padding": "tf_same", "head_conv": 64}],
    ids=["torch", "tf_same", "tf_same-head_conv"],
)
def test_fold_bn_equals_unfused_model(kwargs: dict) -> None:
    model = random_model(**kwargs)
    folded = fold_bn(model)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert (got - expected).abs().max().item() <= 1e-5
    assert expected.abs().max().item() > 1  # logits of a useful size, not near-zero
    assert count(folded, nn.BatchNorm2d) == 0
    assert sum(isinstance(m, nn.Conv2d) and m.bias is not None for m in folded.modules()) == count(
        model, nn.BatchNorm2d
    )
    assert count(folded, nn.ReLU6) == count(model, nn.ReLU6) == 27 + (1 if "head_conv" in kwargs else 0)
    assert count(model, nn.BatchNorm2d) == count(model, nn.ReLU6)  # the original is untouched


@pytest.mark.parametrize("resolution", [64, 67])
def test_frozen_tf_same_padding_equals_dynamic_padding(resolution: int) -> None:
    model = random_model(padding="tf_same")
    frozen = inference_model(model, resolution)
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        assert (frozen(x) - model(x)).abs().max().item() <= 1e-5
    assert count(frozen, type(model.stem.conv)) == 0  # no TFSameConv2d left: every pad is a constant
    assert count(frozen, nn.ZeroPad2d) > 0  # stride-2 layers pad asymmetrically (0 before, 1 after at 64)


# --- ONNX ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf_same_onnx(tmp_path_factory: pytest.TempPathFactory, onnx: ModuleType) -> tuple[MobileNetV1, Path]:
    """A random TF-SAME model with a head convolution, exported at 64 px."""
    model = random_model(padding="tf_same", head_conv=64)
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    card = ModelCard("mobilenet_v1", classes=TEN_CLASSES, mean=MEAN, std=STD, input_size=224, source="test")
    export_onnx(model, path, 64, card=card)
    return model, path


@pytest.mark.slow
def test_onnx_graph_has_static_pads_and_dynamic_batch(tf_same_onnx: tuple[MobileNetV1, Path], onnx) -> None:
    proto = onnx.load(str(tf_same_onnx[1]))
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops
    assert not ops & {"Shape", "Size", "ConstantOfShape"}  # no shape is computed at run time
    constants = {i.name for i in proto.graph.initializer} | {
        out for node in proto.graph.node if node.op_type == "Constant" for out in node.output
    }
    assert all(node.input[1] in constants for node in proto.graph.node if node.op_type == "Pad")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_runtime_matches_pytorch(tf_same_onnx: tuple[MobileNetV1, Path], batch: int) -> None:
    model, path = tf_same_onnx
    runtime, _ = load_exported(path)
    x = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected, got = model(x), runtime(x)
    assert got.shape == (batch, 10)
    assert (got - expected).abs().max().item() <= 1e-4
    assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.slow
def test_onnx_file_carries_its_metadata(tf_same_onnx: tuple[MobileNetV1, Path]) -> None:
    model, path = tf_same_onnx
    card = read_onnx_card(path)
    assert card.classes == TEN_CLASSES and card.source == "test"
    assert (card.mean, card.std, card.input_size, card.in_chans) == (MEAN, STD, 64, 3)  # the exported resolution
    assert card.arch == "mobilenet_v1" and card.kwargs == model.config
    assert (card.kwargs["width_mult"], card.kwargs["padding"], card.kwargs["head_conv"]) == (0.25, "tf_same", 64)
    assert card.quantization is None and card.label_offset == 0
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]  # no temporary left


@pytest.mark.slow
def test_exported_onnx_loads_through_mobilenet_load(tf_same_onnx: tuple[MobileNetV1, Path]) -> None:
    """``mobilenet.load`` takes an exported file like any weights: a runner and the card it was exported with."""
    model, path = tf_same_onnx
    runner, card = mobilenet.load(path)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected, got = model(x), runner(x)
    assert got.shape == (4, 10)
    assert (got - expected).abs().max().item() <= 1e-4
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert (card.classes, card.mean, card.std, card.input_size) == (TEN_CLASSES, MEAN, STD, 64)
    assert card.eval_classes == list(TEN_CLASSES) and card.label_offset == 0


@pytest.fixture(scope="module")
def google_onnx(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, onnx: ModuleType
) -> tuple[MobileNetV1, ModelCard, Path]:
    """Google's 0.25-128 TFLite weights converted to float and exported (skips without the file)."""
    weights = shared_data.parent / TFLITE_025
    if not weights.is_file():
        pytest.skip(f"{weights} not found")
    model, card = mobilenet.load(weights)
    path = tmp_path_factory.mktemp("google") / "mobilenet_v1_025_128.onnx"
    export_onnx(model, path, card=card)
    return model, card, path


@pytest.mark.slow
def test_google_weights_in_onnx_runtime_on_real_photos(google_onnx: tuple, shared_data: Path) -> None:
    model, card, path = google_onnx
    assert (card.input_size, card.label_offset, len(card.classes)) == (128, 1, 1001)
    transform = card.eval_transform()
    images = torch.stack([transform(load_image(f)) for f in find_images([shared_data / "images"])])
    runtime, exported_card = load_exported(path)
    with torch.no_grad():
        expected, got = model(images)[:, 1:], runtime(images)  # the runtime drops the background class
    assert len(images) == 8 and exported_card.classes == card.classes[1:] and exported_card.label_offset == 0
    assert (got - expected).abs().max().item() <= 1e-4
    assert torch.equal(got.argmax(1), expected.argmax(1))
    # Folding is exact arithmetic (float64); in float32 real weights (logits up to ~25) differ by rounding only.
    wide = copy.deepcopy(model).double()
    with torch.no_grad():
        assert (fold_bn(wide)(images.double()) - wide(images.double())).abs().max().item() <= 1e-10
        assert (fold_bn(model)(images) - model(images)).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_int8_quantization_keeps_accuracy(google_onnx: tuple, shared_data: Path, tmp_path: Path, onnx) -> None:
    """Float and int8 top-1 on the 300-image ImageNet sample (calibrated on 32 of them)."""
    model, _, path = google_onnx
    sample = shared_data / "imagenet-val-sample"
    card = read_onnx_card(path)
    int8_path = tmp_path / "int8.onnx"
    info = quantize_onnx(path, int8_path, calibration_images(sample, card, 32))
    assert info.quantization["calib_images"] == 32 and read_onnx_card(int8_path) == info
    assert info == card.replace(quantization=info.quantization)  # the float file's card, plus how it was quantized

    proto = onnx.load(str(int8_path))
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("QuantizeLinear") > 27 and "Clip" not in ops  # ReLU6 folded into the quantized range
    scales = {i.name: list(i.dims) for i in proto.graph.initializer}
    weight_dq = [
        n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("weight_quantized")
    ]
    assert weight_dq and all(scales[n.input[1]] != [] for n in weight_dq)  # one scale per output channel

    data, classes = load_eval_folder(str(sample), 128, 3, card.mean, card.std, card.eval_classes)
    batches = list(torch.utils.data.DataLoader(data, batch_size=100))
    pytorch = evaluate(model, batches, classes, logit_map=torch.arange(1, 1001))
    float32, int8 = (evaluate(load_exported(file)[0], batches, classes) for file in (path, int8_path))
    assert float32.n == int8.n == 300
    assert float32.top1 == pytorch.top1 and float32.top5 == pytorch.top5
    assert float32.top1 - int8.top1 <= 0.03


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "executorch"])
def test_pt2e_int8_keeps_accuracy(fmt: str, google_onnx: tuple, shared_data: Path, tmp_path: Path) -> None:
    """PT2E int8 (x86 for .pt2, XNNPACK for .pte) of Google's 0.25-128 weights on the ImageNet sample."""
    pytest.importorskip("torchao")
    if fmt == "executorch":
        pytest.importorskip("executorch")
    model, card, path = google_onnx
    sample = shared_data / "imagenet-val-sample"
    out = tmp_path / f"int8.{fmt}"
    info = export(model, out, fmt, card=card, int8=True, calib_data=sample, calib_images=32)
    assert info.quantization["calib_images"] == 32 and info.classes == card.classes
    quantizer = {"pt2": "PT2E (X86InductorQuantizer)", "executorch": "PT2E (XNNPACKQuantizer)"}[fmt]
    assert info.quantization["format"] == quantizer == read_exported_card(out).quantization["format"]
    data, classes = load_eval_folder(str(sample), 128, 3, info.mean, info.std, info.eval_classes)
    batches = list(torch.utils.data.DataLoader(data, batch_size=50))
    float32, int8 = (evaluate(load_exported(file)[0], batches, classes) for file in (path, out))
    assert float32.n == int8.n == 300
    assert float32.top1 - int8.top1 <= 0.03


# --- command line ----------------------------------------------------------------------------


def write_images(folder: Path, classes: list[str], per_class: int, size: int = 32) -> Path:
    generator = torch.Generator().manual_seed(0)
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8)
            pixels[..., index % 3] //= 4  # classes differ a little in colour
            Image.fromarray(pixels.numpy()).save(folder / name / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A checkpoint folder of a 2-class 32-px model and a 2-class folder of 8 images of that size."""
    root = tmp_path_factory.mktemp("cli")
    model = random_model(num_classes=2, seed=1)
    card = ModelCard("mobilenet_v1", classes=tuple(CLASSES), mean=MEAN, std=STD, input_size=32, kind="small")
    save_native(model, card, root / "run" / "best.safetensors")
    return root / "run", write_images(root / "data", CLASSES, 4)


def run_json(capsys: pytest.CaptureFixture, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def json_card(printed: dict) -> dict:
    """The card in what ``mobilenet export --json`` printed (the file's card with ``out`` and ``export_format``)."""
    return {k: v for k, v in printed.items() if k not in ("out", "export_format")}


@pytest.mark.slow
def test_cli_export_then_eval_matches_checkpoint(checkpoint: tuple[Path, Path], tmp_path, capsys, onnx) -> None:
    run, data = checkpoint
    out = tmp_path / "deploy" / "model.onnx"
    info = run_json(capsys, ["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out), "--json"])
    assert info["classes"] == CLASSES and info["input_size"] == 32 and info["kind"] == "small"
    assert [p.name for p in out.parent.iterdir()] == ["model.onnx"]

    exported = run_json(capsys, ["eval", "--exported", str(out), "--data", str(data), "--json"])
    original = run_json(capsys, ["eval", "--checkpoint", str(run), "--data", str(data), "--json"])
    assert exported["n"] == original["n"] == 8
    for key in ("top1", "top5", "per_class"):
        assert exported[key] == original[key]
    assert abs(exported["loss"] - original["loss"]) <= 1e-5
    assert exported["exported"] == str(out) and "confusion_png" not in exported  # nothing is written beside it
    assert [p.name for p in out.parent.iterdir()] == ["model.onnx"]
    assert Path(original["confusion_png"]) == run / f"confusion_{data.name}.png"


@pytest.mark.slow
def test_cli_int8_export_is_evaluated_like_float(checkpoint: tuple[Path, Path], tmp_path, capsys, onnx) -> None:
    run, data = checkpoint
    out = tmp_path / "int8.onnx"
    argv = ["export", "--checkpoint", str(run), "--out", str(out), "--int8", "--calib-data", str(data)]
    info = run_json(capsys, [*argv, "--calib-images", "6", "--json"])
    assert info["quantization"]["calib_images"] == 6 and info["quantization"]["format"] == "QDQ"
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]  # the float intermediate is gone
    result = run_json(capsys, ["eval", "--exported", str(out), "--data", str(data), "--json"])
    assert result["n"] == 8 and set(result["per_class"]) == set(CLASSES)


@pytest.mark.slow
def test_cli_executorch_export_runs_like_pytorch(checkpoint: tuple[Path, Path], tmp_path, capsys) -> None:
    pytest.importorskip("executorch")
    run, data = checkpoint
    out = tmp_path / "model.pte"
    info = run_json(capsys, ["export", "--checkpoint", str(run), "--format", "executorch", "--out", str(out), "--json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pte", "model.pte.json"]
    assert read_exported_card(out) == ModelCard.from_dict(json_card(info))
    assert read_exported_card(out).extra["max_batch"] == 64

    runtime, _ = load_exported(out)
    model = random_model(num_classes=2, seed=1)  # the checkpoint's model
    for batch in (1, 3, 20):  # 16 and more once failed in ExecuTorch's runtime (see pte_program)
        x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected, got = model(x), runtime(x)
        assert (got - expected).abs().max().item() <= 1e-4
        assert torch.equal(got.argmax(1), expected.argmax(1))
    exported = run_json(capsys, ["eval", "--exported", str(out), "--data", str(data), "--json"])
    original = run_json(capsys, ["eval", "--checkpoint", str(run), "--data", str(data), "--json"])
    assert (exported["n"], exported["top1"], exported["per_class"]) == (8, original["top1"], original["per_class"])
    # int8 .pte files: test_pt2e_int8_keeps_accuracy[executorch] (the --int8 flags are shared by every format)


@pytest.mark.slow
def test_cli_pt2_export_float_and_int8(checkpoint: tuple[Path, Path], tmp_path, capsys) -> None:
    """``--format pt2``: the float program equals PyTorch; the int8 one (PT2E, x86) is evaluated like it."""
    pytest.importorskip("torchao")
    run, data = checkpoint
    out = tmp_path / "model.pt2"
    info = run_json(capsys, ["export", "--checkpoint", str(run), "--format", "pt2", "--out", str(out), "--json"])
    assert read_exported_card(out) == ModelCard.from_dict(json_card(info))
    runtime, card = load_exported(out)
    assert card.classes == tuple(CLASSES) and card.quantization is None
    model = random_model(num_classes=2, seed=1)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (runtime(x) - model(x)).abs().max().item() <= 1e-4

    int8 = tmp_path / "int8.pt2"
    argv = ["export", "--checkpoint", str(run), "--format", "pt2", "--out", str(int8), "--int8"]
    info = run_json(capsys, [*argv, "--calib-data", str(data), "--calib-images", "8", "--json"])
    quantization = info["quantization"]
    assert quantization["format"] == "PT2E (X86InductorQuantizer)" and quantization["activations"] == "uint8, 7-bit"
    result = run_json(capsys, ["eval", "--exported", str(int8), "--data", str(data), "--json"])
    assert result["n"] == 8 and set(result["per_class"]) == set(CLASSES)
    fails(capsys, [*argv, "--calib-data", str(data), "--per-tensor"], "per channel only")


@pytest.mark.slow
def test_cli_qat_writes_the_int8_program_it_trained(checkpoint: tuple[Path, Path], tmp_path, capsys) -> None:
    """``train --qat``: fake-quantized training of a float checkpoint, then its int8 ``.pt2``."""
    pytest.importorskip("torchao")
    run, data = checkpoint
    out = tmp_path / "qat"
    argv = ["train", "--qat", "--weights", str(run), "--data", str(data), "--val-data", str(data), "--out", str(out)]
    assert main([*argv, "--epochs", "2", "--batch-size", "4", "--lr", "0.001", "--no-progress"]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and all("val_top1" in r for r in records)
    assert json.loads((out / "config.json").read_text())["qat"] is True
    result = run_json(capsys, ["eval", "--exported", str(out / "model_int8.pt2"), "--data", str(data), "--json"])
    assert result["n"] == 8 and set(result["per_class"]) == set(CLASSES)
    assert abs(result["top1"] - records[-1]["val_top1"]) <= 1 / 8  # int8 kernels vs their simulation: one image
    assert read_exported_card(out / "model_int8.pt2").quantization["format"] == "PT2E QAT (X86InductorQuantizer)"
    fails(capsys, ["train", "--qat", "--data", str(data), "--out", str(tmp_path / "x")], "--qat needs --weights")


# --- bad input: one line, exit status 2, no file left behind ---------------------------------


def fails(capsys: pytest.CaptureFixture, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(needle in err for needle in needles), err
    return err


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), "this package's models, got Sequential"),
        (MobileNetV1(width_mult=0.25, features_only=True), "features_only"),
    ],
    ids=["sequential", "features_only"],
)
def test_export_refuses_a_model_that_is_not_our_classifier(model: nn.Module, needle: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=needle):
        export(model, tmp_path / "model.onnx")
    assert not any(tmp_path.iterdir())


def test_cli_export_of_weights_that_are_not_mobilenet(tmp_path: Path, capsys) -> None:
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, str(tmp_path / "other.safetensors"))
    out = tmp_path / "model.onnx"
    fails(capsys, ["export", "--weights", str(tmp_path / "other.safetensors"), "--out", str(out)], "MobileNetV1")
    assert not out.exists()


def test_cli_export_bad_options(checkpoint: tuple[Path, Path], tmp_path: Path, capsys, onnx) -> None:
    run, data = checkpoint
    out = tmp_path / "model.onnx"
    base = ["export", "--checkpoint", str(run), "--out", str(out)]
    fails(capsys, [*base, "--format", "tflite"], "unknown format 'tflite'", "onnx, executorch")
    fails(capsys, [*base, "--int8"], "--calib-data")
    fails(capsys, [*base, "--int8", "--calib-data", str(data), "--calib-images", "9"], "has 8 images, 9 were asked")
    other = write_images(tmp_path / "other", ["bird", "fish"], 1)
    fails(capsys, [*base, "--int8", "--calib-data", str(other), "--calib-images", "2"], "classes", "bird")
    fails(capsys, [*base, "--resolution", "16"], "resolution 16", "minimum 32")
    assert not out.exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    fails(capsys, ["export", "--checkpoint", str(run), "--out", str(blocker / "model.onnx")], "cannot write")
    fails(capsys, ["export", "--checkpoint", str(run), "--out", str(tmp_path)], "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "other"]


def test_failed_write_leaves_no_partial_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, onnx) -> None:
    """The disk fills up half-way through writing the file: neither it nor a temporary remains."""
    stub = onnx.helper.make_model(onnx.helper.make_graph([], "stub", [], []))
    monkeypatch.setattr(onnx_export, "onnx_proto", lambda graph, resolution, opset: stub)
    real_write = Path.write_bytes

    def half_then_full(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(ExportError, match="No space left on device"):
        export_onnx(random_model(), tmp_path / "model.onnx", 64)
    assert not any(tmp_path.iterdir())


def test_eval_exported_refuses_files_that_are_not_our_exports(tmp_path: Path, capsys, onnx) -> None:
    data = write_images(tmp_path / "data", CLASSES, 1)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model")
    fails(capsys, ["eval", "--exported", str(garbage), "--data", str(data)], "not an ONNX model")
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "foreign", [], [])), str(foreign))
    fails(capsys, ["eval", "--exported", str(foreign), "--data", str(data)], "no mobilenet metadata")
    with pytest.raises(SystemExit) as exited:
        main(["eval", "--data", str(data)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--exported" in err and "is required" in err
