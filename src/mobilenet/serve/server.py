"""Running the application with uvicorn: loopback by default, graceful shutdown on SIGTERM."""

from __future__ import annotations

import logging
import signal

import torch
import uvicorn

from mobilenet.serve.app import create_app
from mobilenet.serve.config import ServeConfig
from mobilenet.serve.service import Service

MAX_CONNECTIONS = 1024
"""Open connections beyond this are answered 503 by uvicorn (the queue bounds the images in work)."""
KEEP_ALIVE_S = 5


def build_server(config: ServeConfig) -> tuple[uvicorn.Server, Service]:
    """The uvicorn server of ``config``'s models and their service (a failure to load stops the server)."""
    server: uvicorn.Server | None = None

    def stop() -> None:
        assert server is not None
        server.should_exit = True

    service = Service(config, on_fatal=stop)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service),
            host=config.host,
            port=config.port,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=config.shutdown_timeout_s,
            access_log=False,
            log_level="info",
        )
    )
    return server, service


def serve(config: ServeConfig) -> None:
    """Serve ``config``'s models until SIGTERM or SIGINT.

    SIGTERM stops accepting connections, lets in-flight requests finish (for at most
    ``config.shutdown_timeout_s``) and returns; SIGINT does the same, then raises
    ``KeyboardInterrupt``. If a model cannot be loaded the server never becomes ready, stops, and
    the reason is raised as a :class:`mobilenet.errors.ConfigError`.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    server, service = build_server(config)
    # uvicorn re-raises the signal it stopped for once it has shut down: SIGTERM then ends here, with status 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if service.failure is not None:
        raise service.failure
