"""Fuzz every reader of untrusted bytes: cases tried, distinct crashes, hangs and memory blow-ups per parser.

A target is one reader as a user reaches it: weights files (TFLite, Keras HDF5, safetensors ours and
foreign, PyTorch zip state dicts) through :func:`mobilenet.weights.load_weights`; the model card of
exported files (ONNX metadata, ``.pt2`` archives, the JSON beside a ``.pte``); images in every format
Pillow writes through :func:`mobilenet.data.images.load_image`; labels files; a training run's
``config.json`` through ``--resume``; the server's request parsers (Open Inference Protocol requests,
multipart uploads). Seeds are real files (Google's TFLite file from ``../shared``
cut to its first layers, a CIFAR-10 JPEG, ImageNet's labels) and small files written here by the
project's own writers.

Each target runs in its own process (coverage-guided by atheris, libFuzzer's engine, when it is
installed; else Hypothesis mutating the seeds), under a memory limit. What counts as a finding:

- crash: any exception other than the project's own one-line errors (a traceback for a user), or a
  native crash of the process;
- multiline: a project error whose message spans several lines (the CLI prints one);
- hang: one case over 5 s;
- memory: one case that raises the process's peak memory by over 2 GB, or fails to allocate.

Every finding is saved (input bytes and message) under ``--work``; each one fixed becomes a
regression test (tests/test_fuzz.py). Adding a reader is one :func:`target` function.

Run: .venv/bin/python benchmarks/fuzz.py --seconds 120 [--cases 100000] [--targets images,labels] [--engine hypothesis]
(``--cases``: a target stops early once it has tried that many cases; ``--seconds`` bounds it.)
Ends with one JSON line: {"<target>": {"cases": n, "crashes": n, "hangs": n, "memory": n, ...}, ...}
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data").parent
HANG_SECONDS = 5.0  # CPU time of one case (the machines are shared: wall time would count others' work)
STUCK_SECONDS = 60  # wall time after which libFuzzer kills a worker stuck in native code (counted as a hang)
MEMORY_MB = 2048
ADDRESS_SPACE_MARGIN = 6 * 2**30  # hard cap above the worker's idle address space: no case takes the machine down
KINDS = ("crashes", "multiline", "hangs", "memory")


Seeds = Callable[[Path], list[bytes]]


@dataclass(frozen=True)
class Target:
    """One reader: ``read(path)`` on a file holding the bytes under test, named ``case<suffix>``."""

    name: str
    suffix: str
    seeds: Seeds
    """Seed files' bytes (``work`` is a scratch folder); an empty list when what they come from is absent."""
    read: Callable[[Path], Any]
    instrument: tuple[str, ...]
    """Packages whose Python code guides atheris (the project and the pure-Python parsers it calls)."""


TARGETS: dict[str, Target] = {}


def target(suffix: str, read: Callable[[Path], Any], *instrument: str) -> Callable[[Seeds], Seeds]:
    """Register a reader under the name of the decorated seeds function ``seeds(work) -> list[bytes]``.

    ``read(path)`` is what a user's command calls on a file holding the bytes under test (named
    ``case<suffix>``); ``instrument`` names the pure-Python parsers it calls, whose coverage guides atheris.
    """

    def register(seeds: Seeds) -> Seeds:
        TARGETS[seeds.__name__] = Target(seeds.__name__, suffix, seeds, read, ("mobilenet", *instrument))
        return seeds

    return register


# ---- readers: what a user's command calls on the file ---------------------------------------------------------


def _read_weights(path: Path) -> Any:
    """What ``load_weights`` reads before it builds a model: the tensors under our names, and the card."""
    from mobilenet.weights.loader import read

    return read(path)


def _read_keras(path: Path) -> Any:
    """A Keras ``.h5`` as ``load_weights`` reads it: h5py in a child process, whose time limit is set to
    the hang threshold here (a native hang in libhdf5 is then the project's one-line refusal)."""
    from mobilenet.weights import keras

    keras.READ_SECONDS = round(HANG_SECONDS)
    return _read_weights(path)


def _read_hdf5_in_process(path: Path) -> Any:
    """The child's own reading (``weights/hdf5_reader.py``) run in this process, for speed: a user's read
    starts a process per file (under 10 cases a second here); its exceptions are the child's one-line
    exit, so what this target can find is what the child's limits contain: hangs and memory."""
    from mobilenet.errors import WeightsError
    from mobilenet.weights import hdf5_reader

    try:
        return hdf5_reader.read(str(path))
    except Exception as err:  # the child prints it as one line and exits 2
        raise WeightsError(f"{type(err).__name__}: {err}") from None


