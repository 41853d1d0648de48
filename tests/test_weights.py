"""Pretrained weights: every format against its own library, our format, and bad input.

timm, transformers and the TFLite interpreter are test dependencies (the ``dev`` extra); tests
that need Google's files or the images under ../shared skip when that folder is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import mobilenet
from mobilenet import ModelCard, get_model_info
from mobilenet.card import CARD_VERSION
from mobilenet.cli import main
from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v1 import TABLE1, MobileNetV1
from mobilenet.weights import detect_format, hub, imagenet_classes, load_weights, read_native, save_native
from mobilenet.weights.converters.mobilenet_v1 import LAYOUTS, _match, key_map
from mobilenet.weights.tflite import parse
from reference import randomize_bn

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")  # as conftest's shared_data
TFLITE = DATA.parent / "weights" / "tflite"
BODY_1_0 = TFLITE / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
HEAD_1_0 = TFLITE / "mobilenet_quant_v1_224_head_layers.tflite"
GOOGLE_MODELS = {
    "0.25-128": [TFLITE / "mobilenet_v1_0.25_128_quant.tflite"],
    "0.5-160": [TFLITE / "mobilenet_v1_0.5_160_quant.tflite"],
    "0.75-192": [TFLITE / "mobilenet_v1_0.75_192_quant.tflite"],
    "1.0-224": [BODY_1_0, HEAD_1_0],
}
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning"),  # wanted: layer outputs
    pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning"),  # the refused pickles' protocol
]
needs_tflite = pytest.mark.skipif(not TFLITE.is_dir(), reason=f"Google's TFLite models not found at {TFLITE}")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"test images not found at {DATA}")


def _source(name: str) -> Path | list[Path]:
    files = GOOGLE_MODELS[name]
    return files[0] if len(files) == 1 else files


# ---------------------------------------------------------------- ImageNet class names


def test_imagenet_classes_are_the_standard_1000_in_synset_order() -> None:
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench, Tinca tinca" and names[999].startswith("toilet tissue")
    assert imagenet_classes(background=True) == ["background", *names]
    synsets = DATA / "imagenet-val-sample" / "synset_words.txt"
    if synsets.is_file():
        assert names == [line.split(" ", 1)[1] for line in synsets.read_text().splitlines()]


# ---------------------------------------------------------------- the model's head_conv option


def test_head_conv_adds_a_1x1_conv_bn_act_before_the_pool() -> None:
    model = MobileNetV1(head_conv=1280, num_classes=7)
    assert model.head.conv.kernel_size == (1, 1) and model.head.conv.out_channels == 1280
    assert model.num_features == 1280 and model.classifier.in_features == 1280
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 1280, 2, 2)
    assert "head.conv.weight" not in MobileNetV1().state_dict()  # the paper's network is unchanged


# ---------------------------------------------------------------- timm


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "save_as"),
    [("mobilenetv1_100", ".pth"), ("mobilenetv1_100h", ".safetensors"), ("mobilenetv1_125", ".pth")],
)
def test_timm_state_dict_gives_timms_logits(tmp_path: Path, variant: str, save_as: str) -> None:
    timm = pytest.importorskip("timm")
    reference = timm.create_model(variant, pretrained=False).eval()
    randomize_bn(reference, torch.Generator().manual_seed(0))
    path = tmp_path / f"{variant}{save_as}"
    if save_as == ".pth":
        torch.save(reference.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    model, card = load_weights(path)
    model.eval()
    assert card.format == "timm" and card.kwargs["padding"] == "torch" and len(card.classes) == 1000
    assert card.kwargs["head_conv"] == (1024 if variant.endswith("h") else 0)
    assert card.kwargs["width_mult"] == {"mobilenetv1_125": 1.25}.get(variant, 1.0)
    assert card.mean == card.std == (0.5,) * 3 and card.label_offset == 0
    for size in (224, 256):
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            assert (model(x) - reference(x)).abs().max() <= 1e-5


# ---------------------------------------------------------------- Hugging Face


@pytest.mark.slow
@pytest.mark.parametrize("depth_multiplier", [1.0, 0.75])
def test_hugging_face_folder_gives_transformers_logits(tmp_path: Path, depth_multiplier: float) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.MobileNetV1Config(depth_multiplier=depth_multiplier, tf_padding=True, num_labels=1001)
    reference = transformers.MobileNetV1ForImageClassification(config).eval()
    randomize_bn(reference, torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference.classifier.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(2))
    reference.save_pretrained(tmp_path)
    model, card = load_weights(tmp_path)
    model.eval()
    assert card.format == "hf" and card.kwargs["padding"] == "tf_same" and card.kwargs["num_classes"] == 1001
    assert card.kwargs["width_mult"] == depth_multiplier and card.label_offset == 1  # LABEL_i: ImageNet names
    assert card.classes == ("background", *imagenet_classes())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (model(x) - reference(pixel_values=x).logits).abs().max() <= 1e-4


def test_hugging_face_folder_of_another_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mobilenet_v2"}))
    save_file({"x": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(WeightsError, match=r"expected a Hugging Face MobileNetV1.*found model_type 'mobilenet_v2'"):
        load_weights(tmp_path)


# ---------------------------------------------------------------- Keras .h5

KERAS_WIDTHS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


def _keras_layers(alpha: float, classes: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Random weights for every Keras MobileNet layer, in Keras's names and layouts (HWIO, HWC1)."""
    rng = np.random.default_rng(seed)

    def kernel(*shape: int) -> np.ndarray:
        return rng.normal(0, np.sqrt(2 / np.prod(shape[:-1])), shape).astype(np.float32)

    def bn(n: int) -> dict[str, np.ndarray]:
        values = (rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.05, 1, n))
        return {
            k: v.astype(np.float32)
            for k, v in zip(("gamma", "beta", "moving_mean", "moving_variance"), values, strict=True)
        }

    chans = [int(c * alpha) for c in [32, *KERAS_WIDTHS]]
    layers = {"conv1": {"kernel": kernel(3, 3, 3, chans[0])}, "conv1_bn": bn(chans[0])}
    for i in range(1, 14):
        layers[f"conv_dw_{i}"] = {"depthwise_kernel": kernel(3, 3, chans[i - 1], 1)}
        layers[f"conv_dw_{i}_bn"] = bn(chans[i - 1])
        layers[f"conv_pw_{i}"] = {"kernel": kernel(1, 1, chans[i - 1], chans[i])}
        layers[f"conv_pw_{i}_bn"] = bn(chans[i])
    if classes:
        layers["conv_preds"] = {"kernel": kernel(1, 1, chans[-1], classes), "bias": rng.normal(0, 0.1, classes)}
    return layers


