"""Load figures of ``mobilenet serve``, and the per-request overhead of the serving bases considered.

``load``: for each model (V1 1.0-224 and V3-Small, fp32 and int8), first ``mobilenet bench`` of
the same network and backend (batch 1 latency, batch 32 throughput), then ``mobilenet serve`` on
127.0.0.1 driven with the ImageNet sample's JPEGs (``POST /v1/classify``, one image a request) at
concurrency 1, 8, 32 and 128, a fixed number of requests each; then a soak at concurrency 128 that
records the server's memory (RSS) before and after; then SIGTERM, which must end it with status 0.
The queue is ``--max-queue`` images: below it no error is expected, at 128 only ``503``s. The client
runs on the same cores as the server; its CPU time is reported beside the figures.

``bases``: the same trivial echo endpoint on each base that is installed in the running Python
(Starlette + uvicorn, FastAPI + uvicorn, KServe's ``ModelServer`` with the Open Inference
Protocol, LitServe), timed at concurrency 1 and 8 with a small JSON body: the cost a base adds to
every request before any model runs.

Run (the figures of docs/RESULTS.md, loopback only, bounded, stopping by themselves):
    .venv/bin/python benchmarks/serve_load.py load --requests 500 --soak 2000
    .venv/bin/python benchmarks/serve_load.py load --requests 5000 --soak 50000   # the full run
    PY/bin/python benchmarks/serve_load.py bases      # PY: a venv with kserve, litserve, fastapi, uvicorn, aiohttp
Writes docs/results/serve_load.md (``load``) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MOBILENET_DATA") or ROOT.parent / "shared" / "data")
OUT = ROOT / "docs" / "results" / "serve_load.md"
CONCURRENCY = (1, 8, 32, 128)


@dataclass
class Target:
    """A model to serve, and the network + backend ``mobilenet bench`` times for it."""

    name: str
    weights: list[str]
    """Google's TFLite file(s) it is converted from."""
    int8: bool
    bench_model: str
    bench_backend: str
    """``auto`` for fp32: the fastest fp32 backend measured here (``export --format auto``), set by :func:`prepare`."""