def _read_tflite(path: Path) -> Any:
    """A TFLite file's graph (the operators and dequantized weights that the converters then match)."""
    from mobilenet.weights.formats import detect_format
    from mobilenet.weights.tflite import parse

    detect_format(path)
    return parse(path)


def _exported_card(path: Path) -> Any:
    from mobilenet.export.runtime import read_exported_card

    return read_exported_card(path)


def _pte_card(path: Path) -> Any:
    """A ``.pte`` program's card: the JSON file beside it (``path`` holds the fuzzed JSON)."""
    from mobilenet.export.executorch_export import sidecar
    from mobilenet.export.runtime import read_exported_card

    program = path.with_suffix(".pte")
    if not program.exists():
        program.write_bytes(b"\0\0\0\0ET12")
    sidecar(program).write_bytes(path.read_bytes())
    return read_exported_card(program)


def _load_image(path: Path) -> Any:
    from mobilenet.data.images import load_image

    return load_image(path)


def _read_labels(path: Path) -> Any:
    from mobilenet.weights.labels import read_labels

    return read_labels(path)


def _resume_config(path: Path) -> Any:
    """``mobilenet train --resume RUN``: the run's ``config.json`` read back and validated."""
    from mobilenet.training import resume_config

    run = path.parent / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_bytes(path.read_bytes())
    return resume_config(run).validate()


def _serve_card() -> Any:
    from mobilenet.card import ModelCard

    return ModelCard("mobilenet_v1", classes=("cat", "dog"), input_size=8)


def _infer_request(path: Path) -> Any:
    """``mobilenet serve``'s Open Inference Protocol parser (``POST /v2/models/NAME/infer``).

    A case is ``<Inference-Header-Content-Length or ->\\n<body>``. The server answers a
    :class:`ProtocolError` with a 400 and its message: here it counts as the project's one-line error.
    """
    from mobilenet.errors import ConfigError
    from mobilenet.serve.protocol import ProtocolError, parse_infer

    length, _, body = path.read_bytes().partition(b"\n")
    try:
        return parse_infer(body, None if length == b"-" else length.decode("latin-1"), _serve_card())
    except ProtocolError as err:
        raise ConfigError(f"400: {err}") from None


