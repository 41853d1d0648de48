"""MobileNetV3's published weights: torchvision, timm, Keras and Google's TFLite files against their own libraries.

torchvision, timm and the TFLite interpreter are test dependencies (the ``dev`` extra); tests that
need Google's files or the images under ../shared skip when that folder is absent.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import mobilenet
from mobilenet.card import ModelCard
from mobilenet.cli import main
from mobilenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v3 import MobileNetV3
from mobilenet.weights import load_weights
from mobilenet.weights.converters import KERAS_BN_EPS
from mobilenet.weights.converters.mobilenet_v3 import TORCHVISION_BN_EPS, from_keras, from_tflite
from mobilenet.weights.keras import read_keras
from mobilenet.weights.loader import build
from mobilenet.weights.tflite import Op, parse

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")  # as conftest's shared_data
TFLITE = DATA.parent / "weights" / "tflite"
SMALL = TFLITE / "v3-small_224_1.0_uint8.tflite"
LARGE_MINIMAL = TFLITE / "v3-large-minimalistic_224_1.0_uint8.tflite"
GOOGLE = {  # name: (file, what it is)
    "small": (SMALL, {"size": "small", "minimal": False}),
    "large-minimal": (LARGE_MINIMAL, {"size": "large", "minimal": True}),
}
V1_FILE = TFLITE / "mobilenet_v1_0.25_128_quant.tflite"
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning"),
]
needs_tflite = pytest.mark.skipif(not SMALL.is_file(), reason=f"Google's TFLite MobileNetV3s not found in {TFLITE}")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"test images not found at {DATA}")


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random BN affine parameters and statistics, and linear layers, at a scale where logits stay O(1).

    Statistics start from one 224x224 batch's own (random convolutions with random statistics grow
    activations geometrically through 15 blocks, and float32 rounding with them), then move away
    from it by up to a quarter (variances down to ~0.02 in timm's models, so that a BN epsilon slip
    of 1e-3 shows), so that any mapping slip shows.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.weight.data = torch.rand(bn.num_features, generator=generator) + 0.5
        bn.bias.data = torch.randn(bn.num_features, generator=generator) * 0.1
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: the batch's own statistics
    for linear in (m for m in model.modules() if isinstance(m, nn.Linear)):
        linear.weight.data = torch.randn(linear.weight.shape, generator=generator) / linear.in_features**0.5
        linear.bias.data = torch.randn(linear.out_features, generator=generator) * 0.1
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 224, 224, generator=generator))
    for bn in norms:
        n = bn.num_features
        bn.running_mean += torch.randn(n, generator=generator) * 0.1 * bn.running_var.sqrt()
        bn.running_var *= torch.rand(n, generator=generator) * 0.45 + 0.8
    return model.eval()


def _bn_eps(model: nn.Module) -> set[float]:
    return {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)}


def _max_diff(ours: nn.Module, reference: nn.Module, x: torch.Tensor) -> float:
    """Largest logit difference, both computed in float64 from the same float32 weights.

    float32 arithmetic alone differs by up to ~1e-5 between runs (convolution algorithms), which
    random BN statistics amplify; in float64 any difference left is the conversion's.
    """
    with torch.no_grad():
        return float((ours.eval().double()(x.double()) - reference.double()(x.double())).abs().max())


def _save(model: nn.Module, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    else:
        torch.save(model.state_dict(), path)
    return path


# ---------------------------------------------------------------- torchvision


@pytest.mark.parametrize(("size", "save_as"), [("large", ".pth"), ("small", ".safetensors")])
def test_torchvision_state_dict_gives_torchvisions_logits(tmp_path: Path, size: str, save_as: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    reference = _randomize(getattr(torchvision.models, f"mobilenet_v3_{size}")(), seed=1)
    assert _bn_eps(reference) == {TORCHVISION_BN_EPS}  # torchvision's V3 batch norm: eps=0.001
    model, card = load_weights(_save(reference, tmp_path / f"mobilenet_v3_{size}{save_as}"))
    arch = card.kwargs
    assert (card.format, arch["size"], arch["minimal"], arch["width_mult"]) == ("torchvision", size, False, 1.0)
    assert (arch["padding"], arch["num_classes"], card.mean, card.std) == ("torch", 1000, IMAGENET_MEAN, IMAGENET_STD)
    assert _max_diff(model, reference, torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))) <= 1e-5


# ---------------------------------------------------------------- timm

TIMM = {  # variant: (size, minimal, padding, BN epsilon)
    "mobilenetv3_large_100": ("large", False, "torch", 1e-5),
    "mobilenetv3_small_100": ("small", False, "torch", 1e-5),
    "tf_mobilenetv3_large_100": ("large", False, "tf_same", KERAS_BN_EPS),
    "tf_mobilenetv3_large_minimal_100": ("large", True, "tf_same", KERAS_BN_EPS),
}


@pytest.mark.parametrize(
    ("variant", "save_as"),
    [("mobilenetv3_large_100", ".pth"), ("mobilenetv3_small_100", ".safetensors"),
     ("tf_mobilenetv3_large_100", ".safetensors"), ("tf_mobilenetv3_large_minimal_100", ".pth")],
)  # fmt: skip
def test_timm_state_dict_gives_timms_logits(tmp_path: Path, variant: str, save_as: str) -> None:
    timm = pytest.importorskip("timm")
    size, minimal, padding, eps = TIMM[variant]
    reference = _randomize(timm.create_model(variant), seed=3)
    assert _bn_eps(reference) == {eps}
    model, card = load_weights(_save(reference, tmp_path / f"{variant}{save_as}"))  # named as timm names it
    arch = card.kwargs
    assert (card.format, arch["size"], arch["minimal"], arch["width_mult"], arch["padding"]) == (
        "timm", size, minimal, 1.0, padding
    )  # fmt: skip
    assert (card.mean, card.std) == (reference.pretrained_cfg["mean"], reference.pretrained_cfg["std"])
    assert _max_diff(model, reference, torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))) <= 1e-5


def test_timm_hub_folder_takes_tf_conventions_from_its_config(tmp_path: Path) -> None:
    """A timm hub snapshot (its config.json names the architecture): TF padding and epsilon, whatever the path."""
    timm = pytest.importorskip("timm")
    reference = _randomize(timm.create_model("tf_mobilenetv3_small_minimal_100"), seed=5)
    _save(reference, tmp_path / "model.safetensors")
    cfg = {"mean": [0.5] * 3, "std": [0.5] * 3, "input_size": [3, 224, 224]}
    config = {"architecture": "tf_mobilenetv3_small_minimal_100", "num_classes": 1000, "pretrained_cfg": cfg}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model, card = load_weights(tmp_path)
    assert (card.kwargs["size"], card.kwargs["minimal"], card.kwargs["padding"]) == ("small", True, "tf_same")
    assert _max_diff(model, reference, torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(6))) <= 1e-5


def test_timm_state_dict_missing_a_tensor_is_a_one_line_error(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    state = timm.create_model("mobilenetv3_small_100").state_dict()
    del state["blocks.3.1.se.conv_expand.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsError) as err:
        load_weights(tmp_path / "broken.pth")
    message = str(err.value)
    assert (
        "not a MobileNetV3 in timm naming" in message and "1 missing (first: blocks.3.1.se.conv_expand.bias)" in message
    )
    assert "\n" not in message


# ---------------------------------------------------------------- Keras .h5


def _keras_layers(reference: nn.Module) -> dict[str, dict[str, np.ndarray]]:
    """A timm ``tf_`` MobileNetV3's weights as Keras's ``applications.MobileNetV3*`` layers, named as its source
    names them (keras/src/applications/mobilenet_v3.py before Keras 3: ``Conv``, ``expanded_conv_N/expand``...)."""

    def array(t: torch.Tensor, *order: int) -> np.ndarray:
        return np.ascontiguousarray(t.detach().permute(*order).numpy() if order else t.detach().numpy())

    def bn(m: nn.BatchNorm2d) -> dict[str, np.ndarray]:
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        return {k: array(t) for k, t in zip(names, (m.weight, m.bias, m.running_mean, m.running_var), strict=True)}

    def conv(weight: torch.Tensor, bias: torch.Tensor | None = None) -> dict[str, np.ndarray]:  # OIHW -> HWIO
        return {"kernel": array(weight, 2, 3, 1, 0), **({"bias": array(bias)} if bias is not None else {})}

    layers = {"Conv": conv(reference.conv_stem.weight), "Conv/BatchNorm": bn(reference.bn1)}
    for i, block in enumerate(b for stage in reference.blocks[:-1] for b in stage):
        prefix = f"expanded_conv_{i}" if i else "expanded_conv"
        expanded = hasattr(block, "conv_pwl")  # timm's InvertedResidual; DepthwiseSeparable without expansion
        if expanded:
            layers[f"{prefix}/expand"], layers[f"{prefix}/expand/BatchNorm"] = conv(block.conv_pw.weight), bn(block.bn1)
        layers[f"{prefix}/depthwise"] = {"depthwise_kernel": array(block.conv_dw.weight, 2, 3, 0, 1)}  # C1HW -> HWC1
        layers[f"{prefix}/depthwise/BatchNorm"] = bn(block.bn2 if expanded else block.bn1)
        if hasattr(block.se, "conv_reduce"):
            layers[f"{prefix}/squeeze_excite/Conv"] = conv(block.se.conv_reduce.weight, block.se.conv_reduce.bias)
            layers[f"{prefix}/squeeze_excite/Conv_1"] = conv(block.se.conv_expand.weight, block.se.conv_expand.bias)
        layers[f"{prefix}/project"] = conv((block.conv_pwl if expanded else block.conv_pw).weight)
        layers[f"{prefix}/project/BatchNorm"] = bn(block.bn3 if expanded else block.bn2)
    head = reference.blocks[-1][0]
    layers["Conv_1"], layers["Conv_1/BatchNorm"] = conv(head.conv.weight), bn(head.bn1)
    layers["Conv_2"] = conv(reference.conv_head.weight, reference.conv_head.bias)
    layers["Logits"] = conv(reference.classifier.weight[:, :, None, None], reference.classifier.bias)
    return layers


def _write_h5(path: Path, layers: dict[str, dict[str, np.ndarray]]) -> Path:
    """Keras 2's HDF5 weights layout: ``layer_names``, a group per layer (a name with '/' nests groups, as
    h5py makes them), its ``weight_names`` and datasets ``<layer>/<param>:0`` inside it."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in ["input_1", "rescaling", *layers]]
        for name in ("input_1", "rescaling"):  # layers without weights have empty groups
            f.create_group(name).attrs["weight_names"] = []
        for name, params in layers.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{p}:0".encode() for p in params]
            for param, value in params.items():
                group.create_dataset(f"{name}/{param}:0", data=value)
    return path


