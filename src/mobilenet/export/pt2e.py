"""PyTorch's own int8 path (PT2E) and ``.pt2`` files run by Inductor.

PT2E quantization (``torchao.quantization.pt2e``) works on the ``torch.export`` graph of the
folded inference model: a quantizer annotates it (``x86``: ``X86InductorQuantizer``, int8
per-channel symmetric weights, uint8 per-tensor activations, the pairing oneDNN's int8 kernels
take; ``xnnpack``: ExecuTorch's ``XNNPACKQuantizer``, int8 per-channel weights and int8
activations, for ``.pte`` files), observers collect activation ranges on calibration images, and
``convert_pt2e`` leaves a graph of quantize/dequantize ops around float operators. Inductor, with
its ``freezing`` pass, pattern-matches those into oneDNN int8 convolutions; without compilation
the graph runs (slowly) in float arithmetic that simulates int8.

A ``.pt2`` file is ``torch.export.save`` of that graph (float or int8) with the model card inside
(``extra_files["mobilenet.json"]``); :class:`Pt2Classifier` loads and compiles it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.card import ModelCard
from mobilenet.errors import ExportError, WeightsError, one_line
from mobilenet.export.fold import inference_model
from mobilenet.export.metadata import (
    ExportedClassifier,
    check_writable,
    export_card,
    exported_card,
    require,
    unexpressible,
    write_atomically,
)
from mobilenet.weights.formats import check_zip_size

QUANTIZERS = ("x86", "xnnpack")
"""PT2E quantizers by name: Inductor on x86 CPUs, and ExecuTorch's XNNPACK."""
META_FILE = "mobilenet.json"
PICKLED_PREFIXES = ("custom_obj_", "opaque_obj_")  # torch.export's archive entries that load with pickle
FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"  # torch.load's switch: weights_only=True whatever the caller asks
DEFAULT_MAX_BATCH = 1024
INSTALL = "torchao"


def capture(
    graph: nn.Module, resolution: int, max_batch: int = DEFAULT_MAX_BATCH, example_batch: int = 2
) -> torch.export.ExportedProgram:
    """``torch.export`` of an inference model (in eval mode) for ``(batch, C, resolution, resolution)`` inputs.

    The batch is dynamic, 1 to ``max_batch``; the example traced has ``example_batch`` images.
    A model ``torch.export`` cannot capture is an :class:`ExportError`.
    """
    in_chans = getattr(graph, "in_chans", 3)
    example = torch.zeros(example_batch, in_chans, resolution, resolution)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    try:
        return torch.export.export(graph, (example,), dynamic_shapes={"x": {0: batch}})
    except Exception as err:  # torch._dynamo's Unsupported, UserError, ... carry the reason
        raise unexpressible("torch.export", err) from err


def make_quantizer(name: str, per_channel: bool = True, reduce_range: bool = True) -> Any:
    """The PT2E quantizer ``name`` (one of :data:`QUANTIZERS`) with its static int8 configuration.

    ``reduce_range`` (x86 only) gives activations 7 bits, which avoids the saturation of oneDNN's
    uint8 x int8 multiply on CPUs without VNNI.
    """
    if name == "x86":
        x86 = require("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", INSTALL)
        if not per_channel:
            raise ExportError("the x86 quantizer quantizes weights per channel only")
        config = x86.get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
        return x86.X86InductorQuantizer().set_global(config)
    if name == "xnnpack":
        xnn = require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", "executorch")
        return xnn.XNNPACKQuantizer().set_global(xnn.get_symmetric_quantization_config(is_per_channel=per_channel))
    raise ExportError(f"unknown quantizer {name!r}: use one of {', '.join(QUANTIZERS)}")


def quantize_pt2e(
    graph: nn.Module,
    calib_images: torch.Tensor,
    quantizer: str = "x86",
    *,
    per_channel: bool = True,
    batch_size: int = 16,
    max_batch: int = DEFAULT_MAX_BATCH,
    reduce_range: bool = True,
) -> torch.fx.GraphModule:
    """Post-training static int8 quantization of the inference model ``graph``, calibrated on ``calib_images``.

    ``calib_images`` are preprocessed ``(N, C, R, R)`` images
    (:func:`~mobilenet.export.quantize.calibration_images`); the result takes batches of 1 to
    ``max_batch`` images of that size.
    """
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", INSTALL)
    if calib_images.ndim != 4 or len(calib_images) == 0:
        raise ExportError(f"calibration images must be (N, C, R, R), got {tuple(calib_images.shape)}")
    captured = capture(graph, calib_images.shape[-1], max_batch).module()
    prepared = pt2e.prepare_pt2e(captured, make_quantizer(quantizer, per_channel, reduce_range))
    with torch.no_grad():
        for chunk in calib_images.float().split(batch_size):
            prepared(chunk)
    return pt2e.convert_pt2e(prepared)