def _classify_upload(path: Path) -> Any:
    """``mobilenet serve``'s ``POST /v1/classify`` multipart parser (Starlette, python-multipart).

    A case is ``<boundary>\\n<body>``, sent as one ``multipart/form-data`` request; an
    :class:`~mobilenet.serve.app.ApiError` (a 4xx with a JSON message) counts as the one-line error.
    """
    import asyncio

    from starlette.requests import Request

    from mobilenet.errors import ConfigError
    from mobilenet.serve.app import ApiError, read_images

    boundary, _, body = path.read_bytes().partition(b"\n")
    content_type = b"multipart/form-data; boundary=" + boundary
    scope = {"type": "http", "method": "POST", "path": "/v1/classify", "headers": [(b"content-type", content_type)]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return asyncio.run(read_images(Request(scope, receive)))
    except ApiError as err:
        raise ConfigError(f"{err.status}: {err}") from None


# ---- seeds -------------------------------------------------------------------------------------------------------


def _tiny_model() -> Any:
    from mobilenet import create_model

    return create_model("mobilenet_v1", width_mult=0.25, num_classes=2)


def _first_tensors(count: int) -> dict[str, Any]:
    """The first ``count`` tensors of the tiny model's state dict (small seeds mutate fast)."""
    return dict(list(_tiny_model().state_dict().items())[:count])


def _card(model: Any) -> Any:
    from mobilenet.card import ModelCard

    return ModelCard(model.arch, kwargs=dict(model.config), classes=("cat", "dog"), input_size=32)


def _written(write: Callable[[Path], Any], work: Path, name: str) -> bytes:
    path = work / name
    write(path)
    return path.read_bytes()


def tflite_seed(source: Path, keep: int) -> bytes:
    """Google's TFLite file ``source`` cut to its first ``keep`` operators (the other buffers emptied)."""
    import flatbuffers

    schema = importlib.import_module("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[:keep]
    used = {index for op in graph.operators for index in (*op.inputs, *op.outputs)}
    for index, tensor in enumerate(graph.tensors):
        if index not in used:
            model.buffers[tensor.buffer].data = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@target(".tflite", _read_tflite, "tflite")
def tflite(work: Path) -> list[bytes]:
    source = SHARED / "weights" / "tflite" / "mobilenet_v1_0.25_128_quant.tflite"
    if not source.is_file():
        return []
    return [tflite_seed(source, keep) for keep in (1, 3, 5)]


def keras_file(path: Path, layers: dict[str, dict[str, Any]], whole_model: bool) -> None:
    """A Keras HDF5 file: ``layer_names``, one group per layer, ``weight_names`` and ``<layer>/<param>:0``."""
    import h5py

    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if whole_model else f
        root.attrs["layer_names"] = [name.encode() for name in layers]
        for layer, params in layers.items():
            group = root.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{param}:0".encode() for param in params]
            for param, value in params.items():
                group.create_dataset(f"{layer}/{param}:0", data=value)


@target(".h5", _read_keras)
def keras_h5(work: Path) -> list[bytes]:
    import numpy as np

    rng = np.random.default_rng(0)
    layers = {
        "conv1": {"kernel": rng.standard_normal((3, 3, 3, 8), dtype=np.float32)},
        "conv1_bn": {p: rng.random(8, dtype=np.float32) for p in ("gamma", "beta", "moving_mean", "moving_variance")},
        "conv_dw_1": {"depthwise_kernel": rng.standard_normal((3, 3, 8, 1), dtype=np.float32)},
    }
    return [_written(lambda p, whole=whole: keras_file(p, layers, whole), work, f"k{whole}.h5") for whole in (0, 1)]


@target(".h5", _read_hdf5_in_process, "mobilenet.weights.hdf5_reader", "h5py")
def keras_h5_parser(work: Path) -> list[bytes]:
    """The seeds of :func:`keras_h5`."""
    return keras_h5(work)


@target(".safetensors", _read_weights, "safetensors")
def safetensors_native(work: Path) -> list[bytes]:
    from mobilenet.weights import save_native

    return [
        _written(lambda p, m=model: save_native(m, _card(m), p), work, f"{model.arch}.safetensors")
        for model in (_tiny_model(),)
    ]


@target(".safetensors", _read_weights, "safetensors")
def safetensors_foreign(work: Path) -> list[bytes]:
    import torch
    from safetensors.torch import save

    state = _first_tensors(12)
    return [
        save(state),
        save({f"conv_stem.{k}": v for k, v in _first_tensors(5).items()}, metadata={"format": "pt"}),
        save({"x": torch.arange(6, dtype=torch.int64).reshape(2, 3), "y": torch.zeros(0, dtype=torch.bfloat16)}),
    ]


@target(".pt", _read_weights, "zipfile")
def torch_zip(work: Path) -> list[bytes]:
    import torch

    state = _first_tensors(12)
    seeds = []
    for obj in (state, {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        seeds.append(buffer.getvalue())
    return seeds


def _card_json() -> str:
    return json.dumps(_card(_tiny_model()).to_dict())


@target(".onnx", _exported_card, "onnx", "google.protobuf")
def onnx_card(work: Path) -> list[bytes]:
    from onnx import TensorProto, helper

    from mobilenet.export.onnx_export import META_KEY

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "g", [x], [y])
    model = helper.make_model(graph)
    helper.set_model_props(model, {META_KEY: _card_json()})
    return [model.SerializeToString()]


@target(".pt2", _exported_card, "zipfile")
def pt2_card(work: Path) -> list[bytes]:
    import torch

    from mobilenet.export.pt2e import META_FILE

    program = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={META_FILE: _card_json()})
    return [buffer.getvalue()]


@target(".json", _pte_card, "json")
def pte_card(work: Path) -> list[bytes]:
    return [_card_json().encode()]


@target(".img", _load_image, "PIL")
def images(work: Path) -> list[bytes]:
    """A CIFAR-10 JPEG (when ../shared is here) and a small picture in every format Pillow writes."""
    import numpy as np
    from PIL import Image

    real = sorted((SHARED / "data" / "cifar10" / "test" / "cat").glob("*.jpg"))[:1]
    seeds = [path.read_bytes() for path in real]
    gradient = np.add.outer(np.arange(12), np.arange(16)).astype(np.uint8) * 8
    picture = Image.fromarray(np.stack([gradient, gradient[::-1], 255 - gradient], axis=-1))
    Image.init()
    for fmt in sorted(set(Image.SAVE)):
        for mode in ("RGB", "L", "P", "RGBA", "I;16"):
            buffer = io.BytesIO()
            with contextlib.suppress(Exception):  # not every format writes every mode (or writes at all here)
                picture.convert(mode).save(buffer, format=fmt)
                seeds.append(buffer.getvalue())
    return seeds


@target(".txt", _read_labels)
def labels(work: Path) -> list[bytes]:
    real = [SHARED / "weights" / "tflite" / "imagenet_labels.txt"]
    return [path.read_bytes() for path in real if path.is_file()] + [b"cat\ndog\n", "caf\u00e9\r\n\u00fcber\n".encode()]


@target(".json", _resume_config, "json")
def config_json(work: Path) -> list[bytes]:
    from mobilenet.training import resolve_config

    runs = (resolve_config(data="flowers17", out="runs/x"), resolve_config("cifar10", out="runs/y", ema_decay=0.99))
    return [config.to_json().encode() for config in runs]


@target(".req", _infer_request, "mobilenet.serve.protocol")
def infer_request(work: Path) -> list[bytes]:
    """Requests as tritonclient sends them: images as base64 JSON and as binary BYTES, a binary FP32 tensor."""
    import base64
    import struct

    image = _small_jpeg()
    as_json = {
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(image).decode()]}]
    }
    outputs = [{"name": "probabilities", "parameters": {"classification": 2, "binary_data": False}}]
    seeds = [b"-\n" + json.dumps({"id": "1", **as_json, "outputs": outputs}).encode()]
    for name, datatype, shape, raw in (
        ("image", "BYTES", [2], b"".join(struct.pack("<I", len(image)) + image for _ in range(2))),
        ("input", "FP32", [1, 3, 8, 8], struct.pack("<192f", *[0.5] * 192)),
    ):
        spec = {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}
        head = json.dumps({"inputs": [spec], "parameters": {"binary_data_output": True}}).encode()
        seeds.append(str(len(head)).encode() + b"\n" + head + raw)
    return seeds


