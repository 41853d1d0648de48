"""The server's Prometheus metrics, in a registry of its own (``/metrics``)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests by route and status, latency, batch sizes, queue depth, in-flight requests, model load time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mobilenet_requests", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "mobilenet_request_seconds", "HTTP request latency by route", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge("mobilenet_inflight_requests", "HTTP requests being served", registry=r)
        self.batch_size = Histogram(
            "mobilenet_batch_size", "images per model call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "mobilenet_batch_seconds", "seconds per model call", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge(
            "mobilenet_queue_depth", "images admitted and waiting for a model call", ["model"], registry=r
        )
        self.load_seconds = Gauge(
            "mobilenet_model_load_seconds", "seconds to load and warm up the model", ["model"], registry=r
        )
        self.ready = Gauge("mobilenet_model_ready", "1 once the model is loaded and warmed up", ["model"], registry=r)

    def batch_observer(self, model: str) -> Callable[[int, float], None]:
        """The ``on_batch`` callback of ``model``'s batcher."""
        size, seconds = self.batch_size.labels(model), self.inference.labels(model)

        def observe(count: int, elapsed: float) -> None:
            size.observe(count)
            seconds.observe(elapsed)

        return observe
