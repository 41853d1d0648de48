"""``mobilenet serve`` in this process: both APIs against ``mobilenet predict``, errors, limits, metrics, the page."""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenet.errors import ConfigError
from mobilenet.inference import Predictor
from mobilenet.load import load

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
requests = pytest.importorskip("requests")

from mobilenet.serve import ServeConfig, backends  # noqa: E402 (after the skip when the extra is missing)
from mobilenet.serve.backends import choose_backend, model_name  # noqa: E402
from mobilenet.serve.protocol import ProtocolError, parse_infer  # noqa: E402
from mobilenet.serve.server import build_server  # noqa: E402

READ_TIMEOUT_S = 1.0
MAX_BODY = 2 * 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(config: ServeConfig, headers: dict[str, str] | None = None) -> Iterator[str]:
    """The server of ``config`` in a thread of this process, once ready; stopped after."""
    server, service = build_server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and service.failure is None:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/v2/health/ready", headers=headers, timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the server did not become ready: {service.failure}")
        yield url
    finally:
        server.should_exit = True
        thread.join(60)


def image_bytes(name: str, shared: Path | None) -> bytes:
    """A test image: one of ``../shared/data/images``, else a generated JPEG."""
    if shared is not None:
        return (shared / "images" / name).read_bytes()
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shared_or_none() -> Path | None:
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="module")
def parrot(shared_or_none: Path | None) -> bytes:
    return image_bytes("parrot.jpg", shared_or_none)


@pytest.fixture(scope="module")
def server(serve_source: str, one_thread: None) -> Iterator[str]:
    config = ServeConfig(
        {"m": serve_source},
        backend="eager",
        port=free_port(),
        max_batch=4,
        max_queue=8,
        threads=1,
        read_timeout_s=READ_TIMEOUT_S,
        max_body_bytes=MAX_BODY,
    )
    with running(config) as url:
        yield url


