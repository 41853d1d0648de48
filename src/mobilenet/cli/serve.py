"""``mobilenet serve``: an HTTP inference service (web page, JSON API, Open Inference Protocol, metrics)."""

from __future__ import annotations

import argparse
import os

from mobilenet.errors import ConfigError
from mobilenet.serve.backends import BACKENDS, check_model_name, model_name
from mobilenet.serve.config import TOKEN_ENV, ServeConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``."""
    defaults = ServeConfig({"model": "-"})
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP: a web page, /v1/classify, the Open Inference Protocol (/v2), /metrics",
        description="Serve a run folder, weights file or exported file (anything `mobilenet predict` takes). "
        "SIGTERM stops accepting and finishes the requests in flight.",
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="run folder, weights file or tag, .onnx / .pte / .pt2")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="serve SOURCE as NAME (repeat for several models)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: an exported file's runtime; for weights, the fastest fp32 runtime measured here (cached)",
    )
    p.add_argument("--host", default=defaults.host, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=defaults.port)
    p.add_argument("--max-batch", type=int, default=defaults.max_batch, help="images per model call")
    p.add_argument(
        "--max-delay-ms",
        type=float,
        default=defaults.max_delay_ms,
        help="longest wait for images still being decoded before a batch runs",
    )
    p.add_argument(
        "--max-queue", type=int, default=defaults.max_queue, help="images waiting per model; beyond: 503 + Retry-After"
    )
    p.add_argument("--workers", type=int, default=defaults.workers, help="instances of each model, each in its thread")
    p.add_argument("--threads", type=int, help="intra-op and decoding threads (default: all cores)")
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token required on every route but liveness (${TOKEN_ENV})",
    )
    p.add_argument(
        "--max-body-mb", type=float, default=defaults.max_body_bytes / 2**20, help="request body limit (413)"
    )
    p.set_defaults(run=run)


def models(source: str | None, named: list[str]) -> dict[str, str]:
    """Model names to sources, from SOURCE and the ``--model NAME=SOURCE`` flags."""
    chosen: dict[str, str] = {}
    pairs = [(model_name(source), source)] if source else []
    for item in named:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--model takes NAME=SOURCE, got {item!r}")
        pairs.append((check_model_name(name), path))
    for name, path in pairs:
        if name in chosen:
            raise ConfigError(f"two models are called {name!r}: name them with --model NAME=SOURCE")
        chosen[name] = path
    return chosen


def run(args: argparse.Namespace) -> int:
    try:
        from mobilenet.serve.server import serve
    except ImportError as err:
        raise ConfigError(f"{err.name} is not installed: pip install 'mobilenet[serve]'") from err
    config = ServeConfig(
        models(args.source, args.model),
        backend=args.backend,
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        max_queue=args.max_queue,
        workers=args.workers,
        threads=args.threads,
        token=args.token or None,
        max_body_bytes=int(args.max_body_mb * 2**20),
    )
    serve(config)
    return 0
