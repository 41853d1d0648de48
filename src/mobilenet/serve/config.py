"""What ``mobilenet serve`` takes, checked (no server dependency is needed to read it)."""

from __future__ import annotations

from dataclasses import dataclass

from mobilenet.errors import ConfigError
from mobilenet.serve.backends import check_model_name, choose_backend

TOKEN_ENV = "MOBILENET_SERVE_TOKEN"
"""The environment variable that sets the bearer token when ``--token`` is not given."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``mobilenet serve`` takes: the models (name -> source) and how to serve them."""

    models: dict[str, str]
    backend: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_delay_ms: float = 5.0
    max_queue: int = 256
    """Images admitted and not yet running, over all requests of a model; beyond it: 503."""
    workers: int = 1
    """Instances of each model, each running its batches in its own thread."""
    threads: int | None = None
    """Intra-op threads (PyTorch's, each ONNX Runtime model's) and image-decoding threads; None: all cores."""
    token: str | None = None
    max_body_bytes: int = 20 * 2**20
    read_timeout_s: float = 30.0
    """Longest wait for the next piece of a request body (a slow or silent client gets 408)."""
    shutdown_timeout_s: float = 30.0
    """Longest wait for in-flight requests after SIGTERM."""
    topk: int = 5

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("no model to serve: pass a SOURCE or --model NAME=SOURCE")
        for name, source in self.models.items():
            check_model_name(name)
            choose_backend(source, self.backend)
        positive = {"max-batch": self.max_batch, "max-queue": self.max_queue, "workers": self.workers}
        for flag, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{flag} must be at least 1, got {value}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.max_delay_ms < 0:
            raise ConfigError(f"--max-delay-ms must be 0 or more, got {self.max_delay_ms}")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"--port must be 0-65535, got {self.port}")
