"""Fuzzed readers: a short seeded run of every target of benchmarks/fuzz.py, and each crash it found, fixed.

A finding is any exception other than the project's one-line errors, a case over 5 s of CPU, or
one that raises peak memory by over 2 GB (see benchmarks/fuzz.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import resource
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.data.images import load_image
from mobilenet.errors import BadImageError, ConfigError, ExportError, MobileNetError, WeightsError
from mobilenet.export.runtime import read_exported_card
from mobilenet.training import resume_config
from mobilenet.weights.formats import read_torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "fuzz.py"
EXAMPLES = 120  # a seeded run of each target: about a second or two
CHILD_EXAMPLES = {"keras_h5": 12}  # a process per case (keras_h5_parser runs the same code in process)


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz_module()


@pytest.mark.parametrize("name", sorted(fuzz.TARGETS))
def test_seeded_fuzz_finds_nothing(name: str, tmp_path: Path, one_thread: None) -> None:
    spec = fuzz.TARGETS[name]
    if not spec.seeds(tmp_path):
        pytest.skip(f"{name}: its seed files come from ../shared, which is absent")
    examples = CHILD_EXAMPLES.get(name, EXAMPLES)
    recorder = fuzz.worker_hypothesis(spec, tmp_path, seconds=60, seed=0, examples=examples)
    assert recorder.cases == examples
    assert [f"{f.kind}: {f.signature}: {f.message}" for f in recorder.findings.values()] == []


def test_a_crash_is_a_finding(tmp_path: Path) -> None:
    """The harness tells a traceback from the project's one-line errors, so the test above can fail."""
    broken = fuzz.Target("broken", ".txt", lambda work: [b"x"], lambda path: path.read_bytes()[5], ())
    refusing = fuzz.Target("refusing", ".txt", lambda work: [b"x"], fuzz._read_labels, ())
    baseline = fuzz.peak_mb()
    finding = fuzz.check_case(broken, b"abc", tmp_path / "case.txt", baseline)
    assert finding is not None and finding.kind == "crashes" and finding.signature.startswith("IndexError")
    assert fuzz.check_case(refusing, b"\xff\xfe", tmp_path / "case.txt", baseline) is None


@pytest.mark.slow
def test_script_contract(tmp_path: Path) -> None:
    """``fuzz.py --seconds S --targets LIST`` ends with one JSON line of counts per target."""
    command = [sys.executable, str(SCRIPT), "--seconds", "1", "--targets", "labels", "--work", str(tmp_path)]
    command += ["--engine", "hypothesis"]  # atheris instruments the package on start-up: slower to begin
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"labels"}
    counts = result["labels"]
    assert counts["cases"] > 0
    assert {counts[kind] for kind in ("crashes", "hangs", "memory", "multiline")} == {0}


# ---- regression tests: each crash the fuzzer found -----------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo[MobileNetError]) -> str:
    message = str(err.value)
    assert "\n" not in message.strip()
    return message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"", "not a readable config.json"),  # JSONDecodeError
        (b'{"epochs": 3,\n "lr": 0.1\xed}', "not a readable config.json"),  # UnicodeDecodeError
        (b"[" * 100_000, "not a readable config.json"),  # RecursionError
        (b"[1, 2]", "expected a JSON object"),
        (b'{"epochs": "ten"}', "epochs is 'ten'"),
        (b'{"lr": true}', "lr is True"),
    ],
)
def test_config_json_errors(tmp_path: Path, text: bytes, words: str) -> None:
    (tmp_path / "config.json").write_bytes(text)
    with pytest.raises(ConfigError) as err:
        resume_config(tmp_path)
    assert words in _one_line(err)


def test_config_json_accepts_ints_for_floats(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"data": "d", "out": "o", "lr": 1, "dropout": None}))
    config = resume_config(tmp_path)
    assert (config.lr, config.dropout) == (1, None)


def test_pte_card_not_utf8(tmp_path: Path) -> None:
    program = tmp_path / "model.pte"
    program.write_bytes(b"\0\0\0\0ET12")
    from mobilenet.export.executorch_export import sidecar

    sidecar(program).write_bytes(b'{"arch": "\xc5"}')
    with pytest.raises(ExportError) as err:
        read_exported_card(program)
    assert "not UTF-8" in _one_line(err)