def _write_h5(path: Path, layers: dict[str, dict[str, np.ndarray]], whole_model: bool) -> None:
    """Keras 2's HDF5 layout: per layer a group, ``weight_names`` and ``<layer>/<param>:0`` datasets."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        root.attrs["layer_names"] = [name.encode() for name in ["input_1", *layers, "conv1_relu"]]
        root.create_group("input_1").attrs["weight_names"] = []  # layers without weights have empty groups
        for name, params in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{p}:0".encode() for p in params]
            for param, value in params.items():
                group.create_dataset(f"{name}/{param}:0", data=value)


def _keras_forward(layers: dict[str, dict[str, np.ndarray]], x: torch.Tensor) -> torch.Tensor:
    """Keras's MobileNet written with plain torch ops: (0, 1) zero padding before stride-2 convolutions."""

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float32))

    def conv_bn_relu6(x: torch.Tensor, name: str, stride: int, depthwise: bool) -> torch.Tensor:
        kernel = t(layers[name]["depthwise_kernel" if depthwise else "kernel"])
        weight = kernel.permute(2, 3, 0, 1) if depthwise else kernel.permute(3, 2, 0, 1)
        pad = (0, 1, 0, 1) if stride == 2 else (kernel.shape[0] // 2,) * 4  # ZeroPadding2D((0,1),(0,1)) / "same"
        x = F.conv2d(F.pad(x, pad), weight, stride=stride, groups=x.shape[1] if depthwise else 1)
        bn = layers[f"{name}_bn"]
        x = F.batch_norm(x, t(bn["moving_mean"]), t(bn["moving_variance"]), t(bn["gamma"]), t(bn["beta"]), eps=1e-3)
        return x.clamp(0, 6)

    x = conv_bn_relu6(x, "conv1", 2, False)
    for i, spec in enumerate(TABLE1, start=1):
        x = conv_bn_relu6(x, f"conv_dw_{i}", spec.stride, True)
        x = conv_bn_relu6(x, f"conv_pw_{i}", 1, False)
    x = x.mean((2, 3), keepdim=True)
    if "conv_preds" not in layers:
        return x.flatten(1)
    preds = layers["conv_preds"]
    return F.conv2d(x, t(preds["kernel"]).permute(3, 2, 0, 1), t(preds["bias"])).flatten(1)


@pytest.mark.slow
@pytest.mark.parametrize(("alpha", "size", "classes", "whole_model"), [(0.25, 128, 1000, False), (0.5, 160, 0, True)])
def test_keras_h5_gives_keras_outputs(tmp_path: Path, alpha: float, size: int, classes: int, whole_model: bool) -> None:
    layers = _keras_layers(alpha, classes, seed=4)
    top = "" if classes else "_no_top"
    path = tmp_path / f"mobilenet_{hub.KERAS_ALPHAS[str(alpha)]}_{size}_tf{top}.h5"  # as Keras publishes them
    _write_h5(path, layers, whole_model)
    assert detect_format(path) == "hdf5"
    model, card = load_weights(path)
    model.eval()
    assert (card.format, card.kwargs["width_mult"], card.kwargs["num_classes"]) == ("keras", alpha, classes)
    assert card.mean == card.std == (0.5,) * 3 and card.input_size == size  # from the file name
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (model(x) - _keras_forward(layers, x)).abs().max() <= 1e-4  # logits, or pooled features without top


def test_h5_without_mobilenet_layers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    _write_h5(path, {"dense_1": {"kernel": np.zeros((4, 2), np.float32), "bias": np.zeros(2, np.float32)}}, False)
    with pytest.raises(
        WeightsError, match=r"not a MobileNetV1 in Keras naming.*missing \(first: conv1/kernel\).*dense_1"
    ):
        load_weights(path)


# ---------------------------------------------------------------- Google's TFLite models


def _tflite_steps(path: Path) -> list[tuple[int, int]]:
    """(input tensor, output tensor) of each convolution, pool and classifier, in execution order."""
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    steps = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = tflite.BUILTIN_OPCODE2NAME[model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
            steps.append((int(op.Inputs(0)), int(op.Outputs(0))))
    return steps


@needs_tflite
@needs_data
@pytest.mark.parametrize("name", list(GOOGLE_MODELS))
def test_every_converted_layer_matches_the_interpreter_within_one_quantization_step(name: str) -> None:
    """Each of our layers, fed the interpreter's own (dequantized) input, reproduces its output to 8-bit precision.

    This checks every weight, bias, layout, stride and the TF SAME padding, layer by layer.
    """
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    bench = _benchmark()
    model, card = load_weights(_source(name))
    model.eval()
    modules = [model.stem, *(unit for block in model.blocks for unit in (block.dw, block.pw)), model.global_pool]
    modules.append(lambda x: model.classifier(x.flatten(1))[:, :, None, None])
    x = bench.preprocess(DATA / "images" / "grace_hopper.bmp", card.input_size)[None]
    checked = 0
    for path in GOOGLE_MODELS[name]:
        interpreter = litert.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        details = {d["index"]: d for d in interpreter.get_tensor_details()}

        def tensor(
            index: int, details: dict = details, interpreter: object = interpreter
        ) -> tuple[torch.Tensor, float]:
            scale, zero = details[index]["quantization"]
            value = (interpreter.get_tensor(index).astype(np.float32) - zero) * scale
            return torch.from_numpy(value).permute(0, 3, 1, 2), scale

        for step_in, step_out in _tflite_steps(path):
            (inputs, _), (expected, step) = tensor(step_in), tensor(step_out)
            with torch.no_grad():
                got = modules[checked](inputs)
            assert (got - expected).abs().max() <= step, f"{name} step {checked}"
            checked += 1
        x = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert checked == len(modules) == 2 * len(TABLE1) + 3


@needs_tflite
def test_body_and_head_files_load_in_either_order_and_bn_is_an_exact_bias() -> None:
    forward, _ = load_weights([BODY_1_0, HEAD_1_0])
    backward, card = load_weights([HEAD_1_0, BODY_1_0])
    arch = card.kwargs
    assert (arch["width_mult"], arch["num_classes"], arch["padding"], card.input_size) == (1.0, 1001, "tf_same", 224)
    ours, theirs = forward.state_dict(), backward.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    bn = forward.eval().blocks[3].pw.bn
    x = torch.randn(2, bn.num_features, 5, 5)
    assert torch.equal(bn(x), x + bn.bias[:, None, None])  # running_var + eps == 1 exactly in float32


@needs_tflite
def test_num_classes_1000_drops_the_background_class() -> None:
    full, card = load_weights(_source("0.25-128"))
    imagenet, card1000 = load_weights(_source("0.25-128"), num_classes=1000)
    assert card.label_offset == 1 and card.classes[0] == "background" and len(card.classes) == 1001
    assert card.eval_classes == imagenet_classes() and card.num_classes == 1001
    assert card1000.label_offset == 0 and card1000.classes == tuple(imagenet_classes())
    assert card1000.kwargs["num_classes"] == imagenet.num_classes == 1000
    assert torch.equal(imagenet.classifier.weight, full.classifier.weight[1:])
    assert torch.equal(imagenet.classifier.bias, full.classifier.bias[1:])


@needs_tflite
def test_features_only_loads_the_body_of_classifier_weights() -> None:
    full, _ = load_weights(_source("0.25-128"))
    backbone, card = load_weights(_source("0.25-128"), features_only=True, out_indices=(3, 4))
    assert card.kwargs["features_only"] and card.kwargs["out_indices"] == (3, 4) and not hasattr(backbone, "classifier")
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        maps = backbone.eval()(x)
        assert [m.shape[1] for m in maps] == [128, 256]
        assert torch.equal(maps[-1], full.eval().forward_features(x))


@needs_tflite
@needs_data
def test_parrot_is_a_macaw() -> None:
    model, card = load_weights(_source("0.75-192"))
    pixels = _benchmark().preprocess(DATA / "images" / "parrot.jpg", card.input_size)
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() - 128) / 128
    with torch.no_grad():
        assert card.classes[int(model.eval()(x).argmax())] == "macaw"


@cache
def _benchmark() -> ModuleType:
    """benchmarks/tflite_agreement.py, whose preprocessing and comparison the tests reuse."""
    spec = importlib.util.spec_from_file_location("tflite_agreement", ROOT / "benchmarks" / "tflite_agreement.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@needs_tflite
@needs_data
def test_agreement_with_the_interpreter_on_a_handful_of_images() -> None:
    pytest.importorskip("ai_edge_litert")
    bench = _benchmark()
    row = bench.compare("0.5-160", bench.image_list(DATA, limit=4))
    assert row.images == 8 and row.labelled == 4
    assert row.agreement >= 0.9 and row.ok


def _write_add_tflite(path: Path) -> None:
    """A valid TFLite model that adds two float vectors, built with the flatbuffer schema's own builders."""
    flatbuffers = pytest.importorskip("flatbuffers")
    tflite = pytest.importorskip("tflite")
    b = flatbuffers.Builder(1024)

    def vector(start: object, values: list[int], prepend: object) -> int:
        start(b, len(values))
        for value in reversed(values):
            prepend(value)
        return b.EndVector()

    tflite.BufferStart(b)
    buffers = vector(tflite.ModelStartBuffersVector, [tflite.BufferEnd(b)], b.PrependUOffsetTRelative)
    tensors = []
    for name in ("a", "b", "sum"):
        label, shape = b.CreateString(name), vector(tflite.TensorStartShapeVector, [1, 4], b.PrependInt32)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddName(b, label)
        tensors.append(tflite.TensorEnd(b))
    tensors = vector(tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    op_inputs, op_outputs = (vector(tflite.OperatorStartInputsVector, [0, 1], b.PrependInt32),
                             vector(tflite.OperatorStartOutputsVector, [2], b.PrependInt32))  # fmt: skip
    tflite.OperatorStart(b)
    tflite.OperatorAddInputs(b, op_inputs)
    tflite.OperatorAddOutputs(b, op_outputs)
    ops = vector(tflite.SubGraphStartOperatorsVector, [tflite.OperatorEnd(b)], b.PrependUOffsetTRelative)
    inputs, outputs = (vector(tflite.SubGraphStartInputsVector, [0, 1], b.PrependInt32),
                       vector(tflite.SubGraphStartOutputsVector, [2], b.PrependInt32))  # fmt: skip
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors)
    tflite.SubGraphAddInputs(b, inputs)
    tflite.SubGraphAddOutputs(b, outputs)
    tflite.SubGraphAddOperators(b, ops)
    graphs = vector(tflite.ModelStartSubgraphsVector, [tflite.SubGraphEnd(b)], b.PrependUOffsetTRelative)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.ADD)
    tflite.OperatorCodeAddVersion(b, 1)
    codes = vector(tflite.ModelStartOperatorCodesVector, [tflite.OperatorCodeEnd(b)], b.PrependUOffsetTRelative)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, graphs)
    tflite.ModelAddBuffers(b, buffers)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(b.Output())


