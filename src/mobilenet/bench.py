"""Inference speed of our models and their peers on every backend, against a measured floor.

Each (model, backend) pair is built once: ``eager`` and ``channels_last`` run the PyTorch module as
its library builds it; ``compile`` is Inductor with weight freezing; ``onnxruntime``, ``openvino``
and ``executorch`` run exported files (ours exported from the BN-folded inference graph, peers
through the same exporters; OpenVINO converts the ONNX file ONNX Runtime runs); the int8 backends
(``onnxruntime-int8``, ``openvino-int8``, ``pt2e-int8``, ``executorch-int8``) quantize with 32
noise images as calibration (the speed of an int8 kernel does not depend on its scales; accuracy
is measured with real calibration data by ``mobilenet eval --exported``). Every runtime runs with
the same thread count (default: the physical cores this process may use). Each batch size is
timed after a warm-up: the median, p90, min and max of the timed runs, and images per second from
the median.

The floor is what the model's mult-adds would take at the machine's matrix-multiply peak: the best
square GEMM (fp32, or int8 with int32 accumulation) that any runtime of the run reaches with the
same threads (:func:`gemm_peaks`: oneDNN through PyTorch, ONNX Runtime's MLAS, OpenVINO), taken as
the fastest of its timed calls, against rows' medians; ``floor_pct`` is floor / median, so no row
can pass 100% unless the peak was measured wrong. :func:`theoretical_peaks` states what the CPU's
vector units could do at most (from ``lscpu``). :func:`pick_backend` is the fastest backend of a
precision for one model on this machine, measured once and cached.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenet.analysis import profile_module
from mobilenet.constants import DEFAULT_INPUT_SIZE
from mobilenet.data.cache import cache_dir
from mobilenet.errors import ConfigError, ExportError
from mobilenet.export import compile_for_cpu, inference_model, quantize_pt2e
from mobilenet.export.executorch_export import load_method, lower_xnnpack, pte_program
from mobilenet.export.metadata import require
from mobilenet.export.onnx_export import DEFAULT_OPSET, onnx_proto, ort_runner
from mobilenet.export.openvino_export import INSTALL as OPENVINO_INSTALL
from mobilenet.export.openvino_export import ir_from_onnx, ov_runner, quantize_ir
from mobilenet.export.pt2e import make_quantizer
from mobilenet.export.quantize import quantize_onnx_file
from mobilenet.fileio import atomic_write, atomic_write_text
from mobilenet.load import load
from mobilenet.models import create_model, get_model_info, list_models

BACKENDS = (
    "eager",
    "channels_last",
    "compile",
    "onnxruntime",
    "onnxruntime-int8",
    "openvino",
    "openvino-int8",
    "pt2e-int8",
    "executorch",
    "executorch-int8",
)
INT8_BACKENDS = ("onnxruntime-int8", "openvino-int8", "pt2e-int8", "executorch-int8")
EXPORT_FORMATS = {
    "compile": "pt2",
    "onnxruntime": "onnx",
    "onnxruntime-int8": "onnx",
    "openvino": "openvino",
    "openvino-int8": "openvino",
    "pt2e-int8": "pt2",
    "executorch": "executorch",
    "executorch-int8": "executorch",
}
"""The ``mobilenet export --format`` whose file each backend runs (the eager backends have none)."""
PRECISIONS = ("fp32", "int8")
PEER_LIBRARIES = ("timm", "torchvision")
PEERS = ("timm:mobilenetv1_100", "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_large")
PEER_BUILDS = {
    "mobilenet_v1_100_224": "timm:mobilenetv1_100",
    "mobilenet_v2_100_224": "torchvision:mobilenet_v2",
    "mobilenet_v3_large": "torchvision:mobilenet_v3_large",
    "mobilenet_v3_small": "torchvision:mobilenet_v3_small",
}
"""Family member -> the same architecture from the libraries users compare with (the versus rows)."""
DEFAULT_MODELS = ("mobilenet_v1", *PEERS)
CALIB_IMAGES = 32

Run = Callable[[torch.Tensor], Any]


@dataclass
class Subject:
    """A model to time: its float module, its deployable graph (ours: BN folded) and its cost."""

    name: str
    module: nn.Module
    graph: nn.Module
    mult_adds: int
    in_chans: int
    resolution: int


@dataclass
class Row:
    """One (model, backend, batch) measurement."""

    model: str
    backend: str
    precision: str
    batch: int
    threads: int
    mult_adds: int
    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    images_per_s: float
    floor_ms: float | None
    floor_pct: float | None


@dataclass
class Skip:
    """A (model, backend) pair that could not run here, and why."""

    model: str
    backend: str
    reason: str


def check_backends(names: Iterable[str]) -> list[str]:
    """``names`` if each is a backend; :class:`ConfigError` naming the unknown ones otherwise."""
    names = list(names)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend(s) {', '.join(unknown)}: use {', '.join(BACKENDS)}")
    return names


def check_models(names: Iterable[str]) -> list[str]:
    """``names`` if each is a registry name or a ``timm:`` / ``torchvision:`` peer; an error otherwise."""
    names = list(names)
    for name in names:
        if ":" in name:
            if name.split(":", 1)[0] not in PEER_LIBRARIES:
                raise ConfigError(
                    f"unknown model library in {name!r}: use {', '.join(PEER_LIBRARIES)} or a registry name"
                )
        else:
            get_model_info(name)  # UnknownModelError with the close matches
    if not names:
        raise ConfigError("--models names no model")
    return names


def load_subject(name: str, resolution: int) -> Subject:
    """Ours by registry name, or a peer ``timm:NAME`` / ``torchvision:NAME``, randomly initialised, in eval mode."""
    if name.startswith("timm:"):
        timm = require("timm", "timm")
        return subject_of(name, timm.create_model(name.split(":", 1)[1], pretrained=False), resolution)
    if name.startswith("torchvision:"):
        import torchvision

        return subject_of(name, torchvision.models.get_model(name.split(":", 1)[1], weights=None), resolution)
    return subject_of(name, create_model(name), resolution)


def subject_of(name: str, module: nn.Module, resolution: int) -> Subject:
    """A module to time under ``name``: ours (it has an ``arch``) with its BN-folded graph, a peer as it is."""
    module.eval()
    graph = inference_model(module, resolution) if hasattr(module, "arch") else module
    in_chans = getattr(module, "in_chans", 3)
    cost = profile_module(module, (in_chans, resolution, resolution), name).mult_adds
    return Subject(name, module, graph.eval(), cost, in_chans, resolution)


def build(
    backend: str, subject: Subject, resolution: int, calib: torch.Tensor, work: Path, threads: int, spin: bool = True
) -> Run:
    """A function that runs ``subject`` on a batch with ``backend`` (and converts its input as the backend wants).

    ``spin=False``: ONNX Runtime's threads wait without spinning (:func:`~mobilenet.export.onnx_export.ort_runner`).
    """
    if backend == "eager":
        return _no_grad(subject.module)
    if backend == "channels_last":
        module = copy.deepcopy(subject.module).to(memory_format=torch.channels_last)
        run = _no_grad(module)
        return lambda x: run(x.contiguous(memory_format=torch.channels_last))
    if backend == "compile":
        return compile_for_cpu(subject.module)
    if backend == "pt2e-int8":
        return compile_for_cpu(quantize_pt2e(subject.graph, calib, "x86"))
    if backend in ("onnxruntime", "onnxruntime-int8", "openvino", "openvino-int8"):
        float_path = work / "float.onnx"  # one graph for both runtimes, exported once per model
        if not float_path.exists():
            float_path.write_bytes(onnx_proto(subject.graph, resolution, DEFAULT_OPSET).SerializeToString())
        if backend == "openvino":
            return ov_runner(ir_from_onnx(float_path), threads)
        if backend == "openvino-int8":
            return ov_runner(quantize_ir(ir_from_onnx(float_path), calib, max_drop=None)[0], threads)
        if backend == "onnxruntime":
            return ort_runner(float_path, threads, spin)
        path = work / f"{backend}.onnx"
        if not path.exists():
            quantize_onnx_file(float_path, path, calib, reduce_range=True)
        return ort_runner(path, threads, spin)
    if backend in ("executorch", "executorch-int8"):
        path = work / f"{backend}.pte"
        int8 = calib if backend == "executorch-int8" else None
        path.write_bytes(pte_program(subject.graph, resolution, max_batch=64, calib_images=int8))
        method = load_method(path)
        return lambda x: method.execute([x])
    raise ConfigError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")


def _no_grad(module: nn.Module) -> Run:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return run


def time_runs(run: Run, x: torch.Tensor, warmup: int, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``run(x)``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return times


def calibration_batch(subject: Subject) -> torch.Tensor:
    """The int8 backends' calibration images: uniform noise over a normalised input's range."""
    return torch.rand(CALIB_IMAGES, subject.in_chans, subject.resolution, subject.resolution) * 4 - 2


TURN_BLOCK = 10
"""Timed calls of one run per turn where runs of different runtimes are called in turn."""
TURN_SETTLE = 3
"""Untimed calls that start each such turn, while the previous runtime's threads stop spinning and the
model's weights come back into cache."""