@pytest.mark.parametrize(
    ("variant", "filename"),
    [("tf_mobilenetv3_large_minimal_100", "weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5"),
     ("tf_mobilenetv3_small_075", "weights_mobilenet_v3_small_224_0.75_float.h5")],
)  # fmt: skip
def test_keras_layers_land_where_their_names_say_and_give_timms_logits(
    tmp_path: Path, variant: str, filename: str
) -> None:
    """Keras's layers, from the same arrays as a timm tf_ model (TF padding, epsilon 1e-3, [-1, 1] inputs)."""
    timm = pytest.importorskip("timm")
    reference = _randomize(timm.create_model(variant), seed=7)
    layers = _keras_layers(reference)
    path = _write_h5(tmp_path / filename, layers)
    model, card = build(from_keras(read_keras(path), str(path)), {})
    assert (card.format, card.kwargs["padding"], card.input_size, card.mean, card.std) == (
        "keras", "tf_same", 224, (0.5,) * 3, (0.5,) * 3
    )  # fmt: skip
    assert card.kwargs["width_mult"] == float(filename.split("_")[-2]) and card.kwargs["num_classes"] == 1000
    state = model.state_dict()
    assert torch.equal(state["stem.conv.weight"], torch.from_numpy(layers["Conv"]["kernel"]).permute(3, 2, 0, 1))
    assert torch.equal(  # HWC1 -> C1HW
        state["blocks.1.dw.conv.weight"],
        torch.from_numpy(layers["expanded_conv_1/depthwise"]["depthwise_kernel"]).permute(2, 3, 0, 1),
    )
    assert torch.equal(state["head_fc.weight"], torch.from_numpy(layers["Conv_2"]["kernel"][0, 0].T))
    assert torch.equal(state["classifier.bias"], torch.from_numpy(layers["Logits"]["bias"]))
    variance = torch.from_numpy(layers["Conv_1/BatchNorm"]["moving_variance"])
    assert torch.allclose(state["head.bn.running_var"] + model.head.bn.eps, variance + KERAS_BN_EPS)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    assert _max_diff(model, reference, x) <= 1e-4