def test_tflite_model_that_is_not_a_mobilenet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "add.tflite"
    _write_add_tflite(path)
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(path))  # a genuine TFLite model...
    interpreter.allocate_tensors()
    interpreter.set_tensor(0, np.ones((1, 4), np.float32))
    interpreter.set_tensor(1, np.arange(4, dtype=np.float32)[None])
    interpreter.invoke()
    assert interpreter.get_tensor(2).tolist() == [[1, 2, 3, 4]]
    with pytest.raises(WeightsError, match=r"not a MobileNetV1: expected a 3x3 stride-2 CONV_2D.*1 ADD"):
        load_weights(path)  # ...but not a MobileNetV1


@needs_tflite
def test_tflite_graph_with_another_stride_or_only_a_head_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    ops = parse(GOOGLE_MODELS["0.25-128"][0]).ops
    changed = [*ops[:3], replace(ops[3], stride=1), *ops[4:]]
    with pytest.raises(WeightsError, match=r"operator 3 is DEPTHWISE_CONV_2D 3x3/1, not DEPTHWISE_CONV_2D 3x3/2"):
        _match(changed, "changed")
    with pytest.raises(WeightsError, match="a classifier alone: pass its body file with it"):
        load_weights(HEAD_1_0)
    with pytest.raises(WeightsError, match=r"has 1001 classes; asked for num_classes=10.*reset_classifier"):
        load_weights(_source("0.25-128"), num_classes=10)
    with pytest.raises(WeightsError, match=r"width_mult=0\.25, not the width_mult=0\.5 asked for"):
        load_weights(_source("0.25-128"), width_mult=0.5)