@target(".form", _classify_upload, "mobilenet.serve.app", "python_multipart")
def classify_upload(work: Path) -> list[bytes]:
    """A browser's upload of two images (the page's form) and a form with a text field."""
    image = _small_jpeg()
    parts = [
        b'--b0\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        + image
        + b'\r\n--b0\r\nContent-Disposition: form-data; name="image"; filename="b.jpg"\r\n\r\n'
        + image
        + b"\r\n--b0--\r\n",
        b'--b0\r\nContent-Disposition: form-data; name="topk"\r\n\r\n3\r\n--b0--\r\n',
    ]
    return [b"b0\n" + part for part in parts]


def _small_jpeg() -> bytes:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), 128, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


# ---- one case ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """Why one input is a finding: its kind (one of :data:`KINDS`), a signature (equal for one bug), a message."""

    kind: str
    signature: str
    message: str


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _allocation_failure(err: BaseException) -> bool:
    chain: BaseException | None = err
    while chain is not None:
        if isinstance(chain, MemoryError) or "can't allocate memory" in str(chain):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def _signature(err: BaseException) -> str:
    """The exception's type and where it was raised (the innermost frame), equal for one bug."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(err).__name__} at {where}"


def check_case(spec: Target, data: bytes, path: Path, baseline_mb: float) -> Finding | None:
    """Write ``data`` to ``path`` and read it as a user's command would; the finding, or None when all is well."""
    from mobilenet.errors import MobileNetError

    path.write_bytes(data)
    start = time.process_time()
    finding = None
    try:
        spec.read(path)
    except MobileNetError as err:
        if _allocation_failure(err):
            finding = Finding("memory", f"allocation in {_signature(err)}", str(err)[:300])
        elif "\n" in str(err).strip():
            finding = Finding("multiline", _signature(err), str(err)[:300])
    except Exception as err:
        kind = "memory" if _allocation_failure(err) else "crashes"
        finding = Finding(kind, _signature(err), f"{type(err).__name__}: {str(err)[:300]}")
    seconds = time.process_time() - start
    if finding is None and seconds > HANG_SECONDS:
        finding = Finding("hangs", f"slow {spec.name}", f"{seconds:.1f} s of CPU")
    if finding is None and peak_mb() - baseline_mb > MEMORY_MB:
        finding = Finding("memory", f"peak {spec.name}", f"peak {peak_mb():.0f} MB (idle {baseline_mb:.0f} MB)")
    return finding


# ---- a worker: one target in one process ---------------------------------------------------------------------