def test_keras_h5_file_loads_through_load_weights(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    reference = _randomize(timm.create_model("tf_mobilenetv3_large_minimal_100"), seed=9)
    path = _write_h5(tmp_path / "weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5", _keras_layers(reference))
    model, card = load_weights(path)
    assert card.format == "keras"
    assert _max_diff(model, reference, torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(10))) <= 1e-4


# ---------------------------------------------------------------- our own names


def test_our_state_dict_loads_through_mobilenet_load(tmp_path: Path) -> None:
    ours = _randomize(MobileNetV3(size="small", minimal=True, width_mult=0.75, num_classes=7), seed=11)
    torch.save(ours.state_dict(), tmp_path / "v3.pth")
    model, card = mobilenet.load(tmp_path / "v3.pth")
    assert not model.training and (card.arch, card.format, card.classes) == ("mobilenet_v3", "state_dict", None)
    assert {k: card.kwargs[k] for k in ("size", "minimal", "width_mult", "num_classes")} == {
        "size": "small", "minimal": True, "width_mult": 0.75, "num_classes": 7
    }  # fmt: skip
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        assert torch.equal(model(x), ours(x))


# ---------------------------------------------------------------- Google's TFLite files


@cache
def _google(name: str) -> tuple[MobileNetV3, ModelCard]:
    model, card = load_weights(GOOGLE[name][0])
    return model.eval(), card