# ---------------------------------------------------------------- our format, the model card and load()


def _small_model(seed: int, **kwargs: object) -> MobileNetV1:
    """A width-0.25 MobileNetV1 in eval mode with its own BN statistics (``seed`` tells two apart)."""
    model = MobileNetV1(width_mult=0.25, **kwargs)
    randomize_bn(model, torch.Generator().manual_seed(seed))
    return model.eval()


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@needs_tflite
def test_native_file_round_trip_keeps_weights_and_card(tmp_path: Path) -> None:
    model, card = load_weights(_source("0.25-128"), num_classes=1000)
    path = save_native(model, card, tmp_path / "google.safetensors")
    assert os.listdir(tmp_path) == ["google.safetensors"]  # no temporary file left behind
    _, stored = read_native(path)
    assert stored == card and stored.classes == tuple(imagenet_classes()) and stored.input_size == 128
    again, loaded = load_weights(path)
    assert loaded == card and loaded.source == str(_source("0.25-128")) and loaded.format == "tflite"
    assert (loaded.mean, loaded.std, loaded.kwargs["padding"]) == ((128 / 255,) * 3, (128 / 255,) * 3, "tf_same")
    x = torch.randn(1, 3, 128, 128)
    assert torch.equal(_outputs(again, x), _outputs(model, x))