def compile_for_cpu(module: nn.Module) -> Any:
    """``module`` compiled by Inductor with weight freezing (constant folding; int8 pattern fusion).

    Freezing is an Inductor setting read while compiling, which happens at the first call of each
    new input shape: the returned function sets it around every call.
    """
    compiled = torch.compile(module)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch._inductor.config.patch(freezing=True):
            return compiled(x)

    return run


def export_pt2(
    model: nn.Module,
    path: str | Path,
    resolution: int | None = None,
    *,
    card: ModelCard | None = None,
    calib_images: torch.Tensor | None = None,
    reduce_range: bool = True,
) -> ModelCard:
    """Write ``model`` (folded) as a ``.pt2`` program, int8 (PT2E, x86) when ``calib_images`` are given.

    The file's card is stored inside it and returned; the file appears only when complete.
    """
    path = Path(path)
    info = export_card(model, card, resolution)
    check_writable(path)
    size = info.input_size
    graph: nn.Module = inference_model(model, size)
    if calib_images is not None:
        graph = quantize_pt2e(graph, calib_images, "x86", reduce_range=reduce_range)
        info = info.replace(
            quantization={
                "runtime": "pytorch-inductor",
                "format": "PT2E (X86InductorQuantizer)",
                "weights": "int8 per-channel",
                "activations": "uint8, 7-bit" if reduce_range else "uint8",
                "calibration": "histogram (activations), min/max (weights)",
                "calib_images": len(calib_images),
            }
        )
    save_pt2(graph, path, info)
    return info


def save_pt2(graph: nn.Module, path: Path, card: ModelCard) -> None:
    """``torch.export.save`` of ``graph`` (float or PT2E-converted) with ``card`` inside, written atomically."""
    program = capture(graph, card.input_size)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={META_FILE: json.dumps(card.to_dict())})
    write_atomically(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def read_pt2_card(path: str | Path) -> ModelCard:
    """The card :func:`export_pt2` stored in ``path``."""
    return _load(path)[1]


def _load(path: str | Path) -> tuple[torch.export.ExportedProgram, ModelCard]:
    with contextlib.suppress(ImportError):  # registers the quantize/dequantize ops an int8 program calls
        importlib.import_module("torchao.quantization.pt2e")
    _refuse_pickles(Path(path))
    extra = {META_FILE: ""}
    try:
        with _weights_only_loads():
            program = torch.export.load(str(path), extra_files=extra)
    except pickle.UnpicklingError as err:
        raise ExportError(f"{path}: refused: it holds pickled objects beyond tensors, which loading would run") from err
    except Exception as err:  # a zip that is not a program, or one written by an incompatible version
        raise ExportError(f"{path} is not a loadable .pt2 program: {one_line(err)}") from err
    if not extra[META_FILE]:
        raise ExportError(f"{path} carries no mobilenet metadata: export it with `mobilenet export`")
    return program, exported_card(extra[META_FILE], path)


def _refuse_pickles(path: Path) -> None:
    """Refuse a zip bomb, and an archive of pickled objects, which ``torch.export.load`` would unpickle (run)."""
    try:
        check_zip_size(path)
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (WeightsError, zipfile.BadZipFile, OSError) as err:
        raise ExportError(f"{path} is not a loadable .pt2 program: {one_line(err)}") from err
    pickled = [name for name in names if Path(name).name.startswith(PICKLED_PREFIXES)]
    if pickled:
        raise ExportError(f"{path}: refused: it holds pickled objects ({pickled[0]}), which loading would run")


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` inside is ``weights_only`` (``torch.export.load`` asks for full unpickling of
    tensor subclasses and falls back to it for its sample inputs), so no code in a file runs."""
    before = os.environ.get(FORCE_WEIGHTS_ONLY)
    os.environ[FORCE_WEIGHTS_ONLY] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[FORCE_WEIGHTS_ONLY]
        else:
            os.environ[FORCE_WEIGHTS_ONLY] = before


class Pt2Classifier(ExportedClassifier):
    """A ``.pt2`` program compiled by Inductor with freezing (int8 ones become oneDNN int8 kernels)."""

    def __init__(self, path: str | Path) -> None:
        program, card = _load(path)
        super().__init__(card)
        self.program = compile_for_cpu(program.module())

    def run(self, images: torch.Tensor) -> torch.Tensor:
        return self.program(images)