def targets() -> list[Target]:
    tflite = DATA.parent / "weights" / "tflite"
    v1 = [str(tflite / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")]
    v1.append(str(tflite / "mobilenet_quant_v1_224_head_layers.tflite"))
    v3 = [str(tflite / "v3-small_224_1.0_uint8.tflite")]
    return [
        Target("V1 1.0-224 fp32", v1, False, "mobilenet_v1", "auto"),
        Target("V1 1.0-224 int8", v1, True, "mobilenet_v1", "onnxruntime-int8"),
        Target("V3-Small fp32", v3, False, "mobilenet_v3_small", "auto"),
        Target("V3-Small int8", v3, True, "mobilenet_v3_small", "onnxruntime-int8"),
    ]


def mobilenet(*args: str) -> list[str]:
    return [sys.executable, "-m", "mobilenet", *args]


def prepare(target: Target, work: Path) -> str:
    """The file to serve: the converted weights exported for the fastest fp32 backend measured here (as
    ``mobilenet serve`` does for weights; the target's ``bench_backend`` is set to it), or their int8
    ONNX export calibrated on the sample."""
    native = work / f"{target.bench_model}.safetensors"
    if not native.exists():
        subprocess.run(mobilenet("convert", *target.weights, "--out", str(native)), check=True)
    if not target.int8:
        out_stem = str(work / target.bench_model)
        command = ("export", "--weights", str(native), "--format", "auto", "--json", "--out", out_stem)
        out = subprocess.run(mobilenet(*command), check=True, capture_output=True)
        exported = json.loads(out.stdout)
        target.bench_backend = exported["choice"]["backend"]
        return exported["out"]
    onnx = work / f"{target.bench_model}_int8.onnx"
    if onnx.exists():
        return str(onnx)
    calib = str(DATA / "imagenet-val-sample")
    command = ("export", "--weights", str(native), "--format", "onnx", "--int8", "--calib-data", calib)
    subprocess.run(mobilenet(*command, "--out", str(onnx)), check=True)
    return str(onnx)


def bench(target: Target, threads: int) -> dict[int, dict]:
    """``mobilenet bench`` rows of the target's network and backend, by batch size."""
    command = ("bench", "--models", target.bench_model, "--backends", target.bench_backend, "--threads", str(threads))
    out = subprocess.run(mobilenet(*command, "--batch", "1,32", "--json"), check=True, capture_output=True, text=True)
    return {row["batch"]: row for row in json.loads(out.stdout)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(url: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{url}/v2/health/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


async def drive(
    url: str, bodies: list[bytes] | None, concurrency: int, requests: int, headers: dict | None = None
) -> dict:
    """``requests`` POSTs of ``bodies`` (round robin; None: GETs) by ``concurrency`` clients."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)

    async def client(http: aiohttp.ClientSession) -> None:
        for i in counter:
            start = time.perf_counter()
            try:
                call = (
                    http.get(url) if bodies is None else http.post(url, data=bodies[i % len(bodies)], headers=headers)
                )
                async with call as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError as err:
                statuses[type(err).__name__] += 1
                continue
            if response.status == 200:
                latencies.append(time.perf_counter() - start)

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(q: float) -> float:
        return 1e3 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "concurrency": concurrency,
        "requests": requests,
        "wall_s": wall,
        "ok_per_s": statuses[200] / wall,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "statuses": dict(statuses),
        "client_cpu_s": after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime,
    }


def load_command(args: argparse.Namespace) -> None:
    images = sorted((DATA / "imagenet-val-sample" / "images").glob("*.JPEG"))
    bodies = [path.read_bytes() for path in images]
    chosen = [t for t in targets() if not args.only or any(word in t.name for word in args.only.split(","))]
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for target in chosen:
            source = prepare(target, args.work or Path(scratch))
            print(f"{target.name}: bench", file=sys.stderr)
            rows = bench(target, args.threads)
            results.append(asyncio.run(load_one(target, source, rows, bodies, args)))
    table = report(results, args)
    print(table)
    OUT.write_text(table + "\n")


async def load_one(
    target: Target, source: str, rows: dict[int, dict], bodies: list[bytes], args: argparse.Namespace
) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flags = ("--port", str(port), "--threads", str(args.threads), "--max-queue", str(args.max_queue))
    server = subprocess.Popen(mobilenet("serve", source, *flags), stderr=subprocess.DEVNULL)
    try:
        await wait_ready(url)
        classify = f"{url}/v1/classify"
        await drive(classify, bodies, 8, 64)  # warm-up
        live = await drive(f"{url}/v2/health/live", None, 1, 500)
        levels = []
        for concurrency in CONCURRENCY:
            print(f"{target.name}: concurrency {concurrency}", file=sys.stderr)
            cpu = cpu_seconds(server.pid)
            level = await drive(classify, bodies, concurrency, args.requests)
            level["server_cpu_s"] = cpu_seconds(server.pid) - cpu
            levels.append(level)
        soak = None
        if args.soak:
            print(f"{target.name}: soak of {args.soak} requests", file=sys.stderr)
            before = rss_mb(server.pid)
            soak = await drive(classify, bodies, 128, args.soak)
            soak |= {"rss_before_mb": before, "rss_after_mb": rss_mb(server.pid)}
        server.send_signal(signal.SIGTERM)
        status = server.wait(120)
    finally:
        server.kill()
    return {"target": target, "bench": rows, "live": live, "levels": levels, "soak": soak, "exit_status": status}


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"`benchmarks/serve_load.py load --requests {args.requests} --soak {args.soak} --threads {args.threads} "
        f"--max-queue {args.max_queue}`; {cpu_model()}; client and server on the same cores.",
        "",
        "| model | backend | bench b1 ms | bench b32 img/s | conc | ok req/s | % of b32 | p50 ms | p90 ms | p99 ms "
        "| statuses | server CPU s | client CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for result in results:
        target, rows = result["target"], result["bench"]
        b1, b32 = rows[1]["median_ms"], rows[32]["images_per_s"]
        for level in result["levels"]:
            lines.append(
                f"| {target.name} | {target.bench_backend} | {b1:.2f} | {b32:.1f} | {level['concurrency']} | "
                f"{level['ok_per_s']:.1f} | {100 * level['ok_per_s'] / b32:.0f}% | {level['p50_ms']:.2f} | "
                f"{level['p90_ms']:.2f} | {level['p99_ms']:.2f} | {level['statuses']} | {level['server_cpu_s']:.1f} | "
                f"{level['client_cpu_s']:.1f} |"
            )
        soak = result["soak"]
        growth = (
            f"soak {soak['requests']} requests at 128: {soak['statuses']}, RSS {soak['rss_before_mb']:.0f} -> "
            f"{soak['rss_after_mb']:.0f} MB ({100 * (soak['rss_after_mb'] / soak['rss_before_mb'] - 1):+.1f}%)"
            if soak
            else "no soak"
        )
        notes.append(
            f"- {target.name}: /v2/health/live p50 {result['live']['p50_ms']:.2f} ms; {growth}; "
            f"exit status after SIGTERM {result['exit_status']}"
        )
    return "\n".join([*lines, "", *notes])


def cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text()
    name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8") if f in flags]
    return f"{name}, {os.cpu_count()} cores, {' '.join(wanted)}"


BASES = {
    "starlette + uvicorn": """
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        import uvicorn
        async def infer(request):
            body = await request.json()
            return JSONResponse({"outputs": body["inputs"]})
        uvicorn.run(Starlette(routes=[Route("/infer", infer, methods=["POST"])]), port=PORT, log_level="warning")
    """,
    "fastapi + uvicorn": """
        from fastapi import FastAPI
        import uvicorn
        app = FastAPI()
        @app.post("/infer")
        async def infer(body: dict) -> dict:
            return {"outputs": body["inputs"]}
        uvicorn.run(app, port=PORT, log_level="warning")
    """,
    "kserve ModelServer (v2)": """
        import kserve
        from kserve import InferResponse, InferOutput
        class Echo(kserve.Model):
            def __init__(self):
                super().__init__("echo")
                self.ready = True
            async def predict(self, request, headers=None, response_headers=None):
                x = request.inputs[0]
                out = InferOutput(name="y", shape=x.shape, datatype=x.datatype, data=x.data)
                return InferResponse(model_name="echo", infer_outputs=[out], response_id=request.id)
        kserve.ModelServer(http_port=PORT, enable_grpc=False, workers=1).start([Echo()])
    """,
    "litserve": """
        import litserve as ls
        class Echo(ls.LitAPI):
            def setup(self, device):
                pass
            def decode_request(self, request):
                return request["inputs"]
            def predict(self, x):
                return x
            def encode_response(self, output):
                return {"outputs": output}
        if __name__ == "__main__":  # LitServe's workers are spawned processes that import this file
            ls.LitServer(Echo(), accelerator="cpu", api_path="/infer").run(port=PORT, generate_client_file=False)
    """,
}
BASE_PATHS = {"kserve ModelServer (v2)": "/v2/models/echo/infer"}
BASE_MODULES = {
    "starlette + uvicorn": "starlette",
    "fastapi + uvicorn": "fastapi",
    "kserve ModelServer (v2)": "kserve",
    "litserve": "litserve",
}


def bases_command(args: argparse.Namespace) -> None:

    body = json.dumps({"id": "1", "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}).encode()
    lines = [
        f"`benchmarks/serve_load.py bases --requests {args.requests}`; {cpu_model()}",
        "",
        "| base | version | c=1 p50 ms | c=1 p90 ms | c=8 req/s |",
        "|---|---|---|---|---|",
    ]
    for name, code in BASES.items():
        module = BASE_MODULES[name]
        if importlib.util.find_spec(module) is None:
            lines.append(f"| {name} | not installed | - | - | - |")
            continue
        version = importlib.metadata.version(module)
        port = free_port()
        script = Path(tempfile.mkdtemp()) / "base.py"
        script.write_text(textwrap.dedent(code).replace("PORT", str(port)))
        server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}{BASE_PATHS.get(name, '/infer')}"
            asyncio.run(wait_port(port))
            headers = {"Content-Type": "application/json"}
            asyncio.run(drive(url, [body], 1, 200, headers))
            one = asyncio.run(drive(url, [body], 1, args.requests, headers))
            eight = asyncio.run(drive(url, [body], 8, args.requests, headers))
            if one["statuses"] != {200: args.requests}:
                raise RuntimeError(f"{name}: {one['statuses']}")
            lines.append(
                f"| {name} | {version} | {one['p50_ms']:.2f} | {one['p90_ms']:.2f} | {eight['ok_per_s']:.0f} |"
            )
        finally:
            server.terminate()
            server.wait(60)
    print("\n".join(lines))


async def wait_port(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await asyncio.sleep(1)  # servers that bind before their workers start
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="mobilenet serve under load, against mobilenet bench")
    load.add_argument("--requests", type=int, default=5000, help="requests at each concurrency (default 5000)")
    load.add_argument("--soak", type=int, default=50000, help="requests of the memory soak at concurrency 128")
    load.add_argument("--threads", type=int, default=os.cpu_count(), help="server and bench threads")
    load.add_argument("--max-queue", type=int, default=64, help="the server's queue (images)")
    load.add_argument(
        "--work", type=Path, help="keep the converted and exported models here (default: a temporary folder)"
    )
    load.add_argument("--only", help="comma-separated words that pick models by name (e.g. V1,fp32)")
    bases = sub.add_parser("bases", help="per-request overhead of the serving bases installed here")
    bases.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if args.command == "load":
        load_command(args)
    else:
        bases_command(args)


if __name__ == "__main__":
    main()
