"""MobileNetV2's published weights: torchvision, timm, Keras and Google's TFLite against their own libraries.

timm, torchvision and the TFLite interpreter are test dependencies (the ``dev`` extra); tests that
need Google's files or the images under ../shared skip when that folder is absent.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import mobilenet
from mobilenet import get_model_info
from mobilenet.cli import main
from mobilenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mobilenet.errors import WeightsError
from mobilenet.models.mobilenet_v2 import TABLE2, MobileNetV2
from mobilenet.weights import hub, imagenet_classes, load_weights
from mobilenet.weights.converters.mobilenet_v2 import from_tflite
from mobilenet.weights.tflite import Graph, Op, parse
from reference import randomize_bn

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")  # as conftest's shared_data
TFLITE = DATA.parent / "weights" / "tflite"
V2_FILE = TFLITE / "mobilenet_v2_1.0_224_quant.tflite"
V1_FILE = TFLITE / "mobilenet_v1_0.25_128_quant.tflite"
V3_FILE = TFLITE / "v3-small_224_1.0_uint8.tflite"
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning"),
]
needs_v2 = pytest.mark.skipif(not V2_FILE.is_file(), reason=f"{V2_FILE} not found")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"test images not found at {DATA}")


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def _max_diff(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.eval()(x) - reference.eval()(x)).abs().max())


# ---------------------------------------------------------------- torchvision and timm


@pytest.mark.parametrize(("width", "save_as"), [(1.0, ".pth"), (0.5, ".safetensors")])
def test_torchvision_state_dict_gives_torchvisions_logits(tmp_path: Path, width: float, save_as: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.mobilenet_v2(width_mult=width).eval()
    randomize_bn(reference, torch.Generator().manual_seed(0))
    model, card = load_weights(_save(reference.state_dict(), tmp_path / f"mobilenet_v2{save_as}"))
    assert (card.format, card.arch, card.kwargs["width_mult"], card.kwargs["padding"]) == (
        "torchvision",
        "mobilenet_v2",
        width,
        "torch",
    )
    assert (card.mean, card.std, card.input_size, card.label_offset) == (IMAGENET_MEAN, IMAGENET_STD, 224, 0)
    assert card.classes == tuple(imagenet_classes())
    for size in (224, 97):  # an odd size too: symmetric padding, not TensorFlow's
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        assert _max_diff(model, reference, x) <= 1e-5


@pytest.mark.parametrize(("variant", "width", "save_as"), [("mobilenetv2_100", 1.0, ".safetensors"),
                                                           ("mobilenetv2_140", 1.4, ".pth"),
                                                           ("mobilenetv2_050", 0.5, ".pth")])  # fmt: skip
def test_timm_state_dict_gives_timms_logits(tmp_path: Path, variant: str, width: float, save_as: str) -> None:
    timm = pytest.importorskip("timm")
    reference = timm.create_model(variant, pretrained=False).eval()
    randomize_bn(reference, torch.Generator().manual_seed(1))
    model, card = load_weights(_save(reference.state_dict(), tmp_path / f"{variant}{save_as}"))
    assert (card.format, card.kwargs["width_mult"], card.kwargs["padding"], card.kwargs["num_classes"]) == (
        "timm",
        width,
        "torch",
        1000,
    )
    published = get_model_info(f"mobilenet_v2_{round(width * 100):03d}_224")
    assert card.kwargs["width_mult"] == published.kwargs["width_mult"]
    assert card.mean == IMAGENET_MEAN and card.std == IMAGENET_STD
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(2))
    assert _max_diff(model, reference, x) <= 1e-5


def test_timm_state_dict_without_classifier_or_with_a_key_missing(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    reference = timm.create_model("mobilenetv2_100", pretrained=False).eval()
    body = {k: v for k, v in reference.state_dict().items() if not k.startswith("classifier.")}
    model, card = load_weights(_save(body, tmp_path / "body.pth"))
    assert card.kwargs["num_classes"] == 0 and card.classes is None
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():  # pooled features
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        assert (model.eval()(x) - expected).abs().max() <= 1e-5
    del body["blocks.3.2.conv_pwl.weight"]
    with pytest.raises(WeightsError, match=r"not a MobileNetV2 in timm naming: .*missing \(first: blocks.3.2.conv_pwl"):
        load_weights(_save(body, tmp_path / "broken.pth"))


def test_our_own_state_dict_loads_through_mobilenet_load(tmp_path: Path) -> None:
    saved = MobileNetV2(width_mult=0.75, num_classes=7).eval()
    randomize_bn(saved, torch.Generator().manual_seed(3))
    model, card = mobilenet.load(_save(saved.state_dict(), tmp_path / "ours.pth"))
    assert not model.training and (card.arch, card.kwargs["width_mult"], card.kwargs["num_classes"]) == (
        "mobilenet_v2",
        0.75,
        7,
    )
    assert card.format == "state_dict" and card.classes is None
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(model(x), saved(x))


# ---------------------------------------------------------------- Keras .h5


def _keras_units(num_blocks: int) -> list[tuple[str, str, str]]:
    """(conv layer, its BN layer, kind) in forward order, named as keras/src/applications/mobilenet_v2.py names them."""
    units = [("Conv1", "bn_Conv1", "conv")]
    for i in range(num_blocks):
        prefix = "expanded_conv_" if i == 0 else f"block_{i}_"
        kinds = ("depthwise", "project") if i == 0 else ("expand", "depthwise", "project")
        units += [(f"{prefix}{kind}", f"{prefix}{kind}_BN", kind) for kind in kinds]
    return [*units, ("Conv_1", "Conv_1_bn", "conv")]


def _keras_layers(reference: torch.nn.Module, classes: bool, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Random weights in Keras's names and layouts (HWIO, HWC1, Dense (in, out)) with the shapes of ``reference``."""
    rng = np.random.default_rng(seed)
    convs = [m for m in reference.modules() if isinstance(m, torch.nn.Conv2d)]
    layers = {}
    for (conv, bn, kind), module in zip(_keras_units(sum(s.repeats for s in TABLE2)), convs, strict=True):
        out_chs, in_chs, k, _ = module.weight.shape
        shape = (k, k, out_chs, 1) if kind == "depthwise" else (k, k, in_chs, out_chs)
        # Unit-gain kernels and variances near 1: 52 layers of a linear-bottleneck network amplify any larger gain
        # (and with it float32 rounding) past the 1e-4 tolerance; a missed epsilon (1e-3) still shows.
        kernel = rng.normal(0, np.sqrt(1 / (k * k * (1 if kind == "depthwise" else in_chs))), shape)
        layers[conv] = {"depthwise_kernel" if kind == "depthwise" else "kernel": kernel.astype(np.float32)}
        stats = (rng.uniform(0.5, 1.5, out_chs), rng.normal(0, 0.1, out_chs), rng.normal(0, 0.1, out_chs),
                 rng.uniform(0.3, 1.5, out_chs))  # fmt: skip
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        layers[bn] = {name: value.astype(np.float32) for name, value in zip(names, stats, strict=True)}
    if classes:
        features = convs[-1].out_channels
        layers["predictions"] = {
            "kernel": rng.normal(0, 0.05, (features, 1000)).astype(np.float32),
            "bias": rng.normal(0, 0.1, 1000).astype(np.float32),
        }
    return layers