class Recorder:
    """A worker's counts and findings, flushed to ``work/stats.json`` and ``work/findings/`` as it goes."""

    def __init__(self, spec: Target, work: Path, seconds: float, max_cases: int | None = None) -> None:
        self.spec, self.work = spec, work
        self.deadline = time.monotonic() + seconds
        self.max_cases = max_cases
        self.cases = 0
        self.findings: dict[str, Finding] = {}  # by signature: one bug is one finding
        self.flushed = time.monotonic()
        (work / "findings").mkdir(parents=True, exist_ok=True)
        self.case = work / f"case{spec.suffix}"
        self.baseline = peak_mb()

    def run(self, data: bytes) -> Finding | None:
        finding = check_case(self.spec, data, self.case, self.baseline)
        self.cases += 1
        if finding is not None:
            self.record(finding, data)
        if time.monotonic() - self.flushed > 1:
            self.flush()
        return finding

    def record(self, finding: Finding, data: bytes) -> None:
        if finding.signature in self.findings:
            return
        self.findings[finding.signature] = finding
        digest = hashlib.sha1(finding.signature.encode()).hexdigest()[:12]
        (self.work / "findings" / f"{finding.kind}-{digest}.bin").write_bytes(data)
        entry = {"kind": finding.kind, "signature": finding.signature, "message": finding.message, "file": digest}
        with (self.work / "findings.jsonl").open("a") as out:
            out.write(json.dumps(entry) + "\n")

    def flush(self) -> None:
        """This process's case count (a restarted worker writes its own file; the driver sums them)."""
        (self.work / f"stats-{os.getpid()}.json").write_text(json.dumps({"cases": self.cases}))
        self.flushed = time.monotonic()

    @property
    def expired(self) -> bool:
        done = self.max_cases is not None and self.cases >= self.max_cases
        return done or time.monotonic() > self.deadline


def limit_memory() -> None:
    """Cap the address space a little above what the worker uses idle (a hard stop, under the findings' 2 GB)."""
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    cap = vm + ADDRESS_SPACE_MARGIN
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def worker_atheris(spec: Target, work: Path, seconds: float, seed: int, max_cases: int | None = None) -> None:
    """Coverage-guided fuzzing of one target with atheris (libFuzzer); exits when the time is up."""
    import atheris

    with atheris.instrument_imports(include=list(spec.instrument)):
        for module in ("mobilenet.load", "mobilenet.training", *spec.instrument):
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    seeds = spec.seeds(work)
    for index, data in enumerate(seeds):
        (corpus / f"seed{index}").write_bytes(data)
    limit_memory()
    recorder = Recorder(spec, work, seconds, max_cases)
    for data in seeds:  # the first reads import lazily: outside libFuzzer's clock, so that is no hang
        recorder.run(data)

    def one_input(data: bytes) -> None:
        if recorder.expired:
            recorder.flush()
            os._exit(0)
        recorder.run(data)

    longest = max((len(s) for s in seeds), default=4096)
    argv = [
        sys.argv[0],
        f"-timeout={STUCK_SECONDS}",
        f"-rss_limit_mb={int(recorder.baseline) + MEMORY_MB}",
        f"-seed={seed}",
        f"-max_len={max(2 * longest, 4096)}",
        f"-artifact_prefix={work}/findings/native-",
        "-print_final_stats=0",
        str(corpus),
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def mutate(data: bytes, rng: random.Random, count: int) -> bytes:
    """``data`` after ``count`` random byte-level edits: flips, interesting values, cuts, copies, insertions."""
    out = bytearray(data)
    interesting = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00" * 8)
    for _ in range(count):
        at = rng.randrange(len(out) + 1)
        op = rng.randrange(6)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            value = rng.choice(interesting)
            out[at : at + len(value)] = value
        elif op == 2:
            del out[at : at + rng.choice((1, 4, 64, 4096))]
        elif op == 3 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.choice((1, 8, 256))]
        elif op == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 8))))
        else:
            del out[at:]
    return bytes(out)


def mutation_cases(seeds: list[bytes], seed: int) -> Any:
    """Hypothesis's strategy of inputs: a seed file with 1-8 byte-level edits (Hypothesis picks and shrinks them)."""
    from hypothesis import strategies as st

    return st.builds(
        lambda index, rng_seed, count: mutate(seeds[index % len(seeds)], random.Random(rng_seed ^ seed), count),
        st.integers(0, max(len(seeds) - 1, 0)),
        st.integers(0, 2**32 - 1),
        st.integers(1, 8),
    )