@pytest.mark.parametrize("text", ['{"arch": "mobilenet_v1", "card_version": 2, "input_size": Infinity}', "[" * 100_000])
def test_pte_card_malformed_json(tmp_path: Path, text: str) -> None:
    """int(Infinity) (OverflowError) and nesting past the JSON parser's depth (RecursionError)."""
    program = tmp_path / "model.pte"
    program.write_bytes(b"\0\0\0\0ET12")
    from mobilenet.export.executorch_export import sidecar

    sidecar(program).write_text(text)
    with pytest.raises(ExportError):
        read_exported_card(program)


def _dds_with_unknown_pixel_format(path: Path) -> None:
    Image.new("RGB", (4, 4)).save(path, format="DDS")
    data = bytearray(path.read_bytes())
    data[80:84] = bytes(4)  # DDS_PIXELFORMAT.dwFlags: Pillow raises NotImplementedError
    path.write_bytes(bytes(data))


def _avif_without_image(path: Path) -> None:
    Image.new("RGB", (8, 8)).save(path, format="AVIF")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make", [_dds_with_unknown_pixel_format, _avif_without_image])
def test_images_pillow_failures_are_bad_images(tmp_path: Path, make) -> None:
    path = tmp_path / "image.img"
    try:
        make(path)
    except (KeyError, OSError) as err:  # a Pillow built without this writer
        pytest.skip(f"Pillow cannot write this format here: {err}")
    with pytest.raises(BadImageError) as err:
        load_image(path)
    assert str(path) in _one_line(err)