def test_native_format_is_recognised_by_content_and_keeps_any_architecture(tmp_path: Path) -> None:
    model = MobileNetV1(width_mult=0.5, num_classes=10, body="shallow", padding="tf_same")
    card = ModelCard("mobilenet_v1")  # save_native records the model's own constructor arguments
    path = save_native(model, card, tmp_path / "weights.pt")  # misleading extension
    assert detect_format(path) == "safetensors"
    loaded, loaded_card = load_weights(path)
    assert loaded_card.kwargs["body"] == "shallow" and loaded_card.kwargs["padding"] == "tf_same"
    assert loaded_card.kwargs == model.config and loaded_card.classes is None
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_outputs(loaded, x), _outputs(model, x))
    with pytest.raises(WeightsError, match="names 3 classes, the model has 10 outputs"):
        save_native(model, card.replace(classes=("a", "b", "c")), tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_weights_written_by_mobilenet_train_load_from_their_registry_name(tmp_path: Path) -> None:
    model = MobileNetV1(body="shallow", width_mult=0.25, num_classes=2)
    meta = {"model": "mobilenet_v1_shallow", "kwargs": {"width_mult": 0.25, "num_classes": 2}, "classes": ["a", "b"]}
    save_file(model.state_dict(), tmp_path / "best.safetensors", metadata={"mobilenet": json.dumps(meta)})
    loaded, card = load_weights(tmp_path / "best.safetensors")
    assert card.kwargs["body"] == "shallow" and card.classes == ("a", "b")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_our_state_dict_without_metadata_loads_by_shape(tmp_path: Path) -> None:
    model = MobileNetV1(width_mult=0.75, num_classes=5)
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ckpt.pt")
    loaded, card = load_weights(tmp_path / "ckpt.pt")
    assert card.kwargs["width_mult"] == 0.75 and card.kwargs["num_classes"] == 5 and card.classes is None
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


@needs_tflite
def test_load_takes_architecture_and_card_from_the_weights() -> None:
    model, card = mobilenet.load(_source("0.75-192"), num_classes=1000)
    published = get_model_info("mobilenet_v1_075_192")
    assert not model.training and card.arch == "mobilenet_v1" and card.kwargs["padding"] == "tf_same"
    assert card.kwargs["width_mult"] == published.kwargs["width_mult"] and model.num_classes == card.num_classes == 1000
    assert card.input_size == published.input_size == 192 and card.label_offset == 0
    assert card.mean == (128 / 255,) * 3 and card.classes[0] == "tench, Tinca tinca"
    with pytest.raises(WeightsError, match=r"width_mult=0\.75, not the width_mult=0\.5 asked for"):
        mobilenet.load(_source("0.75-192"), width_mult=0.5)


def test_load_reads_a_training_run_folder_best_else_last(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "mobilenet_v1", "width_mult": 0.25, "epochs": 1}))
    with pytest.raises(WeightsError, match=r"training run without a checkpoint \(no best.safetensors\)"):
        mobilenet.load(run)
    card = ModelCard(
        "mobilenet_v1",
        classes=("cat", "dog", "fox"),
        input_size=32,
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.25, 0.3),
        kind="small",
        source=f"trained with mobilenet train --out {run}",
        format="native",
    )
    best, last = _small_model(1, num_classes=3), _small_model(2, num_classes=3)
    save_native(last, card, run / "last.safetensors")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    assert torch.equal(_outputs(mobilenet.load(run)[0], x), _outputs(last, x))  # no best yet: the last epoch
    save_native(best, card, run / "best.safetensors")
    model, loaded = mobilenet.load(run)
    direct, direct_card = load_weights(run / "best.safetensors")
    assert not model.training and loaded == direct_card == card.replace(kwargs=best.config)
    assert torch.equal(_outputs(model, x), _outputs(best, x)) and torch.equal(_outputs(direct, x), _outputs(best, x))
    assert torch.equal(_outputs(mobilenet.load(run, tag="last")[0], x), _outputs(last, x))
    assert not torch.equal(_outputs(best, x), _outputs(last, x))  # the two checkpoints are told apart


