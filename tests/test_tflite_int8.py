"""TFLite files from Google's TF2 converter (int8, per-channel weights, explicit PADs, QUANTIZE/DEQUANTIZE at
the edges, a fine-tuned class count with packed labels) against the TFLite interpreter.

No such file is under ../shared: :mod:`tflite_files` writes them from Google's TF1 uint8 V2 and
V3-Small files, once per module. Tests skip when ../shared is absent.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tflite
import torch

import mobilenet
from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.errors import WeightsError
from mobilenet.models import MobileNet
from mobilenet.models.layers import tf_same_padding
from mobilenet.weights.converters import tflite_input_stats
from mobilenet.weights.converters.graph import weighted_layers
from mobilenet.weights.converters.mobilenet_v2 import from_tflite
from mobilenet.weights.tflite import parse
from tflite_files import int8_file, read

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")  # as conftest's shared_data
TFLITE = DATA.parent / "weights" / "tflite"
V2_FILE = TFLITE / "mobilenet_v2_1.0_224_quant.tflite"
V3_FILE = TFLITE / "v3-small_224_1.0_uint8.tflite"
CLASSES = 965  # as Coral's iNaturalist bird classifier, a fine-tuned MobileNetV2
STRIDED = 5  # MobileNetV2's and V3-Small's stride-2 convolutions: the stem and four depthwise ones
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning"),
    pytest.mark.skipif(not (V2_FILE.is_file() and V3_FILE.is_file()), reason=f"Google's files not found in {TFLITE}"),
    pytest.mark.skipif(not DATA.is_dir(), reason=f"test images not found at {DATA}"),
]


@cache
def _benchmark() -> ModuleType:
    """benchmarks/tflite_agreement.py: the interpreter wrapper and the preprocessing the agreement figures use."""
    pytest.importorskip("ai_edge_litert.interpreter")
    sys.path.append(str(ROOT / "benchmarks"))
    return importlib.import_module("tflite_agreement")


def _labels() -> list[str]:
    """The fine-tuned model's own names: ImageNet's first 965 (background first), each marked as this file's."""
    names = (TFLITE / "imagenet_labels.txt").read_text().splitlines()[:CLASSES]
    return [f"{name} (class {i})" for i, name in enumerate(names)]


@pytest.fixture(scope="module")
def v2_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Google's V2 as an int8 file with float input and output, 965 classes and their labels packed."""
    target = tmp_path_factory.mktemp("tflite-int8") / "mobilenet_v2_1.0_224_int8_965.tflite"
    return int8_file(V2_FILE, target, classes=CLASSES, labels=_labels(), edge="float")


@pytest.fixture(scope="module")
def v3_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Google's V3-Small as an int8 file with int8 input and output (pixels arrive as q = pixel - 128)."""
    return int8_file(V3_FILE, tmp_path_factory.mktemp("tflite-int8") / "v3-small_224_1.0_int8.tflite", edge="int8")


@cache
def _loaded(path: Path, activations: str = "float") -> tuple[MobileNet, ModelCard]:
    """``mobilenet.load(path, activations=...)``, once per module."""
    return mobilenet.load(path, activations=activations)


@cache
def _pixels(path: Path, size: int) -> np.ndarray:
    return _benchmark().preprocess(path, size)


def _agreement(path: Path, activations: str, images: list[Path], to_input: type | None = None) -> int:
    """On how many ``images`` our conversion's top-1 is the interpreter's (its pre-softmax logits).

    The interpreter takes the float our model sees (a float input) or ``pixel - 128`` (an int8 input).
    """
    model, card = _loaded(path, activations)
    mean, std = torch.tensor(card.mean).view(1, -1, 1, 1), torch.tensor(card.std).view(1, -1, 1, 1)
    interpreter = _benchmark().Interpreter([path])
    pixels = np.stack([_pixels(image, card.input_size) for image in images])
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - mean) / std
    fed = x.permute(0, 2, 3, 1).numpy() if to_input is None else (pixels.astype(np.int16) - 128).astype(to_input)
    with torch.no_grad():
        ours = model(x).argmax(1).tolist()  # one batch: eval mode, each image on its own
    return sum(top == int(np.argmax(interpreter(one))) for top, one in zip(ours, fed, strict=True))


def _images() -> list[Path]:
    """The everyday photos and the first 20 of the ImageNet sample."""
    return [path for path, _ in _benchmark().image_list(DATA, limit=20)]


# ---------------------------------------------------------------- the written files


def test_written_file_is_int8_as_the_tf2_converter_writes_it(v2_int8: Path) -> None:
    net = read(v2_int8)
    names = [op.name for op in net.operators]
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE" and names.count("PAD") == STRIDED
    (first,), (last,) = net.inputs, net.outputs
    assert net.tensors[first].type == net.tensors[last].type == tflite.TensorType.FLOAT32
    assert net.tensors[last].shape == [1, CLASSES]
    for op in net.operators:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            activation, weight, bias = (net.tensors[i] for i in op.inputs)
            channels = weight.shape[3 if op.name == "DEPTHWISE_CONV_2D" else 0]
            int8, int32 = tflite.TensorType.INT8, tflite.TensorType.INT32
            assert (activation.type, weight.type, bias.type) == (int8, int8, int32)
            assert weight.axis == (3 if op.name == "DEPTHWISE_CONV_2D" else 0) and len(weight.scale) == channels
            assert not weight.zero.any() and np.abs(weight.data).max() == 127  # symmetric, full range
            np.testing.assert_allclose(bias.scale, activation.scale[0] * weight.scale, rtol=1e-6)
        if op.name == "PAD":  # TensorFlow SAME: nothing before, the extra row and column after
            amounts = net.tensors[op.inputs[1]].data
            assert amounts.tolist() == [[0, 0], [0, 1], [0, 1], [0, 0]]