def _torch_zip(pickle_bytes: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


BAD_UTF8_PICKLE = b"\x80\x02X\x02\x00\x00\x00\xff\xfeq\x00."  # protocol 2, BINUNICODE of invalid UTF-8


@pytest.mark.parametrize("data", [_torch_zip(BAD_UTF8_PICKLE), BAD_UTF8_PICKLE], ids=["zip", "legacy"])
def test_torch_pickle_with_bad_utf8(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "state.pt"
    path.write_bytes(data)
    with pytest.raises(WeightsError) as err:
        read_torch(path)
    assert "corrupt PyTorch file" in _one_line(err)


def test_torch_zip_of_unknown_version(tmp_path: Path) -> None:
    """zipfile refuses an entry needing zip version 12.8 with NotImplementedError."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    data = bytearray(buffer.getvalue())
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # every central directory record: "version needed to extract" = 12.8
        data[at + 6 : at + 8] = (128).to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    path = tmp_path / "state.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        read_torch(path)
    assert "corrupt" in _one_line(err)


def test_images_seed_files_decode(tmp_path: Path) -> None:
    """The image seeds are real pictures in many formats (the fuzzer starts from files that decode)."""
    seeds = fuzz.images(tmp_path)
    decoded = 0
    for data in seeds:
        path = tmp_path / "seed.img"
        path.write_bytes(data)
        try:
            image = load_image(path)
        except BadImageError:
            continue
        decoded += 1
        assert image.dtype == torch.uint8 and image.shape[0] == 3
    assert decoded >= 10 and np.isclose(decoded / len(seeds), 1.0, atol=0.5)


@pytest.mark.parametrize("arch", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small"])
def test_state_dict_with_a_block_key_not_numbered(tmp_path: Path, arch: str) -> None:
    """``blocks.0wbn.x`` made int() raise ValueError where the architectures recognise their state dicts."""
    from safetensors.torch import save_file

    from mobilenet import create_model
    from mobilenet.weights import load_weights

    state = {k: v.contiguous() for k, v in create_model(arch, num_classes=2).state_dict().items()}
    save_file({**state, "blocks.0wbn.x": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError) as err:
        load_weights(tmp_path / "w.safetensors")
    assert "blocks.0wbn.x" in _one_line(err) or "not any known architecture" in _one_line(err)


@pytest.mark.parametrize("text", ['{"kwargs": {}, "in_chans": null}', '{"arch": {}, "mean": "x", "in_chans": 1}'])
def test_card_of_earlier_files_with_wrong_types(tmp_path: Path, text: str) -> None:
    """The metadata of files written before cards existed: ``int(None)`` raised TypeError."""
    program = tmp_path / "model.pte"
    program.write_bytes(b"\0\0\0\0ET12")
    from mobilenet.export.executorch_export import sidecar

    sidecar(program).write_text(text)
    with pytest.raises(ExportError) as err:
        read_exported_card(program)
    assert "malformed model card" in _one_line(err)


def test_keras_reads_variable_length_names_in_a_bounded_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """h5py writes a list of names as variable-length strings (Keras 3 files have them); a damaged one kept
    libhdf5 busy for minutes in native code, so the read runs in a child process with a time limit."""
    h5py = pytest.importorskip("h5py")
    from mobilenet.weights import keras

    path = tmp_path / "vlen.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv1"]  # variable-length, as h5py 3 stores a list
        f.create_group("conv1")["kernel:0"] = np.ones((1, 1, 3, 8), np.float32)
    assert keras.read_keras(path)["conv1/kernel"].sum() == 24
    slow = tmp_path / "slow_reader.py"
    slow.write_text("import time\ntime.sleep(60)\n")  # stands for libhdf5 stuck in native code
    monkeypatch.setattr(keras, "READER", slow)
    monkeypatch.setattr(keras, "READ_SECONDS", 1)
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        keras.read_keras(path)
    assert _one_line(err) == f"{path}: refused: HDF5 did not finish reading it in 1 s"
    assert time.monotonic() - start < 10
    greedy = tmp_path / "greedy_reader.py"
    greedy.write_text(
        "import resource, sys\nlimit = int(sys.argv[3])\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\nb = bytearray(2 * limit)\n"
    )
    monkeypatch.setattr(keras, "READER", greedy)
    with pytest.raises(WeightsError) as err:
        keras.read_keras(path)
    assert "the HDF5 reader failed (MemoryError)" in _one_line(err)


def test_infer_request_with_non_ascii_base64_is_a_400(tmp_path: Path) -> None:
    """``base64.b64decode`` raises ValueError, not binascii.Error, for characters outside ASCII."""
    pytest.importorskip("starlette")
    body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["caf\u00e9"]}]})
    case = tmp_path / "case.req"
    case.write_bytes(b"-\n" + body.encode())
    with pytest.raises(ConfigError, match="400: input 'image': an element is not valid base64"):
        fuzz.TARGETS["infer_request"].read(case)


def test_tflite_scale_vector_longer_than_the_file_is_refused_unallocated(tmp_path: Path) -> None:
    """A quantization claiming 845M scales without zero points made the reader allocate 6.3 GiB of zeros."""
    seeds = fuzz.tflite(tmp_path)
    if not seeds:
        pytest.skip("the seed comes from ../shared, which is absent")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    flatbuffers = pytest.importorskip("flatbuffers")
    model = schema.ModelT.InitFromPackedBuf(seeds[0], 0)
    weights = model.subgraphs[0].tensors[model.subgraphs[0].operators[0].inputs[1]]
    marker = [1.25, 2.5, 3.75]
    weights.quantization.scale, weights.quantization.zeroPoint = marker, None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    packed = bytes(builder.Output())
    vector = struct.pack("<I3f", 3, *marker)
    assert packed.count(vector) == 1
    path = tmp_path / "claims.tflite"
    path.write_bytes(packed.replace(vector, struct.pack("<I3f", 845_112_370, *marker)))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        in_use = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (in_use + 2**31, hard))  # 2 GiB more: the 6.3 GiB would fail
    try:
        with pytest.raises(WeightsError) as err:
            fuzz.TARGETS["tflite"].read(path)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert "truncated or corrupt TFLite file (ValueError: buffer is smaller than requested size)" in _one_line(err)


KERAS_SEED_SHA256 = "5ff356bfcaf427407ce1f2440cfd9e0a809fec1d52cab20d94755d232b32b404"
"""The whole-model Keras seed of benchmarks/fuzz.py as this h5py / libhdf5 writes it."""
KERAS_GREEDY_PATCH = {1939: 247, 2922: 4, 11564: 48, 11993: 163, 12553: 53, 14984: 44}
"""Six bytes the fuzzer changed in that seed (offset: new value): libhdf5 then allocated 4 GB before failing."""


def test_keras_file_that_makes_libhdf5_allocate_gigabytes_is_refused_within_2_gb(tmp_path: Path) -> None:
    """The child reader's address space is capped at 2 GiB: the read fails at the cap, in one line."""
    pytest.importorskip("h5py")
    from mobilenet.weights import keras

    seed = fuzz.keras_h5(tmp_path)[1]
    if hashlib.sha256(seed).hexdigest() != KERAS_SEED_SHA256:
        pytest.skip("another h5py / libhdf5 writes the seed differently: the saved byte changes do not apply")
    damaged = bytearray(seed)
    for offset, value in KERAS_GREEDY_PATCH.items():
        damaged[offset] = value
    path = tmp_path / "greedy.h5"
    path.write_bytes(bytes(damaged))
    assert keras.READ_MEMORY <= 2 * 2**30
    with pytest.raises(WeightsError) as err:
        keras.read_keras(path)
    assert _one_line(err).endswith("(memory allocation failed for chunk))")  # stopped by the cap, not after 4 GB