@pytest.mark.parametrize("kind", ["native", "tflite"])
def test_load_reads_weights_files_like_load_weights_in_eval_mode(tmp_path: Path, kind: str) -> None:
    saved = None
    if kind == "native":
        saved = _small_model(3, num_classes=4)
        card = ModelCard("mobilenet_v1", classes=("a", "b", "c", "d"), input_size=96, format="native")
        path = save_native(saved, card, tmp_path / "w.safetensors")
        expected = ("native", ("a", "b", "c", "d"), 0, 96)
    else:
        path = GOOGLE_MODELS["0.25-128"][0]
        if not path.is_file():
            pytest.skip(f"{path} not found")
        expected = ("tflite", ("background", *imagenet_classes()), 1, 128)
    model, card = mobilenet.load(path)
    direct, direct_card = load_weights(path)
    assert not model.training and direct.training  # load() is for inference; load_weights returns the model as built
    assert card == direct_card and (card.arch, card.kwargs["width_mult"]) == ("mobilenet_v1", 0.25)
    assert (card.format, card.classes, card.label_offset, card.input_size) == expected
    x = torch.randn(2, 3, card.input_size, card.input_size, generator=torch.Generator().manual_seed(7))
    assert torch.equal(_outputs(model, x), _outputs(direct, x))
    if saved is not None:
        assert torch.equal(_outputs(model, x), _outputs(saved, x))


def test_load_reads_a_hugging_face_folder(tmp_path: Path) -> None:
    model = _small_model(5, num_classes=4, padding="tf_same")
    ours = model.state_dict()
    save_file(
        {theirs: ours[k].contiguous() for k, theirs in key_map(LAYOUTS["hf"]).items()}, tmp_path / "model.safetensors"
    )
    config = {"model_type": "mobilenet_v1", "depth_multiplier": 0.25, "tf_padding": True, "layer_norm_eps": 1e-5}
    (tmp_path / "config.json").write_text(json.dumps(config))
    direct, direct_card = load_weights(tmp_path)
    assert direct_card.format == "hf" and direct_card.kwargs["padding"] == "tf_same"
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_outputs(direct, x), _outputs(model, x))
    loaded, card = mobilenet.load(tmp_path)
    assert card == direct_card and torch.equal(_outputs(loaded, x), _outputs(model, x))


def _old_file(path: Path, model: torch.nn.Module, meta: dict) -> Path:
    """A weights file as this package wrote it before the model card (``meta`` in an old dialect)."""
    save_file(model.state_dict(), path, metadata={"mobilenet": json.dumps(meta)})
    return path