@pytest.fixture(scope="module")
def expected(serve_source: str, parrot: bytes, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What ``mobilenet predict`` says of the test image (its top-5)."""
    path = tmp_path_factory.mktemp("predict") / "parrot.jpg"
    path.write_bytes(parrot)
    return next(Predictor(*load(serve_source)).predict_files([path])).topk


def test_classify_body_and_multipart_match_predict(server: str, parrot: bytes, expected: list[dict]) -> None:
    body = requests.post(f"{server}/v1/classify", data=parrot, timeout=30).json()
    assert body["model"] == "m" and body["backend"] == "eager"
    top = body["results"][0]["topk"]
    assert [t["index"] for t in top] == [t["index"] for t in expected]
    assert top[0]["prob"] == pytest.approx(expected[0]["prob"], abs=1e-5)
    assert 0 < body["timings"]["inference_ms"] <= body["timings"]["total_ms"]
    files = [("a", ("one.jpg", parrot)), ("b", ("two.jpg", parrot))]
    body = requests.post(f"{server}/v1/classify?topk=2", files=files, timeout=30).json()
    assert [r["file"] for r in body["results"]] == ["one.jpg", "two.jpg"]
    assert all(len(r["topk"]) == 2 and r["topk"][0]["index"] == expected[0]["index"] for r in body["results"])


def test_classify_names_macaw(server: str, shared_data: Path) -> None:
    body = requests.post(f"{server}/v1/classify", data=(shared_data / "images" / "parrot.jpg").read_bytes(), timeout=30)
    assert body.json()["results"][0]["topk"][0]["label"] == "macaw"


def test_tritonclient_gets_the_top1_of_predict(server: str, parrot: bytes, expected: list[dict]) -> None:
    """A client none of us wrote, in its default binary mode and in JSON (base64 images)."""
    http = pytest.importorskip("tritonclient.http")
    client = http.InferenceServerClient(server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("m")
    assert client.get_model_metadata("m")["outputs"][0]["name"] == "probabilities"
    for binary in (True, False):
        image = http.InferInput("image", [2], "BYTES")
        data = [parrot, parrot] if binary else [base64.b64encode(parrot)] * 2
        image.set_data_from_numpy(np.array(data, dtype=np.object_), binary_data=binary)
        wanted = [
            http.InferRequestedOutput("probabilities", binary_data=binary, class_count=3),
        ]
        result = client.infer("m", [image], outputs=wanted).as_numpy("probabilities")
        assert result.shape == (2, 3)
        first = result[0, 0].decode() if isinstance(result[0, 0], bytes) else result[0, 0]
        prob, index, label = first.split(":", 2)
        assert (int(index), label) == (expected[0]["index"], expected[0]["label"])
        assert float(prob) == pytest.approx(expected[0]["prob"], abs=1e-5)
        probs = client.infer("m", [image]).as_numpy("probabilities")
        assert probs.argmax(1).tolist() == [expected[0]["index"]] * 2


def test_v2_tensor_input_and_its_errors(server: str, serve_source: str) -> None:
    http = pytest.importorskip("tritonclient.http")
    utils = pytest.importorskip("tritonclient.utils")
    _, card = load(serve_source)
    size, chans = card.input_size, card.in_chans
    x = torch.randn(2, chans, size, size, generator=torch.Generator().manual_seed(0))
    client = http.InferenceServerClient(server.removeprefix("http://"))
    tensor = http.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.numpy())
    probs = client.infer("m", [tensor]).as_numpy("probabilities")
    assert torch.allclose(torch.tensor(probs), Predictor(*load(serve_source)).probabilities(x), atol=1e-5)
    for shape, dtype in (([2, chans, size - 1, size], "FP32"), ([2, chans, size, size], "FP16")):
        bad = http.InferInput("input", shape, dtype)
        bad.set_data_from_numpy(np.zeros(shape, np.float32 if dtype == "FP32" else np.float16))
        with pytest.raises(utils.InferenceServerException, match="400"):
            client.infer("m", [bad])
    with pytest.raises(utils.InferenceServerException, match="404"):
        client.infer("nope", [tensor])


def jpeg_bomb(parrot: bytes) -> bytes:
    """A JPEG whose header claims 60000 x 60000 pixels (over Pillow's decompression-bomb limit)."""
    data = bytearray(parrot)
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    struct.pack_into(">HH", data, i + 5, 60000, 60000)
    return bytes(data)


def test_bad_requests_are_json_errors_and_the_server_keeps_serving(server: str, parrot: bytes) -> None:
    cases = [
        ("/v1/classify", b"not an image", 400, "not an image format"),
        ("/v1/classify", parrot[:300], 400, "runcated"),
        ("/v1/classify", jpeg_bomb(parrot), 400, "decompression bomb"),
        ("/v1/classify", b"", 400, "empty"),
        ("/v1/classify?model=nope", parrot, 404, "no model 'nope'"),
        ("/v1/classify?topk=0", parrot, 400, "topk"),
        ("/v1/classify", b"x" * (MAX_BODY + 1), 413, "limit"),
        ("/v2/models/m/infer", b"{not json", 400, "not JSON"),
        (
            "/v2/models/m/infer",
            b'{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            400,
            "BYTES",
        ),
        ("/nowhere", b"", 404, "Not Found"),
    ]
    for path, data, status, message in cases:
        response = requests.post(f"{server}{path}", data=data, timeout=30)
        assert response.status_code == status, path
        assert message in response.json()["error"], (path, response.text)
        assert "Traceback" not in response.text
    files = [("f", (f"{i}.jpg", image_bytes("small", None))) for i in range(9)]
    response = requests.post(f"{server}/v1/classify", files=files, timeout=30)
    assert response.status_code == 413 and "at most 8" in response.json()["error"]
    assert requests.post(f"{server}/v1/classify", data=parrot, timeout=30).status_code == 200


def test_health_and_metrics(server: str, parrot: bytes) -> None:
    assert requests.get(f"{server}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{server}/v2/models/m/ready", timeout=5).json()["ready"] is True
    assert requests.get(f"{server}/v2/models/x/ready", timeout=5).status_code == 404
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: requests.post(f"{server}/v1/classify", data=parrot, timeout=60).status_code, range(8))
        )
    assert statuses == [200] * 8
    text = requests.get(f"{server}/metrics", timeout=5).text
    values = metric_values(text)
    assert values['mobilenet_requests_total{route="/v1/classify",status="200"}'] >= 8
    assert values['mobilenet_batch_size_sum{model="m"}'] >= 8
    assert values['mobilenet_batch_size_count{model="m"}'] <= values['mobilenet_batch_size_sum{model="m"}']
    assert values['mobilenet_model_load_seconds{model="m"}'] > 0
    assert values['mobilenet_queue_depth{model="m"}'] == 0
    assert values["mobilenet_inflight_requests"] == 1  # this one
    assert 'mobilenet_request_seconds_bucket{le="0.1",route="/v1/classify"}' in values


