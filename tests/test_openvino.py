"""OpenVINO: IR export with its card inside, NNCF int8, `eval` / `predict --exported`, bench rows, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
import torch

from mobilenet.bench import GEMMS, run_bench
from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.errors import ExportError
from mobilenet.export import load_exported, openvino_export, read_exported_card
from mobilenet.export.openvino_export import read_ir
from mobilenet.weights import save_native
from test_export import CLASSES, fails, json_card, random_model, run_json, write_images

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-class 32-px run folder and 8 images of its classes; skips without OpenVINO or the ONNX exporter."""
    for module in ("openvino", "nncf", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    root = tmp_path_factory.mktemp("openvino")
    card = ModelCard("mobilenet_v1", classes=tuple(CLASSES), mean=MEAN, std=STD, input_size=32, kind="small")
    save_native(random_model(num_classes=2, seed=1), card, root / "run" / "best.safetensors")
    return root / "run", write_images(root / "data", CLASSES, 4)


@pytest.fixture(scope="module")
def exported(run_folder: tuple[Path, Path]) -> tuple[Path, Path, Path, dict]:
    """The run folder, its images, its float IR exported by the CLI and the card the CLI printed."""
    run, data = run_folder
    out = run.parent / "deploy" / "model.xml"
    argv = ["export", "--checkpoint", str(run), "--format", "openvino", "--out", str(out), "--json"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(argv) == 0
    return run, data, out, json.loads(printed.getvalue())


@pytest.mark.slow
def test_ir_carries_its_card_and_evaluates_like_the_checkpoint(exported: tuple, capsys: pytest.CaptureFixture) -> None:
    run, data, out, printed = exported
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bin", "model.xml"]
    card = read_exported_card(out)
    assert card.classes == tuple(CLASSES) and card.input_size == 32 and card.quantization is None
    assert card == ModelCard.from_dict(json_card(printed)) and printed["export_format"] == "openvino"

    ir = run_json(capsys, ["eval", "--exported", str(out), "--data", str(data), "--json"])
    original = run_json(capsys, ["eval", "--checkpoint", str(run), "--data", str(data), "--json"])
    assert ir["n"] == original["n"] == 8
    assert (ir["top1"], ir["per_class"]) == (original["top1"], original["per_class"])
    assert abs(ir["loss"] - original["loss"]) <= 1e-5

    image = next((data / CLASSES[0]).iterdir())
    assert main(["predict", str(image), "--exported", str(out), "--json"]) == 0
    from_ir = json.loads(capsys.readouterr().out)
    assert main(["predict", str(image), "--checkpoint", str(run), "--json"]) == 0
    from_checkpoint = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in from_ir["topk"]] == [p["label"] for p in from_checkpoint["topk"]]
    assert from_ir["topk"][0]["prob"] == pytest.approx(from_checkpoint["topk"][0]["prob"], abs=1e-5)


@pytest.mark.slow
def test_int8_ir_is_quantized_within_its_budget(exported: tuple, tmp_path: Path, capsys) -> None:
    run, data, _, _ = exported
    out = tmp_path / "int8.xml"
    argv = ["export", "--checkpoint", str(run), "--format", "openvino", "--out", str(out), "--int8"]
    info = run_json(capsys, [*argv, "--calib-data", str(data), "--calib-images", "8", "--json"])
    quant = info["quantization"]
    assert quant["runtime"] == "openvino" and quant["calib_images"] == 8 and quant["max_drop"] == 0.005
    assert (quant["preset"], quant["activations"]) == ("performance", "int8 symmetric")  # V1: no hard-swish
    assert quant["int8_layers"] > 20 and quant["calib_top1_agreement"] >= 1 - quant["max_drop"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.bin", "int8.xml"]
    ops = [op.get_type_name() for op in read_ir(out).get_ops()]
    assert ops.count("FakeQuantize") == quant["int8_layers"]
    result = run_json(capsys, ["eval", "--exported", str(out), "--data", str(data), "--json"])
    assert result["n"] == 8 and set(result["per_class"]) == set(CLASSES)
    mixed = ["export", "--checkpoint", str(run), "--format", "openvino", "--out", str(tmp_path / "mixed.xml"), "--int8"]
    asked = run_json(
        capsys, [*mixed, "--calib-data", str(data), "--calib-images", "8", "--nncf-preset", "mixed", "--json"]
    )
    assert (asked["quantization"]["preset"], asked["quantization"]["activations"]) == ("mixed", "int8 asymmetric")


@pytest.mark.slow
def test_accuracy_control_returns_a_bounded_number_of_layers_to_float(
    exported: tuple, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nncf

    seen: dict = {}

    def spy(model, calibration, validation, validate, **kwargs):  # plain PTQ in place of the search
        seen.update(kwargs)
        return nncf.quantize(model, calibration, subset_size=kwargs["subset_size"])

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", spy)
    run, data, _, _ = exported
    out = tmp_path / "int8.xml"
    argv = ["export", "--checkpoint", str(run), "--format", "openvino", "--out", str(out), "--int8"]
    info = run_json(capsys, [*argv, "--calib-data", str(data), "--calib-images", "8", "--json"])
    limit = seen["advanced_accuracy_restorer_parameters"].max_num_iterations
    assert limit == openvino_export.MAX_FLOAT_LAYERS == info["quantization"]["max_float_layers"]


@pytest.mark.slow
def test_int8_short_of_its_budget_warns_and_says_so_in_the_card(
    exported: tuple, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openvino_export, "quantize_ir", lambda graph, images, max_drop, preset: (graph, 0.75))
    run, data, _, _ = exported
    out = tmp_path / "int8.xml"
    argv = ["export", "--checkpoint", str(run), "--format", "openvino", "--out", str(out), "--int8"]
    with pytest.warns(UserWarning, match=r"75\.0% of the calibration images, short of the 99\.0% asked"):
        info = run_json(capsys, [*argv, "--calib-data", str(data), "--calib-images", "8", "--max-drop", "1", "--json"])
    assert info["quantization"]["calib_top1_agreement"] == 0.75 and out.is_file()


def _widest_range_after(model, kind: str) -> tuple[float, float]:
    """The (low, high) input range of the widest FakeQuantize fed by a ``kind`` op of an OpenVINO model."""
    ranges = [
        (float(op.input_value(1).get_node().get_data().min()), float(op.input_value(2).get_node().get_data().max()))
        for op in model.get_ops()
        if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() == kind
    ]
    return max(ranges, key=lambda low_high: low_high[1])


@pytest.mark.slow
def test_int8_activations_after_hard_swish_are_asymmetric_and_ranges_are_global(run_folder: tuple) -> None:
    """mixed preset where the graph has hard-swish; every activation range spans the calibration's global
    minimum and maximum (NNCF's default, the mean of each image's, would cut the one bright image off)."""
    from mobilenet.export.fold import inference_model
    from mobilenet.models import create_model

    def graph(name: str, gain: float = 1.0):
        torch.manual_seed(0)
        model = create_model(name, num_classes=2).eval()
        with torch.no_grad():  # a stem with outputs of tens of units, as a trained one has
            model.stem.conv.weight.mul_(gain)
        return openvino_export.ir_model(inference_model(model, 32), 32)

    v1 = graph("mobilenet_v1")
    assert openvino_export.nncf_preset(v1) == "performance"
    images = torch.rand(4, 3, 32, 32)
    images[0] *= 20  # one image 20 times brighter: the mean of the images' maxima is about 5.75
    int8, _ = openvino_export.quantize_ir(v1, images, max_drop=None)
    assert _widest_range_after(int8, "Parameter")[1] >= 0.99 * images.max().item()
    assert openvino_export.nncf_preset(graph("mobilenet_v3_small_minimal")) == "performance"
    v3 = graph("mobilenet_v3_small", gain=100.0)
    assert openvino_export.nncf_preset(v3) == "mixed"
    int8, _ = openvino_export.quantize_ir(v3, torch.rand(4, 3, 32, 32), max_drop=None)
    low, high = _widest_range_after(int8, "HSwish")
    assert high > 10 and -1.0 < low < 0  # about hard-swish's floor (-0.375, moved onto the grid), not -high


@pytest.mark.slow
def test_bench_runs_openvino_under_its_floor(exported: tuple) -> None:
    backends = ["openvino", "openvino-int8"]
    rows, skips, facts = run_bench(["mobilenet_v1_025_128"], backends, [1, 2], resolution=64, threads=1, runs=20)
    assert not skips and [(r.backend, r.batch, r.precision) for r in rows] == [
        ("openvino", 1, "fp32"),
        ("openvino", 2, "fp32"),
        ("openvino-int8", 1, "int8"),
        ("openvino-int8", 2, "int8"),
    ]
    for precision in ("fp32", "int8"):
        measured = facts[f"{precision}_peaks_gops"]
        assert set(measured) == {name for p, name, _ in GEMMS if p == precision}  # oneDNN, MLAS, OpenVINO, XNNPACK
        assert facts[f"{precision}_peak_gops"] == max(measured.values())
    assert all(0 < r.floor_pct <= 100 for r in rows) and facts["over_floor"] == []


def test_runner_compiles_the_first_shapes_static(exported: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ``static_shapes`` batch shapes each get a static compile; others and a second call reuse."""
    model = read_ir(exported[2])
    compiled: list[str] = []
    real = openvino_export._compile

    def counting(core, graph, config):  # records each compile's input shape
        compiled.append(str(graph.inputs[0].get_partial_shape()))
        return real(core, graph, config)

    monkeypatch.setattr(openvino_export, "_compile", counting)
    run = openvino_export.ov_runner(model, threads=1, static_shapes=2)
    dynamic = openvino_export.ov_runner(model, threads=1, static_shapes=0)
    assert compiled == ["[?,3,32,32]", "[?,3,32,32]"]
    images = torch.rand(3, 3, 32, 32)
    for batch in (1, 1, 3, 2, 3):
        assert torch.allclose(run(images[:batch]), dynamic(images[:batch]), atol=1e-5)
    assert compiled[2:] == ["[1,3,32,32]", "[3,3,32,32]"]  # the batch of 2 came third: dynamic


def corrupt(folder: Path, xml: bytes, with_bin: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.xml").write_bytes(xml)
    if with_bin:
        (folder / "model.bin").write_bytes(b"\0" * 16)
    return folder / "model.xml"


@pytest.mark.parametrize(
    ("xml", "with_bin", "needle"),
    [
        (b"not xml at all", True, "not an OpenVINO IR"),
        (b'<?xml version="1.0"?>\n<net name="m" version="11"><layers><layer id="0"', True, "cannot read"),
        (b'<?xml version="1.0"?>\n<net name="m" version="11"></net>', False, "model.bin is missing"),
    ],
    ids=["foreign", "truncated", "no-weights"],
)
def test_eval_refuses_a_corrupt_ir(xml: bytes, with_bin: bool, needle: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("openvino")
    path = corrupt(tmp_path, xml, with_bin)
    fails(capsys, ["eval", "--exported", str(path), "--data", str(tmp_path)], needle)


def test_missing_openvino_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    path = corrupt(tmp_path, b'<?xml version="1.0"?>\n<net name="m" version="11"></net>')
    with pytest.raises(ExportError, match=r"pip install 'mobilenet\[openvino\]'"):
        load_exported(path)


def test_cli_export_openvino_bad_options(run_folder: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    run, data = run_folder
    argv = ["export", "--checkpoint", str(run), "--format", "openvino"]
    fails(capsys, [*argv, "--out", str(tmp_path / "model.onnx")], "an OpenVINO IR is an .xml file")
    xml = str(tmp_path / "m.xml")
    fails(capsys, [*argv, "--out", xml, "--int8", "--calib-data", str(data), "--per-tensor"], "per channel only")
    fails(capsys, [*argv, "--out", xml, "--int8", "--calib-data", str(data), "--max-drop", "-1"], "--max-drop")
    fails(capsys, [*argv, "--out", xml, "--nncf-preset", "mixed"], "--nncf-preset is for --format openvino --int8")
    onnx = ["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx"), "--int8", "--calib-data", str(data)]
    fails(capsys, [*onnx, "--nncf-preset", "performance"], "--nncf-preset is for --format openvino --int8")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_ir_runs_batches_of_any_size(exported: tuple) -> None:
    _, _, out, _ = exported
    runner, card = load_exported(out, threads=1)
    images = torch.randn(5, 3, 32, 32)
    logits = runner(images)
    assert logits.shape == (5, 2) and card.label_offset == 0
    assert torch.allclose(torch.cat([runner(images[:2]), runner(images[2:])]), logits, atol=1e-6)
