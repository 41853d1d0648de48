"""``activations="uint8"``: our model rounding each layer's output to an 8-bit TFLite file's grid, and the
label files that TFLite metadata packs into a model file.

Tests that need Google's files or the images under ../shared skip when that folder is absent.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import sys
import zipfile
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import mobilenet
from mobilenet.cli import main
from mobilenet.errors import WeightsError
from mobilenet.models import create_model
from mobilenet.weights import save_native
from mobilenet.weights.labels import embedded_labels
from mobilenet.weights.tflite import Graph, Op
from mobilenet.weights.tflite_grid import Step, attach, our_steps, place

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")  # as conftest's shared_data
TFLITE = DATA.parent / "weights" / "tflite"
V3_SMALL = TFLITE / "v3-small_224_1.0_uint8.tflite"
V1_SMALL = TFLITE / "mobilenet_v1_0.25_128_quant.tflite"
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning"),
]
needs_files = pytest.mark.skipif(not (V3_SMALL.is_file() and DATA.is_dir()), reason=f"no Google files in {TFLITE}")


@cache
def _benchmark() -> ModuleType:
    """benchmarks/tflite_agreement.py (the interpreter wrapper and the shared preprocessing)."""
    spec = importlib.util.spec_from_file_location("tflite_agreement", ROOT / "benchmarks" / "tflite_agreement.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- placing a graph's grids on our layers


GRAPH_NAMES = {"WEIGHTED": ["CONV_2D"], "GATE": ["ADD", "MUL"], "POOL": ["AVERAGE_POOL_2D"]}


def _graph_like(model: torch.nn.Module, resolution: int) -> list[Op]:
    """The operators an 8-bit TFLite graph of ``model`` runs, each with its own output grid."""
    ops = []
    for step in our_steps(model, resolution):
        for name in GRAPH_NAMES.get(step.kind, [step.kind]):
            ops.append(Op(name, output_quant=(0.05 + 0.001 * len(ops), 128, 0, 255), output_shape=(1, 7, 7, 8)))
    return ops


def test_every_layer_output_lands_on_its_grid_and_changes_the_logits() -> None:
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small", width_mult=0.5, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    ops = _graph_like(model, 64)
    steps = our_steps(model, 64)
    place(ops, steps, "made.tflite")
    handles = attach(model, [Graph(Path("made.tflite"), ops, (1, 64, 64, 3), None)], 64, "made.tflite")
    seen: list[tuple[torch.Tensor, tuple[float, int, int, int], Step]] = []

    def record(step: Step) -> None:  # registered after attach's hooks: sees their rounded result
        if step.on_input:
            step.module.register_forward_pre_hook(
                lambda _m, args: seen.append((args[0].clone(), step.quants[-1], step))
            )
        else:
            step.module.register_forward_hook(lambda _m, _i, out: seen.append((out.clone(), step.quants[-1], step)))

    for step in steps:
        record(step)
    with torch.no_grad():
        after = model(x)
    assert len(seen) == len(steps) and {step.kind for step in steps} >= {"WEIGHTED", "HARD_SWISH", "GATE", "MUL"}
    for out, (scale, zero, _, _), step in seen:
        q = out / scale + zero
        assert torch.allclose(q, q.round(), atol=1e-3) and q.min() >= -1e-3 and q.max() <= 255 + 1e-3, step
    assert not torch.allclose(before, after)
    for handle in handles:
        handle.remove()
    model = create_model("mobilenet_v3_small", width_mult=0.5, num_classes=10).eval()


def test_a_graph_missing_an_operator_names_the_first_it_could_not_place() -> None:
    model = create_model("mobilenet_v3_small", width_mult=0.5, num_classes=10).eval()
    ops = _graph_like(model, 64)
    hard_swish = next(i for i, op in enumerate(ops) if op.name == "HARD_SWISH")
    with pytest.raises(WeightsError, match=rf"operator {hard_swish} \(CONV_2D\).*hard_swish") as err:
        place(ops[:hard_swish] + ops[hard_swish + 1 :], our_steps(model, 64), "cut.tflite")
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="ended before"):
        place(ops[:-1], our_steps(model, 64), "short.tflite")
    float_graph = [Op("CONV_2D"), *ops[1:]]
    with pytest.raises(WeightsError, match="float output"):
        place(float_graph, our_steps(model, 64), "float.tflite")


def test_uint8_activations_need_an_8bit_tflite_file(tmp_path: Path) -> None:
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=3)
    card = mobilenet.card.ModelCard("mobilenet_v1", dict(model.config), classes=("a", "b", "c"), input_size=32)
    path = save_native(model, card, tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match="not one"):
        mobilenet.load(path, activations="uint8")
    with pytest.raises(WeightsError, match="activations must be one of"):
        mobilenet.load(path, activations="int4")


# ---------------------------------------------------------------- Google's files


@needs_files
@pytest.mark.parametrize("name", ["v3-small 1.0-224", "v3-large-minimal 1.0-224", "v2 1.0-224", "1.0-224"])
def test_uint8_activations_agree_with_the_interpreter(name: str) -> None:
    """On the first 20 labelled images: 19 of 20 agree (V3 with float activations: 17, see test_weights_v3)."""
    pytest.importorskip("ai_edge_litert")
    bench = _benchmark()
    size, files = bench.MODELS[name]
    paths = [TFLITE / f for f in files]
    model, card = mobilenet.load(paths if len(paths) > 1 else paths[0], activations="uint8")
    assert card.extra["activations"].startswith("uint8")
    interpreter = bench.Interpreter(paths)
    mean, std = torch.tensor(card.mean).view(1, -1, 1, 1), torch.tensor(card.std).view(1, -1, 1, 1)
    sample = DATA / "imagenet-val-sample"
    with (sample / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))[:20]
    agree = 0
    for row in rows:
        pixels = bench.preprocess(sample / "images" / row["file"], size)
        with torch.no_grad():
            ours = model((torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - mean) / std)
        agree += int(ours.argmax()) == int(np.argmax(interpreter(pixels)))
    assert agree >= 19, agree


@needs_files
def test_predict_with_uint8_activations_names_the_parrot_a_macaw(capsys: pytest.CaptureFixture[str]) -> None:
    parrot = DATA / "images" / "parrot.jpg"
    assert main(["predict", str(parrot), "--weights", str(V3_SMALL), "--activations", "uint8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["topk"][0]["label"] == "macaw"


# ---------------------------------------------------------------- labels inside a TFLite file


def _with_labels(source: Path, target: Path, files: dict[str, str]) -> Path:
    """``source`` with ``files`` appended as a zip archive, as TFLite's metadata writer packs them."""
    shutil.copyfile(source, target)
    with zipfile.ZipFile(target, "a") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return target