def test_written_file_runs_in_the_interpreter_as_the_uint8_file_does(v2_int8: Path) -> None:
    """The requantized file's top-1 is the original's (among the classes it keeps) on the photos."""
    bench = _benchmark()
    ours, google = bench.Interpreter([v2_int8]), bench.Interpreter([V2_FILE])
    photos = sorted(p for p in (DATA / "images").iterdir() if p.is_file())
    same = 0
    for photo in photos:
        pixels = _pixels(photo, 224)
        logits = ours((pixels.astype(np.float32) - 127.5) / 127.5)
        assert logits.shape == (CLASSES,)
        same += int(np.argmax(logits)) == int(np.argmax(google(pixels)[:CLASSES]))
    assert len(photos) == 8 and same == 8


# ---------------------------------------------------------------- our conversion of them


def test_explicit_pads_fold_into_same_convolutions(v2_int8: Path) -> None:
    ops = parse(v2_int8).ops
    strided = [op for op in ops if op.stride == 2]
    assert "PAD" not in {op.name for op in ops} and len(strided) == STRIDED
    assert all(op.same_padding for op in strided)
    assert [op.describe() for op in ops] == [op.describe() for op in parse(V2_FILE).ops]


def test_load_takes_classes_and_names_from_the_file(v2_int8: Path) -> None:
    model, card = _loaded(v2_int8)
    google, _ = _loaded(V2_FILE)
    assert (card.arch, card.kwargs["padding"], card.kwargs["num_classes"]) == ("mobilenet_v2", "tf_same", CLASSES)
    assert card.classes == tuple(_labels()) and card.label_offset == 0
    assert card.mean == card.std == (0.5,) * 3  # a float input: [-1, 1], as Google's float models
    state, own = model.state_dict(), google.state_dict()
    net = read(v2_int8)
    convs = [op for op in net.operators if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    checked = set()
    for layer, op in zip(weighted_layers(model, 224), convs, strict=True):  # each within half its channel's step
        weight, bias = (net.tensors[i] for i in op.inputs[1:3])
        bias_key = f"{layer.bn or layer.name}.bias"
        for key, scale in ((f"{layer.name}.weight", weight.scale), (bias_key, bias.scale)):
            ours, reference = state[key], own[key][: len(state[key])]  # the classifier: its first 965 rows
            error = (ours - reference).reshape(len(ours), -1).abs().amax(1)
            assert (error <= torch.from_numpy(scale) / 2 + 1e-6).all(), key  # ties round either way
            checked.add(key)
    for key, value in state.items():  # the identity batch norms: exactly the same
        if key not in checked:
            assert torch.equal(value, own[key]), key


@pytest.mark.parametrize(("activations", "least"), [("float", 27), ("uint8", 27)])
def test_agrees_with_the_interpreter_on_photos_and_imagenet(v2_int8: Path, activations: str, least: int) -> None:
    images = _images()
    assert len(images) == 28
    assert _agreement(v2_int8, activations, images) >= least


def test_predict_names_the_parrot_with_the_packed_label(v2_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parrot = DATA / "images" / "parrot.jpg"
    assert main(["predict", str(parrot), "--weights", str(v2_int8), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["topk"][0]["label"] == "macaw (class 89)"


def test_v3_small_with_int8_input_sees_the_pixels_the_uint8_file_does(v3_int8: Path) -> None:
    """An int8 input's zero point counts from pixel 128: the same mean and std as the uint8 file's."""
    _, card = _loaded(v3_int8, "uint8")
    assert (card.arch, card.kwargs["size"], card.num_classes) == ("mobilenet_v3", "small", 1001)
    assert (card.mean, card.std) == tflite_input_stats(parse(V3_FILE)) != (ModelCard.mean, ModelCard.std)
    assert "PAD" not in {op.name for op in parse(v3_int8).ops}
    assert _agreement(v3_int8, "uint8", _images(), to_input=np.int8) >= 26


def test_pads_other_than_tensorflow_same_are_refused(tmp_path: Path) -> None:
    """PyTorch's symmetric pads before a VALID convolution are not SAME: a one-line error, not a wrong model."""
    path = int8_file(V2_FILE, tmp_path / "symmetric.tflite", symmetric_pads=True)
    assert tf_same_padding(224, 3, 2) == (0, 1)  # what the file's (1, 1) is not
    with pytest.raises(WeightsError, match=r"\(CONV_2D 3x3/2\) has VALID padding after an explicit PAD of") as err:
        from_tflite([parse(path)], path.name)
    assert "\n" not in str(err.value)