def metric_values(text: str) -> dict[str, float]:
    """Prometheus text format as ``{"name{labels}": value}``."""
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: float(value) for key, value in pairs}


def raw_request(url: str, path: str, length: int, body: bytes) -> socket.socket:
    """A socket that has sent the headers of a POST of ``length`` bytes and then only ``body``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode() + body)
    return sock


def test_slow_and_vanishing_clients_do_not_hold_up_others(server: str, parrot: bytes) -> None:
    slow = raw_request(server, "/v1/classify", len(parrot), parrot[:1000])
    gone = raw_request(server, "/v1/classify", len(parrot), parrot[:1000])
    gone.close()  # a client that disconnects mid-upload
    start = time.monotonic()
    assert requests.post(f"{server}/v1/classify", data=parrot, timeout=30).status_code == 200
    assert time.monotonic() - start < READ_TIMEOUT_S
    reply = slow.recv(4096).decode()
    slow.close()
    assert reply.startswith("HTTP/1.1 408") and "too slowly" in reply
    assert time.monotonic() - start >= READ_TIMEOUT_S * 0.9
    values = metric_values(requests.get(f"{server}/metrics", timeout=5).text)
    assert values['mobilenet_requests_total{route="/v1/classify",status="499"}'] >= 1
    assert requests.post(f"{server}/v1/classify", data=parrot, timeout=30).status_code == 200


def test_the_page_is_self_contained(server: str) -> None:
    page = requests.get(server, timeout=5).text
    assert "<script>" in page and "v1/classify" in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


def test_two_models_a_token_and_a_full_queue(serve_source: str, parrot: bytes, one_thread: None) -> None:
    """Every route but liveness needs the token; a full queue answers only 503 with Retry-After."""
    token = {"Authorization": "Bearer s3cret"}
    models = {"m": serve_source, "n": serve_source}
    config = ServeConfig(models, "eager", port=free_port(), max_batch=1, max_queue=1, threads=1, token="s3cret")
    with running(config, token) as url:
        assert requests.get(f"{url}/v2/health/live", timeout=5).status_code == 200
        for path in ("/", "/v2/health/ready", "/metrics", "/v1/models", "/v2/models/m"):
            assert requests.get(f"{url}{path}", timeout=5).status_code == 401, path
            assert requests.get(f"{url}{path}", headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
        assert "Basic" in requests.get(url, timeout=5).headers["WWW-Authenticate"]
        assert requests.get(url, auth=("anyone", "s3cret"), timeout=5).status_code == 200
        assert requests.post(f"{url}/v1/classify", data=parrot, timeout=5).status_code == 401
        unnamed = requests.post(f"{url}/v1/classify", data=parrot, headers=token, timeout=30)
        assert unnamed.status_code == 404 and "name one (m, n)" in unnamed.json()["error"]
        assert requests.get(f"{url}/v2/models/n/ready", headers=token, timeout=5).json()["ready"] is True
        listed = requests.get(f"{url}/v1/models", headers=token, timeout=5).json()["models"]
        assert [m["name"] for m in listed] == ["m", "n"]

        def post(i: int) -> requests.Response:
            return requests.post(f"{url}/v1/classify?model={'mn'[i % 2]}", data=parrot, headers=token, timeout=60)

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(post, range(32)))
        statuses = {r.status_code for r in responses}
        assert statuses == {200, 503}
        assert all(r.headers["Retry-After"] == "1" for r in responses if r.status_code == 503)
        assert requests.get(f"{url}/v2/health/ready", headers=token, timeout=5).status_code == 200


def test_backend_choice_and_names(tmp_path: Path) -> None:
    assert choose_backend("weights.tflite") == "auto"  # measured when loaded
    assert choose_backend("weights.tflite", "openvino") == "openvino"
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert choose_backend(str(tmp_path / "m.onnx")) == "onnxruntime"
    with pytest.raises(ConfigError, match="cannot run on openvino"):
        choose_backend(str(tmp_path / "m.onnx"), "openvino")
    with pytest.raises(ConfigError, match="unknown backend"):
        choose_backend("weights.tflite", "tensorrt")
    assert model_name("../w/mobilenet_v1_0.75_192_quant.tflite") == "mobilenet_v1_0.75_192_quant"
    assert model_name("runs/my run/") == "my_run"
    with pytest.raises(ConfigError, match="model name"):
        ServeConfig({"../etc": "x"})
    with pytest.raises(ConfigError, match="--max-queue"):
        ServeConfig({"m": "x"}, max_queue=0)


def test_weights_are_served_on_the_measured_runtime(
    serve_source: str, parrot: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """``auto`` exports weights for the fastest fp32 runtime measured here (stubbed: ONNX Runtime), once."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MOBILENET_CACHE", str(tmp_path))
    asked = []

    def fastest(model: torch.nn.Module, precision: str, **kwargs: object) -> SimpleNamespace:
        asked.append(precision)
        return SimpleNamespace(export_format="onnx", describe=lambda: "onnxruntime (stub)")

    monkeypatch.setattr(backends, "pick_backend", fastest)
    served = backends.load_served(serve_source, "auto", threads=1)
    assert asked == ["fp32"] and served.backend == "onnxruntime"
    (exported,) = (tmp_path / backends.EXPORTS_DIR).glob("*.onnx")
    made = exported.stat().st_mtime_ns
    photo = tmp_path / "parrot.jpg"
    photo.write_bytes(parrot)
    (ours,) = served.predictor.predict_files([photo])
    (eager,) = Predictor(*load(serve_source)).predict_files([photo])
    assert [p["label"] for p in ours.topk] == [p["label"] for p in eager.topk]
    assert ours.topk[0]["prob"] == pytest.approx(eager.topk[0]["prob"], abs=1e-3)
    again = backends.load_served(serve_source, "onnxruntime", threads=1)
    assert again.backend == "onnxruntime" and exported.stat().st_mtime_ns == made
    assert list((tmp_path / backends.EXPORTS_DIR).iterdir()) == [exported]