@needs_files
def test_labels_packed_in_the_file_name_the_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["background", *(f"class {i}" for i in range(1000))]
    names[89] = "my macaw"
    path = _with_labels(V3_SMALL, tmp_path / "with_labels.tflite", {"labels.txt": "\n".join(names) + "\n"})
    _, card = mobilenet.load(path)
    assert card.classes == tuple(names) and card.label_offset == 1
    parrot = DATA / "images" / "parrot.jpg"
    assert main(["predict", str(parrot), "--weights", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["topk"][0]["label"] == "my macaw"


@needs_files
def test_google_files_with_metadata_carry_imagenet_labels() -> None:
    """Google's V1 and V2 files pack ``imagenet_labels.txt`` (1001 names, background first); V3's carry none."""
    names = embedded_labels(V1_SMALL, 1001)
    assert names is not None and names[0] == "background" and names[89] == "macaw"
    assert embedded_labels(V3_SMALL, 1001) is None


def test_embedded_labels_need_the_model_s_class_count(tmp_path: Path) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\0\0\0\0TFL3" + bytes(100))
    assert embedded_labels(path, 3) is None  # no archive
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("readme.txt", "one\ntwo\n")
        archive.writestr("labels.txt", "a\nb\nc\n")
    assert embedded_labels(path, 3) == ["a", "b", "c"]
    assert embedded_labels(path, 5) is None
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(path.read_bytes()[:-10])
    assert embedded_labels(damaged, 3) is None