def time_interleaved(
    runs: Sequence[Run], x: torch.Tensor, warmup: int, calls: int, block: int = 1, settle: int = 0
) -> list[list[float]]:
    """Seconds of each of ``calls`` calls of every ``run(x)``, the runs called in turn (the order reversed
    every other round), after ``warmup`` untimed rounds: a machine whose speed drifts (other jobs,
    clocks) slows each run alike, so their ratio holds where runs timed minutes apart do not.

    Each turn is ``settle`` untimed calls and then ``block`` timed ones. Runs of different runtimes
    need both (:data:`TURN_BLOCK`, :data:`TURN_SETTLE`): a runtime's thread pool keeps spinning for a
    while after its call (ONNX Runtime's does by default) and takes the cores from the next runtime's
    first calls, and the next model's weights start out of cache; one call a turn then times that,
    not the model (docs/results/interleaving.md).
    """
    for _ in range(warmup):
        for run in runs:
            run(x)
    times: list[list[float]] = [[] for _ in runs]
    for round_ in range(-(-calls // block)):
        order = range(len(runs)) if round_ % 2 == 0 else reversed(range(len(runs)))
        for index in order:
            for _ in range(settle):
                runs[index](x)
            for _ in range(min(block, calls - len(times[index]))):
                start = time.perf_counter()
                runs[index](x)
                times[index].append(time.perf_counter() - start)
    return times


GEMM_SIZES = {"fp32": (256, 512, 1024), "int8": (512, 1024, 2048)}
"""Square GEMM sizes timed for the peaks (the best counts; int8 tile units need large ones to amortise
quantizing the input)."""


def gemm_peaks(threads: int, repeats: int = 6) -> dict[str, dict[str, float]]:
    """``{"fp32": {implementation: FLOP/s}, "int8": {...}}``: each runtime's best square GEMM with ``threads``.

    fp32: ``torch.mm`` (oneDNN / MKL), ONNX Runtime's ``MatMul`` (MLAS), OpenVINO's fully
    connected layer (oneDNN, fp32 inference precision) and ExecuTorch's (XNNPACK). int8 (u8/s8 x s8,
    int32 sums): PyTorch's ``_int_mm`` (oneDNN), ONNX Runtime's ``MatMulInteger`` (MLAS, the kernels
    of its int8 convolutions), OpenVINO's int8 fully connected layer (VNNI or AMX where the CPU has
    them) and XNNPACK's (PT2E-quantized, as ``executorch-int8``).
    Each rate is the fastest of ``repeats`` calls at the best of :data:`GEMM_SIZES`; a runtime that
    is not installed is left out.
    """
    peaks: dict[str, dict[str, float]] = {"fp32": {}, "int8": {}}
    for precision, name, make in GEMMS:
        try:
            rates = []
            for size in GEMM_SIZES[precision]:
                run, x = make(size, threads)
                rates.append(2 * size**3 / min(time_runs(run, x, 2, repeats)))
        except ExportError:  # not installed
            continue
        peaks[precision][name] = max(rates)
    return peaks


def _torch_gemm(int8: bool) -> Callable[[int, int], tuple[Run, torch.Tensor]]:
    def make(size: int, threads: int) -> tuple[Run, torch.Tensor]:
        if int8:
            a = torch.randint(-128, 128, (size, size), dtype=torch.int8)
            b = torch.randint(-128, 128, (size, size), dtype=torch.int8)
            return lambda x: torch._int_mm(x, b), a
        b = torch.randn(size, size)
        return lambda x: torch.mm(x, b), torch.randn(size, size)

    return make


def _onnxruntime_gemm(int8: bool) -> Callable[[int, int], tuple[Run, torch.Tensor]]:
    def make(size: int, threads: int) -> tuple[Run, torch.Tensor]:
        onnx = require("onnx")
        require("onnxruntime")
        helper, tensor = onnx.helper, onnx.TensorProto
        weight = torch.randint(-127, 128, (size, size), dtype=torch.int8) if int8 else torch.randn(size, size)
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger" if int8 else "MatMul", ["x", "w"], ["y"])],
            "peak",
            [helper.make_tensor_value_info("x", tensor.UINT8 if int8 else tensor.FLOAT, [size, size])],
            [helper.make_tensor_value_info("y", tensor.INT32 if int8 else tensor.FLOAT, [size, size])],
            [onnx.numpy_helper.from_array(weight.numpy(), "w")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / "peak.onnx"
            path.write_bytes(model.SerializeToString())
            run = ort_runner(path, threads)
        x = torch.randint(0, 256, (size, size), dtype=torch.uint8) if int8 else torch.randn(size, size)
        return run, x

    return make


def _openvino_gemm(int8: bool) -> Callable[[int, int], tuple[Run, torch.Tensor]]:
    """OpenVINO's fully connected layer; int8: activations through a u8 FakeQuantize, s8 weights dequantized
    per channel (the pattern NNCF writes, which the CPU plugin runs as an integer kernel)."""

    def make(size: int, threads: int) -> tuple[Run, torch.Tensor]:
        ov = require("openvino", OPENVINO_INSTALL)
        ops = require("openvino.opset13", OPENVINO_INSTALL)
        x = ops.parameter([size, size], ov.Type.f32)
        source = x
        if int8:
            low, high = ops.constant(0.0, ov.Type.f32), ops.constant(1.0, ov.Type.f32)
            source = ops.fake_quantize(x, low, high, low, high, 256)
            codes = torch.randint(-127, 128, (size, size), dtype=torch.int8).numpy()
            scales = ops.constant(torch.full((size, 1), 0.01).numpy())
            weight = ops.multiply(ops.convert(ops.constant(codes), ov.Type.f32), scales)
        else:
            weight = ops.constant(torch.randn(size, size).numpy())
        model = ov.Model([ops.matmul(source, weight, False, True)], [x], "peak")
        return ov_runner(model, threads), torch.rand(size, size)

    return make


def _xnnpack_gemm(int8: bool) -> Callable[[int, int], tuple[Run, torch.Tensor]]:
    """ExecuTorch's XNNPACK fully connected layer; int8: quantized by PT2E's XNNPACK quantizer (static,
    per-channel weights), as ``executorch-int8`` quantizes networks. Threads: set by :func:`run_bench`."""

    def make(size: int, threads: int) -> tuple[Run, torch.Tensor]:
        pt2e = require("torchao.quantization.pt2e.quantize_pt2e", "torchao")
        x = torch.randn(size, size)
        linear: nn.Module = nn.Linear(size, size, bias=False).eval()
        if int8:
            prepared = pt2e.prepare_pt2e(torch.export.export(linear, (x,)).module(), make_quantizer("xnnpack"))
            prepared(x)
            linear = pt2e.convert_pt2e(prepared)
        program = lower_xnnpack(torch.export.export(linear, (x,)))
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / "peak.pte"
            path.write_bytes(program)
            method = load_method(path)
        return lambda t: method.execute([t]), x

    return make


GEMMS = (
    ("fp32", "torch.mm (oneDNN/MKL)", _torch_gemm(False)),
    ("fp32", "onnxruntime MatMul (MLAS)", _onnxruntime_gemm(False)),
    ("fp32", "openvino FullyConnected", _openvino_gemm(False)),
    ("fp32", "executorch XNNPACK FullyConnected", _xnnpack_gemm(False)),
    ("int8", "torch._int_mm (oneDNN)", _torch_gemm(True)),
    ("int8", "onnxruntime MatMulInteger (MLAS)", _onnxruntime_gemm(True)),
    ("int8", "openvino FullyConnected int8", _openvino_gemm(True)),
    ("int8", "executorch XNNPACK FullyConnected int8", _xnnpack_gemm(True)),
)
"""(precision, name, maker) of every GEMM the peaks are measured with."""


@dataclass(frozen=True)
class Cpu:
    """What ``lscpu`` says about this machine, as far as speed figures need it."""

    model: str
    flags: tuple[str, ...]
    """Every feature flag, sorted."""
    cores: int
    """Physical cores this process may run on."""
    mhz: float | None
    """``CPU max MHz`` where ``lscpu`` shows it, else ``CPU MHz`` or ``/proc/cpuinfo``'s (a virtual machine's
    nominal clock, below its turbo: the theoretical peaks are then estimates, not bounds)."""

    @property
    def extensions(self) -> tuple[str, ...]:
        """The vector extensions among :data:`VECTOR_EXTENSIONS` that the CPU has."""
        return tuple(e for e in VECTOR_EXTENSIONS if e in self.flags)

    def describe(self) -> dict[str, Any]:
        """Model, vector extensions, cores and clock, for result tables."""
        return {"model": self.model, "extensions": list(self.extensions), "cores": self.cores, "mhz": self.mhz}


VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
FMA_UNITS = 2
"""Vector FMA units per core: an assumption (``lscpu`` does not say): two on Intel server cores, Zen 4 and Zen 5."""


@functools.cache
def cpu_info() -> Cpu:
    """This machine's CPU from ``lscpu --json`` (model ``unknown`` where ``lscpu`` is missing)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        text = subprocess.run(["lscpu", "--json"], capture_output=True, text=True, check=True, timeout=10).stdout
        fields = {entry["field"].rstrip(":"): entry["data"] for entry in _flatten(json.loads(text)["lscpu"])}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        fields = {}
    per_core = int(fields.get("Thread(s) per core") or 1)
    mhz = fields.get("CPU max MHz") or fields.get("CPU MHz") or _cpuinfo_mhz()
    return Cpu(
        model=fields.get("Model name", "unknown"),
        flags=tuple(sorted(fields.get("Flags", "").split())),
        cores=max(1, logical // per_core),
        mhz=float(mhz) if mhz else None,
    )


def _cpuinfo_mhz() -> str | None:
    """The first ``cpu MHz`` of ``/proc/cpuinfo`` (virtual machines' ``lscpu`` may show no clock)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("cpu MHz")), None)


def _flatten(entries: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for entry in entries:
        yield entry
        yield from _flatten(entry.get("children", []))


def theoretical_peaks(cpu: Cpu, threads: int) -> dict[str, float | None]:
    """The most fp32 FLOP/s and int8 op/s ``threads`` cores' vector units could do (None without a clock).

    fp32: cores x clock x (vector bits / 32 lanes) x 2 (multiply and add) x :data:`FMA_UNITS`.
    int8: with AMX, one tile multiply of 1024 int8 multiply-adds a cycle per core (2048 ops); with
    VNNI, ``VPDPBUSD`` does 4 multiply-adds per 32-bit lane (bits / 8 per instruction) on each FMA
    unit; without it, ``VPMADDUBSW`` + ``VPMADDWD`` reach half of that.
    """
    if cpu.mhz is None:
        return {"fp32": None, "int8": None}
    bits = 512 if "avx512f" in cpu.extensions else 256 if "avx2" in cpu.extensions else 128
    cycles = min(threads, cpu.cores) * cpu.mhz * 1e6
    fp32 = cycles * bits / 32 * 2 * FMA_UNITS
    if "amx_int8" in cpu.extensions:
        int8 = cycles * 2048
    else:
        vnni = "avx512_vnni" in cpu.extensions or "avx_vnni" in cpu.extensions
        int8 = cycles * bits / 8 * 2 * FMA_UNITS / (1 if vnni else 2)
    return {"fp32": fp32, "int8": int8}


def measure(run: Run, subject: Subject, backend: str, batch: int, resolution: int, threads: int, runs: int) -> Row:
    """Time ``run`` on a batch of ``batch`` random images and make the row (its floor is set by :func:`set_floor`)."""
    x = torch.randn(batch, subject.in_chans, resolution, resolution)
    warmup = 3 if batch == 1 else 2
    times_ms = sorted(t * 1e3 for t in time_runs(run, x, warmup, runs))
    median = statistics.median(times_ms)
    p90 = times_ms[min(len(times_ms) - 1, math.ceil(0.9 * len(times_ms)) - 1)]
    return Row(
        model=subject.name,
        backend=backend,
        precision=precision_of(backend),
        batch=batch,
        threads=threads,
        mult_adds=subject.mult_adds,
        runs=runs,
        median_ms=median,
        p90_ms=p90,
        min_ms=times_ms[0],
        max_ms=times_ms[-1],
        images_per_s=batch / median * 1e3,
        floor_ms=None,
        floor_pct=None,
    )


def set_floor(row: Row, peak: float | None) -> None:
    """The row's floor: its mult-adds at ``peak`` operations a second, and the share of it its median reaches."""
    row.floor_ms = 2 * row.mult_adds * row.batch / peak * 1e3 if peak else None
    row.floor_pct = 100 * row.floor_ms / row.median_ms if row.floor_ms else None


def default_threads() -> int:
    """The physical cores this process may run on (hyper-threads share one core's vector units)."""
    return cpu_info().cores


def run_bench(
    models: Sequence[str | Subject] = DEFAULT_MODELS,
    backends: Sequence[str] = BACKENDS,
    batches: Sequence[int] = (1, 32),
    resolution: int = 224,
    threads: int | None = None,
    runs: int = 30,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[Row], list[Skip], dict[str, Any]]:
    """Time every model on every backend at every batch size; returns rows, skipped pairs and run facts.

    ``models`` are names (:func:`check_models`, built at ``resolution``) or subjects already built
    (:func:`subject_of`, at their own resolution). ``runs`` timed calls at batch 1 (at least 20), a
    third of that (at least 5) at larger batches. A backend that cannot run a model here (not
    installed, export unsupported) is skipped with its reason. The facts are the threads, the CPU,
    each runtime's measured GEMM peak (the floor uses the highest of each precision), the
    theoretical peaks, and the rows over 100% of their floor (none unless a kernel outran every
    GEMM measured).
    """
    check_backends(backends)
    named = [m for m in models if isinstance(m, str)]
    if named or not models:  # Subjects (modules already loaded) need no name
        check_models(named)
    if runs < 20:
        raise ConfigError(f"--runs must be at least 20 (batch 1 statistics), got {runs}")
    threads = threads or default_threads()
    set_threads(threads)
    log("GEMM peaks")
    before = gemm_peaks(threads)
    rows: list[Row] = []
    skips: list[Skip] = []
    for model in models:
        try:
            subject = load_subject(model, resolution) if isinstance(model, str) else model
        except ExportError as err:  # a peer library that is not installed
            skips.extend(Skip(str(model), backend, str(err)) for backend in backends)
            continue
        size = subject.resolution
        images = calibration_batch(subject)
        with tempfile.TemporaryDirectory() as work:
            for backend in backends:
                log(f"{subject.name} / {backend}")
                torch._dynamo.reset()  # compiled functions of earlier pairs would count against the recompile limit
                try:
                    run = build(backend, subject, size, images, Path(work), threads)
                except Exception as err:  # any library's failure to build this pair is a skip, not an abort
                    skips.append(Skip(subject.name, backend, _first_line(err)))
                    continue
                for batch in batches:
                    count = runs if batch == 1 else max(5, runs // 3)
                    rows.append(measure(run, subject, backend, batch, size, threads, count))
    log("GEMM peaks again (a busy machine may have slowed the first ones)")
    after = gemm_peaks(threads)
    facts = run_facts({p: _best(before[p], after[p]) for p in PRECISIONS}, threads, resolution)
    for row in rows:
        peak = facts[f"{row.precision}_peak_gops"]
        set_floor(row, peak * 1e9 if peak else None)
    facts["over_floor"] = [f"{r.model} / {r.backend} / {r.batch}" for r in rows if (r.floor_pct or 0) > 100]
    return rows, skips, facts


def precision_of(backend: str) -> str:
    """``int8`` or ``fp32``: the arithmetic of a backend's convolutions."""
    return "int8" if backend in INT8_BACKENDS else "fp32"


def fastest(medians: dict[str, float]) -> dict[str, Any]:
    """``{"fp32_ms", "fp32_backend", "int8_ms", "int8_backend"}``: the fastest backend of each precision
    among ``medians`` (backend -> median ms of one model at batch 1); a precision not measured is left out."""
    best: dict[str, Any] = {}
    for precision in PRECISIONS:
        mine = {backend: ms for backend, ms in medians.items() if precision_of(backend) == precision}
        if mine:
            backend = min(mine, key=mine.__getitem__)
            best.update({f"{precision}_ms": round(mine[backend], 3), f"{precision}_backend": backend})
    return best


def _best(*measured: dict[str, float]) -> dict[str, float]:
    """Each implementation's highest rate over several measurements."""
    return {name: max(m[name] for m in measured if name in m) for name in dict.fromkeys(k for m in measured for k in m)}


def run_facts(peaks: dict[str, dict[str, float]], threads: int, resolution: int) -> dict[str, Any]:
    """What a result table states beside its rows: threads, input size, CPU, measured and theoretical peaks."""
    cpu = cpu_info()
    theory = theoretical_peaks(cpu, threads)
    facts: dict[str, Any] = {"threads": threads, "resolution": resolution, "cpu": cpu.describe()}
    facts["fma_units_assumed"] = FMA_UNITS
    for precision in PRECISIONS:
        measured = peaks[precision]
        facts[f"{precision}_peaks_gops"] = {name: rate / 1e9 for name, rate in measured.items()}
        facts[f"{precision}_peak_gops"] = max(measured.values()) / 1e9 if measured else None
        facts[f"{precision}_theoretical_gops"] = theory[precision] / 1e9 if theory[precision] else None
    return facts


def set_threads(threads: int) -> None:
    """The same number of threads for PyTorch and ExecuTorch (the other runtimes take it as each model is loaded)."""
    torch.set_num_threads(threads)
    _executorch_threads(threads)


def _executorch_threads(threads: int) -> None:
    try:
        portable = require("executorch.extension.pybindings.portable_lib", "executorch")
    except ExportError:
        return
    portable._unsafe_reset_threadpool(threads)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


def table(rows: Sequence[Row], skips: Sequence[Skip], facts: dict[str, Any]) -> str:
    """The results as a Markdown table, with the run's facts and the skipped pairs below it."""
    headers = ["model", "backend", "precision", "batch", "MMAC", "median ms", "p90 ms", "min ms", "max ms"]
    headers += ["img/s", "floor ms", "% of floor"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        floor = f"{r.floor_ms:.2f} | {r.floor_pct:.0f}%" if r.floor_ms else "- | -"
        lines.append(
            f"| {r.model} | {r.backend} | {r.precision} | {r.batch} | {r.mult_adds / 1e6:.0f} | {r.median_ms:.2f} | "
            f"{r.p90_ms:.2f} | {r.min_ms:.2f} | {r.max_ms:.2f} | {r.images_per_s:.1f} | {floor} |"
        )
    lines.append("")
    lines.extend(describe_facts(facts))
    lines.extend(f"over 100% of the floor (a GEMM peak measured too low): {row}" for row in facts["over_floor"])
    lines.extend(f"skipped {s.model} / {s.backend}: {s.reason}" for s in skips)
    return "\n".join(lines)


def describe_facts(facts: dict[str, Any]) -> list[str]:
    """The run's facts as lines of text: CPU, threads, each GEMM peak and the theoretical ones."""
    cpu = facts["cpu"]
    clock = f"{cpu['mhz']:.0f} MHz" if cpu["mhz"] else "clock unknown"
    lines = [
        f"CPU {cpu['model']} ({cpu['cores']} cores here, {clock}; {' '.join(cpu['extensions']) or 'no AVX2'}); "
        f"threads {facts['threads']}; input {facts['resolution']}"
    ]
    for precision, unit in (("fp32", "GFLOP/s"), ("int8", "GOP/s")):
        best = facts[f"{precision}_peak_gops"]
        each = ", ".join(f"{name} {rate:.0f}" for name, rate in facts[f"{precision}_peaks_gops"].items())
        theory = facts[f"{precision}_theoretical_gops"]
        bound = f"; theoretical {theory:.0f} (assuming {facts['fma_units_assumed']} FMA units a core)" if theory else ""
        floor = f"floor at {best:.0f} {unit}" if best else "no floor (no GEMM measured)"
        lines.append(f"{precision} {floor}: the best of {each or 'none'}{bound}")
    return lines


RUNTIME_PACKAGES = ("torch", "onnxruntime", "openvino", "nncf", "executorch", "torchao")
"""The packages whose versions decide which backend is fastest (part of the cache key)."""
PICK_CACHE = "backend_choice.json"


@dataclass
class Pick:
    """The fastest backend of one precision for one model on this machine, and the measurement behind it."""

    model: str
    precision: str
    backend: str
    export_format: str
    """What ``mobilenet export --format`` writes the file this backend runs."""
    batch: int
    threads: int
    median_ms: float
    images_per_s: float
    floor_pct: float | None
    candidates: dict[str, float]
    """Median ms of every backend of the precision that ran."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Backends of the precision that could not run, and why."""
    cached: bool = False
    """Whether this came from the per-machine cache (measured by an earlier call with the same key)."""

    def describe(self) -> str:
        """One line: the choice, its figures, the runners-up."""
        others = ", ".join(f"{b} {ms:.2f} ms" for b, ms in sorted(self.candidates.items(), key=lambda kv: kv[1]))
        floor = f", {self.floor_pct:.0f}% of floor" if self.floor_pct is not None else ""
        source = " (cached)" if self.cached else ""
        return (
            f"{self.model} {self.precision}: {self.backend} (--format {self.export_format}) "
            f"{self.median_ms:.2f} ms at batch {self.batch}, {self.threads} threads{floor}{source}; measured: {others}"
        )


def pick_backend(
    source: str | Path | nn.Module,
    precision: str = "fp32",
    *,
    batch: int = 1,
    resolution: int | None = None,
    threads: int | None = None,
    runs: int = 20,
    refresh: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Pick:
    """The backend that runs ``source`` fastest at ``precision`` on this machine, measured once and cached.

    ``source`` is a registry name, a ``timm:`` / ``torchvision:`` peer, anything :func:`mobilenet.load`
    reads (a run folder, weights) or one of our models; its speed depends on its architecture, not
    its weights, so ``resolution`` defaults to the model's own input size. Every backend with an
    export format (:data:`EXPORT_FORMATS`) of the precision is timed by :func:`run_bench`; the one
    with the lowest median wins. The result is cached in ``$MOBILENET_CACHE/backend_choice.json``
    under a key of the CPU (model and flags), the threads, the runtimes' versions, the
    architecture, precision, batch and resolution; ``refresh`` measures again. Raises
    :class:`ConfigError` when no backend of the precision can run here.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    threads = threads or default_threads()
    subject = _pick_subject(source, resolution)
    size = subject.resolution
    key = " | ".join((machine_key(threads), _model_key(subject), precision, f"batch {batch}", f"{size} px"))
    cache = cache_dir() / PICK_CACHE
    known = _read_cache(cache)
    if key in known and not refresh:
        return Pick(**{**known[key], "cached": True})
    backends = [b for b in EXPORT_FORMATS if precision_of(b) == precision]
    rows, skips, _ = run_bench([subject], backends, [batch], size, threads, runs, log)
    if not rows:
        reasons = "; ".join(f"{s.backend}: {s.reason}" for s in skips)
        raise ConfigError(f"no {precision} backend runs {subject.name} here ({reasons})")
    best = min(rows, key=lambda r: r.median_ms)
    pick = Pick(
        model=subject.name,
        precision=precision,
        backend=best.backend,
        export_format=EXPORT_FORMATS[best.backend],
        batch=batch,
        threads=threads,
        median_ms=best.median_ms,
        images_per_s=best.images_per_s,
        floor_pct=best.floor_pct,
        candidates={r.backend: r.median_ms for r in rows},
        skipped={s.backend: s.reason for s in skips},
    )
    known[key] = asdict(pick)
    atomic_write_text(cache, json.dumps(known, indent=1))
    return pick


def machine_key(threads: int) -> str:
    """What decides which backend is fastest here: CPU model and flags, threads, the runtimes' versions."""
    cpu = cpu_info()
    versions = " ".join(f"{name}={package_version(name)}" for name in RUNTIME_PACKAGES)
    return f"{cpu.model} [{' '.join(cpu.flags)}] | {threads} threads | {versions}"


def package_version(package: str) -> str:
    """The installed version of ``package``, or ``absent``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _pick_subject(source: str | Path | nn.Module, resolution: int | None) -> Subject:
    if isinstance(source, nn.Module):
        return subject_of(getattr(source, "arch", type(source).__name__), source, resolution or DEFAULT_INPUT_SIZE)
    if isinstance(source, str) and (":" in source or source in list_models()):
        check_models([source])
        return load_subject(source, resolution or registry_size(source))
    model, card = load(source)
    if not isinstance(model, nn.Module) or not hasattr(model, "arch"):
        raise ConfigError(f"{source} is not a model to export (an exported file?): pass its checkpoint or weights")
    return subject_of(model.arch, model, resolution or card.input_size)


def registry_size(name: str) -> int:
    """The input side a registry name is published at (224 for peers)."""
    return DEFAULT_INPUT_SIZE if ":" in name else get_model_info(name).input_size


def _model_key(subject: Subject) -> str:
    """The architecture (ours: its name and arguments; a peer: its name): what speed depends on."""
    module = subject.module
    if hasattr(module, "arch"):
        return f"{module.arch} {json.dumps(module.config, sort_keys=True, default=str)}"
    return subject.name


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or unreadable: measure again
        return {}
    return known if isinstance(known, dict) else {}


def as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One object per (model, backend, batch)."""
    return [asdict(r) for r in rows]


def plot(rows: Sequence[Row], path: str | Path, batch: int = 1) -> None:
    """Latency (median, ``batch``) against mult-adds, one marker per backend, each point named by model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = [r for r in rows if r.batch == batch]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = dict(zip(BACKENDS, "osDv^<>pPX", strict=True))
    for backend in BACKENDS:
        points = [r for r in picked if r.backend == backend]
        if points:
            xs = [r.mult_adds / 1e6 for r in points]
            ax.scatter(xs, [r.median_ms for r in points], marker=markers[backend], label=backend, s=40)
    for r in picked:
        ax.annotate(r.model, (r.mult_adds / 1e6, r.median_ms), fontsize=6, alpha=0.6)
    ax.set_xlabel("mult-adds (millions)")
    ax.set_ylabel(f"median latency, batch {batch} (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