def test_old_checkpoint_dialect_loads_from_its_run_folder_with_its_card(tmp_path: Path) -> None:
    model = _small_model(8, num_classes=2, in_chans=1, stem_stride=1)
    old = {
        "model": "mobilenet_v1",
        "kwargs": {"width_mult": 0.25, "num_classes": 2, "in_chans": 1, "stem_stride": 1},
        "classes": ["zero", "one"],
        "mean": [0.1307],
        "std": [0.3081],
        "input_size": 28,
        "in_chans": 1,
        "kind": "small",
        "source": "trained with mobilenet train --out mnist",
        "weights_of": "ema",
    }
    _old_file(tmp_path / "best.safetensors", model, old)
    loaded, card = mobilenet.load(tmp_path)  # a run folder of an earlier version
    assert (card.arch, card.in_chans, card.input_size, card.kind) == ("mobilenet_v1", 1, 28, "small")
    assert (card.mean, card.std, card.classes) == ((0.1307,), (0.3081,), ("zero", "one"))
    assert card.source == old["source"] and card.extra == {"weights_of": "ema"} and card.label_offset == 0
    assert card.kwargs == model.config
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    assert torch.equal(_outputs(loaded, x), _outputs(model, x))


def test_old_native_dialect_loads_with_its_card(tmp_path: Path) -> None:
    model = _small_model(10, num_classes=3, padding="tf_same")  # padding: only the metadata says so
    arch = json.loads(json.dumps(model.config))  # every constructor argument, tuples as JSON lists
    old = {
        "arch": arch,
        "model": "mobilenet_v1",
        "kwargs": arch,
        "classes": ["background", "a", "b"],
        "label_offset": 1,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "input_size": 192,
        "crop_pct": 0.9,
        "source": "mobilenet_v1_0.25_192_quant.tflite",
        "format": "tflite",
        "format_version": 1,
    }
    path = _old_file(tmp_path / "old.safetensors", model, old)
    loaded, card = mobilenet.load(path)
    assert card.kwargs == model.config and card.kwargs["padding"] == "tf_same"
    assert (card.label_offset, card.eval_classes, card.input_size, card.crop_fraction) == (1, ["a", "b"], 192, 0.9)
    assert (card.mean, card.std, card.format, card.source) == ((0.5,) * 3, (0.5,) * 3, "tflite", old["source"])
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(11))
    assert torch.equal(_outputs(loaded, x), _outputs(model, x))


def test_card_round_trips_and_a_newer_card_version_is_refused(tmp_path: Path) -> None:
    card = ModelCard(
        "mobilenet_v1",
        kwargs={"width_mult": 0.5, "num_classes": 3, "padding": "tf_same", "out_indices": (3, 4)},
        classes=("background", "a", "b"),
        label_offset=1,
        input_size=160,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        crop_fraction=0.9,
        kind="photo",
        source="somewhere.tflite",
        format="tflite",
        quantization={"runtime": "onnxruntime", "weights": "int8 per channel", "calibration": 64},
        extra={"weights_of": "ema", "max_batch": 8},
    )
    data = card.to_dict()
    assert data["card_version"] == CARD_VERSION
    assert ModelCard.from_dict(data) == card
    assert ModelCard.from_dict(json.loads(json.dumps(data))) == card  # as files hold it: tuples become lists
    newer = {**data, "card_version": CARD_VERSION + 1}
    with pytest.raises(WeightsError, match=f"card.json: model card version {CARD_VERSION + 1} is newer than"):
        ModelCard.from_dict(newer, "card.json")
    path = tmp_path / "future.safetensors"
    save_file({"stem.conv.weight": torch.zeros(1)}, path, metadata={"mobilenet": json.dumps(newer)})
    with pytest.raises(WeightsError, match=f"{path}: model card version {CARD_VERSION + 1} is newer than"):
        mobilenet.load(path)


# ---------------------------------------------------------------- bad input


class _Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_carries_code_is_refused_and_never_runs(tmp_path: Path, legacy: bool) -> None:
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    torch.save(
        {"stem.conv.weight": torch.zeros(1), "x": _Payload(marker)}, path, _use_new_zipfile_serialization=not legacy
    )
    assert detect_format(path) == "torch"
    with pytest.raises(WeightsError, match=r"refused to load: the pickle holds more than tensors \(it references"):
        load_weights(path)
    assert not marker.exists()


