"""Hostile files: each refused by the command line with one line and exit status 2, in bounded time and memory.

A zip bomb posing as a state dict, a safetensors header that claims terabytes, a Keras file with
an external link, a TFLite file whose buffer indices point past its buffers, run folders whose
files are links to outside them, a ``.pt2`` archive whose pickle would run a command. All cases
run in one child process (importing the package once), each through ``mobilenet.cli.main``,
under an address-space cap; the child reports each case's exit status, stderr, CPU time and
growth of peak memory.
"""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet import create_model
from mobilenet.card import ModelCard
from mobilenet.weights import save_native

TORCH_LOG = re.compile(r"[IWE]\d{4} ")  # torch's and torchao's own log lines on import (not our messages)
MAX_SECONDS = 5.0  # CPU seconds a refusal may take
MAX_MEMORY_MB = 500  # growth of the child's peak memory a refusal may cause
BOMB_BYTES = 2**28  # what the zip bomb unpacks to (256 MiB of zeros in ~1 MB)
CHILD = """
import contextlib, io, json, resource, sys, time
from mobilenet.cli import main
cap = resource.getrlimit(resource.RLIMIT_AS)
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**30, cap[1]))
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err, before, start = io.StringIO(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    results[name] = {
        "rc": rc, "stderr": err.getvalue(), "seconds": time.process_time() - start,
        "memory_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
    }
print(json.dumps(results))
"""


def _zip_bomb(path: Path) -> None:
    """A state-dict zip whose one tensor entry declares (and deflates to) :data:`BOMB_BYTES` of zeros."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer)
    with zipfile.ZipFile(buffer) as small, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for name in small.namelist():
            if name.endswith("data/0"):
                with out.open(name, "w") as entry:
                    chunk = bytes(2**24)
                    for _ in range(BOMB_BYTES // len(chunk)):
                        entry.write(chunk)
            else:
                out.writestr(name, small.read(name))


def _terabyte_header(path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(64))


def _external_link(path: Path, elsewhere: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(elsewhere, "w") as f:
        f.create_dataset("conv1/kernel:0", data=np.zeros((3, 3, 3, 8), np.float32))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
        f["conv1"] = h5py.ExternalLink(str(elsewhere), "/conv1")


def _tflite_buffer_past_end(path: Path, shared: Path) -> None:
    """Google's 0.25-128 file with every tensor's buffer index set past the last buffer."""
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    source = shared.parent / "weights" / "tflite" / "mobilenet_v1_0.25_128_quant.tflite"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    for tensor in model.subgraphs[0].tensors:
        tensor.buffer = len(model.buffers) + 1000 + tensor.buffer
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def _run_with_links(run: Path, outside: Path) -> None:
    """A run folder whose checkpoint is a link to a native file outside it."""
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=2)
    save_native(model, ModelCard("mobilenet_v1", classes=("a", "b")), outside)
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "best.safetensors").symlink_to(outside)


def _resume_with_link(run: Path, outside: Path) -> None:
    """A run folder whose config.json is a link to a file outside it."""
    outside.write_text(json.dumps({"data": "flowers17", "out": str(run)}))
    run.mkdir()
    (run / "config.json").symlink_to(outside)


class _RunsACommand:
    """Pickled, this object makes the unpickler call ``open(marker, "w")``: the proof that code from a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _pt2_with_pickle(path: Path, marker: Path) -> None:
    """A real ``torch.export`` archive whose weight entry is a pickle that creates ``marker`` when loaded."""
    program = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    clean = io.BytesIO()
    torch.export.save(program, clean, extra_files={"mobilenet.json": "{}"})
    payload = io.BytesIO()
    torch.save(_RunsACommand(marker), payload)
    with zipfile.ZipFile(clean) as archive, zipfile.ZipFile(path, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            if name.endswith("model_weights_config.json"):
                config = json.loads(data)
                config["config"]["weight"]["use_pickle"] = True
                data = json.dumps(config).encode()
            elif name.endswith("weights/weight_0"):
                data = payload.getvalue()
            out.writestr(name, data)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict:
    """Every hostile case run through the command line in one child process."""
    work = tmp_path_factory.mktemp("hostile")
    Image.new("RGB", (32, 32)).save(work / "image.png")
    _zip_bomb(work / "bomb.pt")
    _terabyte_header(work / "huge.safetensors")
    _external_link(work / "linked.h5", work / "elsewhere.h5")
    _tflite_buffer_past_end(work / "buffers.tflite", shared_data)
    _run_with_links(work / "run", work / "outside.safetensors")
    _resume_with_link(work / "resume", work / "outside.json")
    _pt2_with_pickle(work / "pickle.pt2", work / "code-ran")
    convert = ["convert", "--out", str(work / "out.safetensors")]
    cases = {
        "zip_bomb": [*convert, str(work / "bomb.pt")],
        "terabyte_header": [*convert, str(work / "huge.safetensors")],
        "external_link": [*convert, str(work / "linked.h5")],
        "tflite_buffers": [*convert, str(work / "buffers.tflite")],
        "run_link": ["predict", str(work / "image.png"), "--checkpoint", str(work / "run")],
        "resume_link": ["train", "--resume", str(work / "resume")],
        "pt2_pickle": ["predict", str(work / "image.png"), "--exported", str(work / "pickle.pt2")],
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True, timeout=600, check=True
    )
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    results["pt2_pickle"]["code_ran"] = (work / "code-ran").exists()
    results["zip_bomb"]["file_bytes"] = (work / "bomb.pt").stat().st_size
    results["out_written"] = (work / "out.safetensors").exists()
    return results


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("zip_bomb", "zip bomb"),
        ("terabyte_header", "corrupt safetensors"),
        ("external_link", "links to"),
        ("tflite_buffers", "corrupt TFLite"),
        ("run_link", "outside the run folder"),
        ("resume_link", "outside the run folder"),
        ("pt2_pickle", "refused"),
    ],
)
def test_refused_in_one_line(outcomes: dict, case: str, words: str) -> None:
    result = outcomes[case]
    lines = [line for line in result["stderr"].strip().splitlines() if not TORCH_LOG.match(line)]
    assert result["rc"] == 2, result["stderr"]
    assert len(lines) == 1 and words in lines[0], result["stderr"]
    assert result["seconds"] < MAX_SECONDS
    assert result["memory_mb"] < MAX_MEMORY_MB


def test_nothing_from_a_file_ran_or_was_written(outcomes: dict) -> None:
    assert not outcomes["pt2_pickle"]["code_ran"]
    assert not outcomes["out_written"]


def test_zip_bomb_is_one(outcomes: dict) -> None:
    """The bomb unpacks to over 100 times its size: refused before torch inflates it."""
    assert BOMB_BYTES / outcomes["zip_bomb"]["file_bytes"] > 100