def test_protocol_rejects_malformed_binary_data(serve_source: str) -> None:
    _, card = load(serve_source)
    head = b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 10}}]}'
    with pytest.raises(ProtocolError, match="binary_data_size 10"):
        parse_infer(head + b"\x05\x00\x00\x00ab", str(len(head)), card)
    with pytest.raises(ProtocolError, match="cut short"):
        parse_infer(head + b"\x09\x00\x00\x00abcdef", str(len(head)), card)
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length"):
        parse_infer(head, "many", card)


def test_browser_uploads_a_photo_and_reads_macaw(server: str, shared_data: Path) -> None:
    """Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) drives the page."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium / chromedriver not installed (make test installs them where apt is available)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        driver.get(server)
        driver.find_element(By.ID, "files").send_keys(str(shared_data / "images" / "parrot.jpg"))
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result .latency"))
        first = driver.find_element(By.CSS_SELECTOR, ".result .bar.first")
        assert first.get_attribute("data-label") == "macaw" and "macaw" in first.text
        assert "mobilenet_v1" in driver.find_element(By.ID, "card").text
    finally:
        driver.quit()


def test_the_kserve_manifest_runs_this_server() -> None:
    """docs/serving.md's InferenceService: its command parses, binds the container port, probes real routes."""
    yaml = pytest.importorskip("yaml")
    from mobilenet.cli import build_parser
    from mobilenet.cli.serve import models
    from mobilenet.serve.app import create_app
    from mobilenet.serve.service import Service

    text = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    manifest = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert manifest["kind"] == "InferenceService"
    container = manifest["spec"]["predictor"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert container["command"] == ["mobilenet"] and args.command == "serve"
    assert (args.host, args.port) == ("0.0.0.0", container["ports"][0]["containerPort"])
    names = models(args.source, args.model)
    assert list(names) == ["mobilenet"]
    routes = {route.path for route in create_app(Service(ServeConfig({"mobilenet": "model.tflite"}))).routes}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
        assert container[probe]["httpGet"]["port"] == args.port
