"""The models a server holds: loading and warming them up, readiness, and classifying images through their batchers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from mobilenet.data.images import decode_image_bytes, to_channels
from mobilenet.errors import ConfigError, MobileNetError
from mobilenet.serve.backends import Served, load_served
from mobilenet.serve.batcher import Batcher
from mobilenet.serve.config import ServeConfig
from mobilenet.serve.metrics import Metrics

log = logging.getLogger("mobilenet.serve")


@dataclass
class Model:
    """One served model: its instances and batcher once loaded."""

    name: str
    source: str
    instances: list[Served] = field(default_factory=list)
    batcher: Batcher | None = None
    load_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    @property
    def served(self) -> Served:
        return self.instances[0]


class NotReadyError(Exception):
    """The model is still loading (or failed to load)."""


class Service:
    """The models of one server; loading runs in the background so that liveness answers at once."""

    def __init__(self, config: ServeConfig, on_fatal: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.models = {name: Model(name, source) for name, source in config.models.items()}
        self.failure: Exception | None = None
        """Why a model could not be loaded: the server stops and this is raised to the caller."""
        self.on_fatal = on_fatal
        self.decoder = ThreadPoolExecutor(
            config.threads or torch.get_num_threads(), thread_name_prefix="mobilenet-decode"
        )
        self._loading: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return all(model.ready for model in self.models.values())

    def start(self) -> None:
        """Load every model in the background (call on the server's event loop)."""
        self._loading = asyncio.create_task(self._load_all())

    async def close(self) -> None:
        """Stop loading and every batcher (after the server has answered its requests)."""
        if self._loading is not None:
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
        for model in self.models.values():
            if model.batcher is not None:
                await model.batcher.stop()
        self.decoder.shutdown(wait=True)

    async def _load_all(self) -> None:
        for model in self.models.values():
            try:
                await self._load(model)
            except Exception as err:  # any failure to load is fatal: one line, never ready
                reason = str(err) if isinstance(err, MobileNetError) else f"{type(err).__name__}: {err}"
                self.failure = ConfigError(f"cannot load model {model.name!r} from {model.source}: {reason}")
                self.on_fatal()
                return
        log.info("ready: %s", ", ".join(f"{m.name} ({m.served.backend})" for m in self.models.values()))

    async def _load(self, model: Model) -> None:
        config = self.config
        start = time.perf_counter()
        max_batch = config.max_batch
        for _ in range(config.workers):
            served = await asyncio.to_thread(load_served, model.source, config.backend, config.threads)
            max_batch = min(max_batch, int(served.card.extra.get("max_batch", max_batch)))  # an ExecuTorch program's
            await asyncio.to_thread(_warm_up, served, max_batch)
            model.instances.append(served)
        model.load_seconds = time.perf_counter() - start
        batcher = Batcher(
            model.instances,
            max_batch,
            config.max_delay_ms / 1000,
            config.max_queue,
            self.metrics.batch_observer(model.name),
        )
        self.metrics.queue_depth.labels(model.name).set_function(lambda: batcher.admitted)
        self.metrics.load_seconds.labels(model.name).set(model.load_seconds)
        self.metrics.ready.labels(model.name).set(1)
        batcher.start()
        model.batcher = batcher

    def model(self, name: str | None) -> Model:
        """The model called ``name`` (None: the only one); KeyError if unknown, :class:`NotReadyError` if loading."""
        if name is None:
            if len(self.models) > 1:
                raise KeyError(f"this server holds {len(self.models)} models: name one ({', '.join(self.models)})")
            name = next(iter(self.models))
        if name not in self.models:
            raise KeyError(f"no model {name!r} here: the models are {', '.join(self.models)}")
        model = self.models[name]
        if not model.ready:
            raise NotReadyError(f"model {name!r} is loading")
        return model

    async def infer(self, model: Model, images: Sequence[tuple[str, bytes]] | torch.Tensor) -> torch.Tensor:
        """Probabilities (``N x outputs``) of encoded images (``(name, bytes)``, decoded off the event loop)
        or of a prepared ``N x C x S x S`` tensor, batched with other requests' images.

        Raises :class:`mobilenet.serve.batcher.QueueFullError` when the model's queue has no room, and
        :class:`mobilenet.errors.BadImageError` naming an image that cannot be decoded.
        """
        batcher = model.batcher
        assert batcher is not None
        with batcher.reserve(len(images)):
            if isinstance(images, torch.Tensor):
                batch = images
            else:
                loop = asyncio.get_running_loop()
                batch = await loop.run_in_executor(self.decoder, _prepare, model.served, images)
            futures = batcher.enqueue(batch)
        return torch.stack(await asyncio.gather(*futures))


def _prepare(served: Served, images: Sequence[tuple[str, bytes]]) -> torch.Tensor:
    """Decode encoded images and prepare them as the model card says (channels, resize, crop, normalise)."""
    card, transform = served.card, served.predictor.transform
    return torch.stack([transform(to_channels(decode_image_bytes(data, name), card.in_chans)) for name, data in images])


def _warm_up(served: Served, max_batch: int) -> None:
    """One call at batch 1 and one at ``max_batch`` (first-call allocations, compilation)."""
    card = served.card
    for batch in dict.fromkeys((1, max_batch)):
        served.predictor.probabilities(torch.zeros(batch, card.in_chans, card.input_size, card.input_size))