def _write_h5(path: Path, layers: dict[str, dict[str, np.ndarray]], whole_model: bool) -> None:
    """Keras 2's HDF5 layout: per layer a group, ``weight_names`` and ``<layer>/<param>:0`` datasets."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        root.attrs["layer_names"] = [name.encode() for name in ["input_1", *layers, "out_relu"]]
        root.create_group("input_1").attrs["weight_names"] = []
        for name, params in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{p}:0".encode() for p in params]
            for param, value in params.items():
                group.create_dataset(f"{name}/{param}:0", data=value)


def _into_timm(reference: torch.nn.Module, layers: dict[str, dict[str, np.ndarray]]) -> None:
    """Keras arrays into timm's modules, which are registered in forward order like Keras's layers."""
    convs = [m for m in reference.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    units = _keras_units(sum(s.repeats for s in TABLE2))
    with torch.no_grad():
        for (conv, bn, kind), conv_module, bn_module in zip(units, convs, bns, strict=True):
            kernel = torch.from_numpy(next(iter(layers[conv].values())))
            conv_module.weight.copy_(kernel.permute(2, 3, 0, 1) if kind == "depthwise" else kernel.permute(3, 2, 0, 1))
            values = layers[bn]
            bn_module.weight.copy_(torch.from_numpy(values["gamma"]))
            bn_module.bias.copy_(torch.from_numpy(values["beta"]))
            bn_module.running_mean.copy_(torch.from_numpy(values["moving_mean"]))
            bn_module.running_var.copy_(torch.from_numpy(values["moving_variance"]))
        if "predictions" in layers:
            reference.classifier.weight.copy_(torch.from_numpy(layers["predictions"]["kernel"].T))
            reference.classifier.bias.copy_(torch.from_numpy(layers["predictions"]["bias"]))


@pytest.mark.parametrize(("alpha", "size", "top", "whole_model"), [(0.35, 96, True, False), (1.4, 128, False, True)])
def test_keras_h5_lands_where_keras_names_say_and_gives_the_same_logits_as_timm(
    tmp_path: Path, alpha: float, size: int, top: bool, whole_model: bool
) -> None:
    """Random Keras-layout arrays: our tensors are Keras's, transposed; our logits are timm's with Keras's padding.

    timm's MobileNetV2 with ``pad_type="same"`` (TensorFlow SAME, which Keras's ``correct_pad`` +
    ``valid`` equals on any size) and BN epsilon 1e-3, loaded with the same arrays in timm's module
    order, is the reference.
    """
    timm = pytest.importorskip("timm")
    name = {0.35: "mobilenetv2_035", 1.4: "mobilenetv2_140"}[alpha]
    reference = timm.create_model(name, pretrained=False, pad_type="same", bn_eps=1e-3).eval()
    layers = _keras_layers(reference, top, seed=5)
    _into_timm(reference, layers)
    filename = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}{'' if top else '_no_top'}.h5"
    _write_h5(tmp_path / filename, layers, whole_model)
    model, card = load_weights(tmp_path / filename)
    assert (card.format, card.kwargs["width_mult"], card.kwargs["padding"]) == ("keras", alpha, "tf_same")
    assert card.kwargs["num_classes"] == (1000 if top else 0) and card.input_size == size  # from the file name
    assert card.mean == card.std == (0.5,) * 3
    state = model.state_dict()
    dw = layers["expanded_conv_depthwise"]["depthwise_kernel"]  # HWC1 -> C1HW
    assert torch.equal(state["blocks.0.dw.conv.weight"], torch.from_numpy(dw.transpose(2, 3, 0, 1)))
    expand = layers["block_5_expand"]["kernel"]  # HWIO -> OIHW
    assert torch.equal(state["blocks.5.expand.conv.weight"], torch.from_numpy(expand.transpose(3, 2, 0, 1)))
    assert torch.equal(state["head.conv.weight"], torch.from_numpy(layers["Conv_1"]["kernel"].transpose(3, 2, 0, 1)))
    bn = layers["block_16_project_BN"]
    assert torch.equal(state["blocks.16.project.bn.running_mean"], torch.from_numpy(bn["moving_mean"]))
    var = torch.from_numpy(bn["moving_variance"]) + (1e-3 - 1e-5)  # Keras's epsilon folded into ours
    assert torch.allclose(state["blocks.16.project.bn.running_var"], var, rtol=0, atol=1e-7)
    assert torch.equal(state["stem.bn.weight"], torch.from_numpy(layers["bn_Conv1"]["gamma"]))
    if top:
        assert torch.equal(state["classifier.weight"], torch.from_numpy(layers["predictions"]["kernel"].T))
    for edge in (size, size + 1):  # odd sizes too: Keras's correct_pad is TensorFlow SAME there as well
        x = torch.randn(2, 3, edge, edge, generator=torch.Generator().manual_seed(edge))
        with torch.no_grad():
            expected = reference(x) if top else reference.forward_head(reference.forward_features(x), pre_logits=True)
            assert (model.eval()(x) - expected).abs().max() <= 1e-4


# ---------------------------------------------------------------- Google's TFLite model


@cache
def _converted() -> tuple[torch.nn.Module, mobilenet.ModelCard]:
    model, card = load_weights(V2_FILE)
    return model.eval(), card


@cache
def _benchmark() -> ModuleType:
    """benchmarks/tflite_agreement.py, whose preprocessing and interpreter wrapper the tests reuse."""
    name = "tflite_agreement"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "tflite_agreement.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


def _pixels(path: Path, size: int) -> tuple[np.ndarray, torch.Tensor]:
    """uint8 pixels for the interpreter and the float input ours sees, ``(q - 128) / 128``."""
    pixels = _benchmark().preprocess(path, size)
    return pixels, (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() - 128) / 128


@needs_v2
def test_google_tflite_converts_with_its_card() -> None:
    model, card = _converted()
    published = get_model_info("mobilenet_v2_100_224")
    assert (card.arch, card.format, card.kwargs["padding"], card.kwargs["num_classes"]) == (
        "mobilenet_v2",
        "tflite",
        "tf_same",
        1001,
    )
    assert card.kwargs["width_mult"] == published.kwargs["width_mult"] and card.input_size == published.input_size
    assert card.mean == card.std == (128 / 255,) * 3  # (q - 128) / 128
    assert card.label_offset == 1 and card.classes == ("background", *imagenet_classes())
    bn = model.blocks[4].project.bn
    x = torch.randn(2, bn.num_features, 5, 5)
    with torch.no_grad():
        assert torch.equal(bn(x), x + bn.bias[:, None, None])  # a folded BN: exactly a bias


def _tflite_steps(path: Path) -> list[tuple[int, int]]:
    """(input tensor, output tensor) of each convolution and pool, in execution order."""
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    steps = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if tflite.BUILTIN_OPCODE2NAME[model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()] in (
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "AVERAGE_POOL_2D",
        ):
            steps.append((int(op.Inputs(0)), int(op.Outputs(0))))
    return steps


@needs_v2
@needs_data
def test_every_converted_layer_matches_the_interpreter_within_one_quantization_step() -> None:
    """Each of our units, fed the interpreter's own (dequantized) input, gives its output to 8-bit precision."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    model, _ = _converted()
    modules = [model.stem]
    for block in model.blocks:
        modules += [unit for unit in (block.expand, block.dw, block.project) if not isinstance(unit, torch.nn.Identity)]
    modules += [model.head, model.global_pool, lambda x: model.classifier(x.flatten(1))[:, :, None, None]]
    interpreter = litert.Interpreter(model_path=str(V2_FILE), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    pixels, _ = _pixels(DATA / "images" / "owl.jpg", 224)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def tensor(index: int) -> torch.Tensor:
        scale, zero = details[index]["quantization"]
        value = (interpreter.get_tensor(index).astype(np.float32) - zero) * scale
        return torch.from_numpy(value).permute(0, 3, 1, 2)

    def representable(index: int) -> tuple[float, float, float]:
        """The quantization step and the range an 8-bit tensor saturates to (a projection has no ReLU6 to bound it)."""
        (scale, zero), limits = details[index]["quantization"], np.iinfo(details[index]["dtype"])
        return scale, (limits.min - zero) * scale, (limits.max - zero) * scale

    steps = _tflite_steps(V2_FILE)
    assert len(steps) == len(modules) == 1 + 2 + 16 * 3 + 1 + 2
    for index, ((step_in, step_out), module) in enumerate(zip(steps, modules, strict=True)):
        step, low, high = representable(step_out)
        with torch.no_grad():
            got = module(tensor(step_in)).clamp(low, high)
        assert (got - tensor(step_out)).abs().max() <= step, f"step {index}"


@needs_v2
@needs_data
def test_agrees_with_the_interpreter_on_20_images() -> None:
    pytest.importorskip("ai_edge_litert")
    model, card = _converted()
    bench = _benchmark()
    interpreter = bench.Interpreter([V2_FILE])
    images = [path for path, label in bench.image_list(DATA, limit=20) if label is not None]
    agree = 0
    for path in images:
        pixels, x = _pixels(path, card.input_size)
        with torch.no_grad():
            agree += int(model(x).argmax()) == int(interpreter(pixels).argmax())
    assert len(images) == 20 and agree >= 19  # 98.7% on all 300 (see the report's command)


@needs_v2
@needs_data
def test_predict_names_the_parrot_a_macaw(capsys: pytest.CaptureFixture[str]) -> None:
    parrot = DATA / "images" / "parrot.jpg"
    assert main(["predict", str(parrot), "--weights", str(V2_FILE), "--topk", "3", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith(f"{parrot}: macaw ")


# ---------------------------------------------------------------- bad input


def _graph(path: Path, ops: list[Op] | None = None) -> Graph:
    graph = parse(path)
    return graph if ops is None else dataclasses.replace(graph, ops=ops)


@needs_v2
def test_other_architectures_tflite_files_say_why_they_are_not_a_v2() -> None:
    reasons = {
        V1_FILE: r"no ADD operators, where a MobileNetV2 adds the input back in 10 of its 17",
        V3_FILE: r"it has HARD_SWISH and MUL operators \(hard-swish and squeeze-and-excite",
    }
    for path, reason in reasons.items():
        if not path.is_file():
            continue
        with pytest.raises(WeightsError, match=f"{path.name}: not a MobileNetV2: {reason}") as err:
            from_tflite([_graph(path)], path.name)
        assert "\n" not in str(err.value)


@needs_v2
def test_graph_with_an_operator_removed_names_the_first_it_could_not_place() -> None:
    ops = _graph(V2_FILE).ops
    weighted = [i for i, op in enumerate(ops) if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    removed = weighted[12]  # blocks.4.expand, a 1x1 CONV_2D 32 -> 192
    assert ops[removed].describe() == "CONV_2D 1x1/1" and ops[removed].weight.shape == (192, 1, 1, 32)
    with pytest.raises(
        WeightsError,
        match=r"cut: not a MobileNetV2 \(weighted operator 12 \(DEPTHWISE_CONV_2D 3x3/1 \(192, 1, 3, 3\)\) "
        r"does not fit blocks.4.expand.conv \(192, 32, 1, 1\), closest configuration \{'width_mult': 1.0\}\)",
    ) as err:
        from_tflite([_graph(V2_FILE, ops[:removed] + ops[removed + 1 :])], "cut")
    assert "\n" not in str(err.value)
    no_add = [op for i, op in enumerate(ops) if i != next(j for j, o in enumerate(ops) if o.name == "ADD")]
    with pytest.raises(
        WeightsError,
        match=r"fit width 1.0, but the graph has 9 ADD operators where a MobileNetV2 adds the input back in 10 blocks",
    ):
        from_tflite([_graph(V2_FILE, no_add)], "no-add")
    stride2 = next(i for i, op in enumerate(ops) if op.name == "DEPTHWISE_CONV_2D" and op.stride == 2)
    padded = [*ops[:stride2], Op("PAD"), dataclasses.replace(ops[stride2], same_padding=False), *ops[stride2 + 1 :]]
    with pytest.raises(WeightsError, match=r"weighted operator 4 \(DEPTHWISE_CONV_2D 3x3/2\) has VALID padding after"):
        from_tflite([_graph(V2_FILE, padded)], "keras-made")


@needs_v2
def test_tflite_asked_for_another_width_is_refused() -> None:
    with pytest.raises(WeightsError, match=r"width_mult=1.0, not the width_mult=0.5 asked for"):
        load_weights(V2_FILE, width_mult=0.5)


def test_torchvision_tag_offline_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object) -> Path:
        raise OSError("Name or service not known")

    monkeypatch.setattr(hub, "_download", offline)
    for tag, url in (
        ("torchvision", "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth"),
        ("torchvision:mobilenet_v2.IMAGENET1K_V1", "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"),
        ("torchvision:mobilenet_v3_small", "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth"),
    ):
        with pytest.raises(WeightsError, match=f"cannot download the weights for '{tag}'") as err:
            load_weights(tag)
        assert f"get {url} and pass the file's path instead of '{tag}'" in str(err.value)
    with pytest.raises(WeightsError, match=r"unknown torchvision variant 'resnet50'"):
        load_weights("torchvision:resnet50")


KERAS_ROOT = "https://storage.googleapis.com/tensorflow/keras-applications/"
TIMM_ROOT = "https://huggingface.co/timm/"


@pytest.mark.parametrize(
    ("tag", "url"),
    [
        ("keras:v2_1.4_224", KERAS_ROOT + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_224.h5"),
        (
            "keras:v2_0.35_96_no_top",
            KERAS_ROOT + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5",
        ),
        ("keras:v3_large_0.75", KERAS_ROOT + "mobilenet_v3/weights_mobilenet_v3_large_224_0.75_float.h5"),
        (
            "keras:v3_small_minimalistic_1.0_no_top",
            KERAS_ROOT + "mobilenet_v3/weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5",
        ),
        ("keras:0.75_192", KERAS_ROOT + "mobilenet/mobilenet_7_5_192_tf.h5"),
        ("timm:mobilenetv3_large_100", TIMM_ROOT + "mobilenetv3_large_100.ra_in1k/"),
        ("timm:mobilenetv3_small_100", TIMM_ROOT + "mobilenetv3_small_100.lamb_in1k/"),
        ("timm:tf_mobilenetv3_large_minimal_100", TIMM_ROOT + "tf_mobilenetv3_large_minimal_100.in1k/"),
        ("timm:mobilenetv2_140", TIMM_ROOT + "mobilenetv2_140.ra_in1k/"),
        ("timm:mobilenetv3_large_100.miil_in21k_ft_in1k", TIMM_ROOT + "mobilenetv3_large_100.miil_in21k_ft_in1k/"),
    ],
)
def test_v2_v3_tags_offline_name_the_file(monkeypatch: pytest.MonkeyPatch, tag: str, url: str) -> None:
    def offline(*args: object) -> Path:
        raise OSError("Name or service not known")

    for name in ("_hub_file", "_download"):
        monkeypatch.setattr(hub, name, offline)
    with pytest.raises(WeightsError, match=f"cannot download the weights for '{tag}'") as err:
        load_weights(tag)
    assert f"get {url}" in str(err.value)


@pytest.mark.parametrize(
    ("tag", "match"),
    [
        ("keras:v2_1.4_300", "unknown Keras variant 'v2_1.4_300'"),
        ("keras:v3_large_minimalistic_0.75", "minimalistic 1.0 only"),
        ("timm:resnet50", "no default timm tag for 'resnet50'"),
    ],
)
def test_unknown_tag_variants_are_one_line_errors(tag: str, match: str) -> None:
    with pytest.raises(WeightsError, match=match) as err:
        load_weights(tag)
    assert "\n" not in str(err.value)