def _truncated(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"weights.{kind}"
    model = MobileNetV1(width_mult=0.25, num_classes=3)
    if kind == "safetensors":
        save_native(model, ModelCard("mobilenet_v1"), path)
    elif kind == "pth":
        torch.save(model.state_dict(), path)
    else:
        _write_h5(path, _keras_layers(0.25, 0, seed=0), whole_model=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("kind", ["safetensors", "pth", "h5"])
def test_truncated_file_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    with pytest.raises(WeightsError, match="truncated or corrupt") as err:
        load_weights(_truncated(tmp_path, kind))
    assert "\n" not in str(err.value)


@needs_tflite
def test_truncated_tflite_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.tflite"
    path.write_bytes(GOOGLE_MODELS["0.25-128"][0].read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="truncated or corrupt TFLite file") as err:
        load_weights(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"not weights at all", "unknown format"), (pickle.dumps([1, 2]), "refused to load")],
)
def test_empty_unknown_or_tensorless_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        load_weights(path)
    torch.save([1, 2], path)
    with pytest.raises(WeightsError, match="expected a state dict of tensors, found list"):
        load_weights(path)


def test_missing_path_and_foreign_state_dict_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file or folder"):
        load_weights(tmp_path / "absent.pth")
    save_file({"features.0.0.weight": torch.zeros(1)}, tmp_path / "resnet.safetensors")
    with pytest.raises(WeightsError, match=r"not a MobileNetV1 state dict: .*found 1 keys \(features.0.0.weight"):
        load_weights(tmp_path / "resnet.safetensors")


@pytest.mark.parametrize(
    ("tag", "url"),
    [
        ("timm", "https://huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k/resolve/main/model.safetensors"),
        ("hf:google/mobilenet_v1_0.75_192", "https://huggingface.co/google/mobilenet_v1_0.75_192/tree/main"),
        ("keras:0.75_192_no_top", "keras-applications/mobilenet/mobilenet_7_5_192_tf_no_top.h5"),
    ],
)
def test_tags_offline_say_which_file_to_get(monkeypatch: pytest.MonkeyPatch, tag: str, url: str) -> None:
    def offline(*args: object) -> Path:
        raise OSError("Name or service not known")

    for name in ("_hub_file", "_hub_folder", "_download"):
        monkeypatch.setattr(hub, name, offline)
    with pytest.raises(WeightsError, match=f"cannot download the weights for '{tag}'") as err:
        load_weights(tag)
    assert url in str(err.value) and f"instead of '{tag}'" in str(err.value)


def test_convert_writes_our_format_and_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = MobileNetV1(width_mult=0.25, num_classes=3)
    torch.save(model.state_dict(), tmp_path / "ours.pth")
    out = tmp_path / "ours.safetensors"
    assert main(["convert", str(tmp_path / "ours.pth"), "--out", str(out)]) == 0
    assert f"wrote {out}: mobilenet_v1 width_mult=0.25, 3 classes" in capsys.readouterr().out
    card = read_native(out)[1]
    assert card.kwargs["num_classes"] == 3 and card.extra["converted_from"] == card.source == str(tmp_path / "ours.pth")
    (tmp_path / "junk.bin").write_bytes(b"junk")
    for args in (["junk.bin"], ["ours.pth", "--num-classes", "7"], ["ours.pth", "ours.pth", "ours.pth"]):
        path_args = [str(tmp_path / a) if a.endswith((".bin", ".pth")) else a for a in args]
        assert main(["convert", *path_args, "--out", str(tmp_path / "x.safetensors")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mobilenet convert: error: ") and err.count("\n") == 1
    assert not (tmp_path / "x.safetensors").exists()


def test_graph_fitting_places_every_operator_as_the_v1_converter_does() -> None:
    """The generic fit (weighted operators onto our layers in execution order) equals V1's own converter."""
    from mobilenet.weights.converters.graph import WEIGHTED, match_candidates

    path = TFLITE / "mobilenet_v1_0.25_128_quant.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    ops = [op for op in parse(path).ops if op.name in WEIGHTED]

    def build(kwargs: dict) -> MobileNetV1:
        return MobileNetV1(num_classes=1001, padding="tf_same", **kwargs)

    candidates = [{"width_mult": w} for w in (1.0, 0.75, 0.5, 0.25)]
    kwargs, state = match_candidates(candidates, build, ops, 128, "MobileNetV1", str(path))
    reference = load_weights(path)[0].state_dict()
    assert kwargs == {"width_mult": 0.25} and len(state) == 137
    assert all(torch.equal(state[k], reference[k]) for k in state if not k.endswith("running_var"))
    with pytest.raises(
        WeightsError, match=r"weighted operator 0 \(CONV_2D 3x3/2 \(8, 3, 3, 3\)\) does not fit stem.conv"
    ):
        match_candidates([{"width_mult": 0.5}], build, ops, 128, "MobileNetV1", str(path))