def worker_hypothesis(
    spec: Target, work: Path, seconds: float, seed: int, examples: int | None = None, max_cases: int | None = None
) -> Recorder:
    """Fuzz one target with Hypothesis mutating its seeds, for ``seconds`` (or ``examples`` cases)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    seeds = spec.seeds(work) or [b""]
    recorder = Recorder(spec, work, seconds, max_cases)
    batch = examples or 500

    @hypothesis_seed(seed)
    @settings(max_examples=batch, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutation_cases(seeds, seed))
    def one_input(data: bytes) -> None:
        if not recorder.expired:
            recorder.run(data)

    one_input()
    while examples is None and not recorder.expired:
        one_input()
    recorder.flush()
    return recorder


# ---- the driver ----------------------------------------------------------------------------------------------


def has_atheris() -> bool:
    """Whether atheris (coverage-guided fuzzing) is installed and loads on this Python."""
    try:
        importlib.import_module("atheris")
    except ImportError:
        return False
    return True


def fuzz_target(
    name: str, seconds: float, engine: str, seed: int, work: Path, max_cases: int | None = None
) -> dict[str, Any]:
    """Fuzz one target in worker processes for ``seconds`` (or until ``max_cases`` cases): a worker that
    dies (a native crash, a hang, memory) is counted and replaced until the time is up."""
    work.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + seconds
    restarts = 0
    started = time.monotonic()
    while True:
        left = end - time.monotonic()
        command = [sys.executable, __file__, "--worker", name, "--seconds", f"{max(left, 1):.1f}"]
        command += ["--engine", engine, "--seed", str(seed + restarts), "--work", str(work)]
        if max_cases is not None:
            command += ["--cases", str(max(max_cases - _cases(work), 1))]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=left + 600, check=False)
        if proc.returncode == 0 or end - time.monotonic() < 5 or restarts >= 50:
            break
        restarts += 1
        with (work / "worker.log").open("a") as log:
            log.write(proc.stderr[-4000:])
    cases = _cases(work)
    findings = (
        [json.loads(line) for line in (work / "findings.jsonl").read_text().splitlines()]
        if (work / "findings.jsonl").exists()
        else []
    )
    for artifact in sorted((work / "findings").glob("native-*")):  # libFuzzer's: crash-, timeout-, oom-
        kind = {"timeout": "hangs", "oom": "memory"}.get(artifact.name.split("-")[1], "crashes")
        findings.append({"kind": kind, "signature": artifact.name, "message": "process killed", "file": artifact.name})
    counts = {kind: sum(f["kind"] == kind for f in findings) for kind in KINDS}
    elapsed = time.monotonic() - started
    return {
        "cases": cases,
        **counts,
        "restarts": restarts,
        "seconds": round(elapsed, 1),
        "cases_per_s": round(cases / elapsed, 1),
        "engine": engine,
        "findings": [f"{f['kind']}: {f['signature']}: {f['message'][:160]}" for f in findings],
    }


def _cases(work: Path) -> int:
    """Cases tried so far by every worker of a target (each writes its own count)."""
    return sum(json.loads(path.read_text())["cases"] for path in work.glob("stats-*.json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="time per target")
    parser.add_argument("--cases", type=int, help="stop a target once it has tried this many cases")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--engine", choices=("atheris", "hypothesis"), help="default: atheris when installed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="where findings are kept (default: a temporary folder)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    engine = args.engine or ("atheris" if has_atheris() else "hypothesis")
    if args.worker:
        import torch

        torch.set_num_threads(1)  # one core a worker, as in the tests
        logging.disable(logging.WARNING)  # torch.export logs a traceback for every damaged archive
        warnings.simplefilter("ignore")
        spec = TARGETS[args.worker]
        if engine == "atheris":
            worker_atheris(spec, args.work, args.seconds, args.seed, args.cases)
        else:
            worker_hypothesis(spec, args.work, args.seconds, args.seed, max_cases=args.cases)
        return 0
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}: choose from {', '.join(TARGETS)}")
    with tempfile.TemporaryDirectory(prefix="mobilenet-fuzz-") as scratch:
        work = args.work or Path(scratch)
        results = {}
        for name in names:
            results[name] = fuzz_target(name, args.seconds, engine, args.seed, work / name, args.cases)
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    print(json.dumps({name: {k: v for k, v in r.items() if k != "findings"} for name, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