@cache
def _benchmark() -> ModuleType:
    """benchmarks/tflite_agreement.py, whose preprocessing and interpreter wrapper the tests reuse."""
    spec = importlib.util.spec_from_file_location("tflite_agreement", ROOT / "benchmarks" / "tflite_agreement.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _ours(model: MobileNetV3, card: ModelCard, pixels: np.ndarray) -> torch.Tensor:
    """Our logits for uint8 HxWx3 pixels, normalised as the card says: (q - 128) / 127 for these files."""
    mean, std = torch.tensor(card.mean).view(1, 3, 1, 1), torch.tensor(card.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - mean) / std)[0]


@needs_tflite
@pytest.mark.parametrize("name", list(GOOGLE))
def test_google_tflite_converts_to_its_size_and_variant(name: str) -> None:
    model, card = _google(name)
    arch = card.kwargs
    assert {k: arch[k] for k in ("size", "minimal")} == GOOGLE[name][1] and arch["width_mult"] == 1.0
    assert (arch["num_classes"], arch["padding"], card.input_size, card.label_offset) == (1001, "tf_same", 224, 1)
    assert card.mean == (128 / 255,) * 3 and card.std == pytest.approx((127 / 255,) * 3)  # scale 1/127, zero 128
    assert card.classes[0] == "background" and card.classes[89] == "macaw"
    bn = model.blocks[2].project.bn
    x = torch.randn(2, bn.num_features, 5, 5)
    assert torch.equal(bn(x), x + bn.bias[:, None, None])  # BN folded into the convolution: an exact bias
    hard_swish = sum(isinstance(m, nn.Hardswish) for m in model.modules())
    assert hard_swish == sum(op.name == "HARD_SWISH" for op in parse(GOOGLE[name][0]).ops)  # 19 and 0


@needs_tflite
@needs_data
@pytest.mark.parametrize("name", list(GOOGLE))
def test_every_converted_layer_matches_the_interpreter_within_half_a_quantization_step(name: str) -> None:
    """Each weighted layer, fed the interpreter's own (dequantized) input, gives its output to 8-bit precision.

    Our output goes through the layer's activation where the graph folds it (ReLU: zero point 0)
    and is clamped to the output's 8-bit range, as the integer kernel saturates. This checks every
    weight, bias, layout, stride and the TF SAME padding, SE's convolutions and head_fc included.
    """
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    tflite = pytest.importorskip("tflite")
    path, (model, card) = GOOGLE[name][0], _google(name)
    modules = dict(model.named_modules())
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    interpreter = litert.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    pixels = _benchmark().preprocess(DATA / "images" / "grace_hopper.bmp", card.input_size)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def tensor(index: int) -> tuple[torch.Tensor, float, int]:
        scale, zero = details[index]["quantization"]
        value = (interpreter.get_tensor(index).astype(np.float32) - zero) * scale
        return torch.from_numpy(value).permute(0, 3, 1, 2), scale, zero

    graph = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    ops = [graph.Subgraphs(0).Operators(i) for i in range(graph.Subgraphs(0).OperatorsLength())]
    weighted = (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D)
    convs = [op for op in ops if graph.OperatorCodes(op.OpcodeIndex()).DeprecatedBuiltinCode() in weighted]
    assert len(convs) == len(layers)
    for (layer_name, layer), op in zip(layers, convs, strict=True):
        (inputs, _, _), (expected, step, zero) = tensor(int(op.Inputs(0))), tensor(int(op.Outputs(0)))
        with torch.no_grad():
            if isinstance(layer, nn.Linear):
                got = layer(inputs.flatten(1))[:, :, None, None]
            else:
                parent = layer_name.rpartition(".")[0]
                got = modules[parent].bn(layer(inputs)) if layer_name.endswith(".conv") else layer(inputs)
        if details[int(op.Outputs(0))]["name"].endswith("Relu"):
            got = got.clamp(min=0)
        got = got.clamp(-zero * step, (255 - zero) * step)
        assert (got - expected).abs().max() <= 0.5 * step + 1e-4, f"{name} {layer_name}"


@needs_tflite
@needs_data
@pytest.mark.parametrize("name", list(GOOGLE))
def test_agreement_with_the_interpreter_on_twenty_images(name: str) -> None:
    """Top-1 agreement and accuracy on the first 20 labelled images: 19 and 17 agree (Small, Large minimalistic).

    With float activations, on all 300 of the sample 88.6% and 91.2% agree: the 8-bit graph's rounding,
    as every layer matches within half a quantization step (the test above); with the file's uint8
    grids (``activations="uint8"``, tests/test_tflite_grid.py) 93.5% and 98.7%.
    """
    pytest.importorskip("ai_edge_litert")
    bench = _benchmark()
    (path, _), (model, card) = GOOGLE[name], _google(name)
    interpreter = bench.Interpreter([path])
    sample = DATA / "imagenet-val-sample"
    with (sample / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))[:20]
    agree = ours_right = theirs_right = 0
    for row in rows:
        pixels = bench.preprocess(sample / "images" / row["file"], card.input_size)
        ours, theirs = int(_ours(model, card, pixels).argmax()), int(interpreter(pixels).argmax())
        label = int(row["label"]) + card.label_offset
        agree, ours_right, theirs_right = (
            agree + (ours == theirs),
            ours_right + (ours == label),
            theirs_right + (theirs == label),
        )
    assert agree >= 17 and abs(ours_right - theirs_right) <= 2, (agree, ours_right, theirs_right)


@needs_tflite
@needs_data
@pytest.mark.parametrize("name", list(GOOGLE))
def test_predict_names_the_parrot_a_macaw(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    parrot = DATA / "images" / "parrot.jpg"
    assert main(["predict", str(parrot), "--weights", str(GOOGLE[name][0]), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["topk"][0]["label"] == "macaw" and answer["topk"][0]["index"] == 89


# ---------------------------------------------------------------- graphs that are not a MobileNetV3


def _one_line_error(graph: object, match: str) -> None:
    with pytest.raises(WeightsError, match=match) as err:
        from_tflite([graph], "changed.tflite")
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not V1_FILE.is_file(), reason=f"{V1_FILE} not found")
def test_v1_file_is_refused_naming_its_first_operator() -> None:
    _one_line_error(
        parse(V1_FILE),
        r"not a MobileNetV3 \(weighted operator 0 \(CONV_2D 3x3/2 \(8, 3, 3, 3\)\) "
        r"does not fit stem\.conv \(16, 3, 3, 3\)",
    )
    assert load_weights(V1_FILE)[1].arch == "mobilenet_v1"  # and the loader still gives it to V1


@needs_tflite
def test_graph_missing_an_operator_names_the_first_it_could_not_place() -> None:
    graph = parse(SMALL)
    reduce = next(i for i, op in enumerate(graph.ops) if op.name == "CONV_2D" and op.weight.shape[0] == 8)
    _one_line_error(
        replace(graph, ops=graph.ops[:reduce] + graph.ops[reduce + 1 :]),  # the first SE's squeeze convolution
        r"weighted operator 2 \(CONV_2D 1x1/1 \(16, 8, 1, 1\)\) does not fit blocks\.0\.se\.reduce \(8, 16, 1, 1\)",
    )
    with pytest.raises(WeightsError, match=r"not a MobileNetV3, which comes as one TFLite file, not 2"):
        from_tflite([graph, graph], "two files")


@needs_tflite
def test_graph_whose_nonlinearity_disagrees_with_its_weights_is_refused() -> None:
    """Minimalistic weights with a HARD_SWISH, or Small's weights without its HARD_SWISH operators."""
    minimal = parse(LARGE_MINIMAL)
    _one_line_error(
        replace(minimal, ops=[minimal.ops[0], Op("HARD_SWISH"), *minimal.ops[1:]]),
        r"weights fit MobileNetV3 \{'size': 'large', 'minimal': True, 'width_mult': 1\.0\} but not its "
        r"nonlinearities: weighted operator 0 \(CONV_2D 3x3/2\) is followed by HARD_SWISH, our stem\.conv is not "
        r"followed by hard-swish",
    )
    small = parse(SMALL)
    _one_line_error(
        replace(small, ops=[op for op in small.ops if op.name != "HARD_SWISH"]),
        r"weighted operator 0 \(CONV_2D 3x3/2\) is not followed by HARD_SWISH, "
        r"our stem\.conv is followed by hard-swish",
    )
