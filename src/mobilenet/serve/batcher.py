"""Dynamic batching across concurrent requests, with a bounded queue that sheds load.

A request first reserves room for its images (:meth:`Batcher.reserve`); when the images admitted
and not yet running would exceed ``max_queue`` it is refused at once (the server answers ``503``
with ``Retry-After``), so the backlog never grows without bound. Its images are then decoded off
the event loop and queued. Each of the model's instances (``workers``) takes what is queued, up to
``max_batch`` images, waits at most ``max_delay`` for images still being decoded, and runs the
batch in its own thread. A lone request therefore waits for nobody, and under load the batch
fills while the previous one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from mobilenet.serve.backends import Served


class QueueFullError(Exception):
    """The model's queue has no room for a request's images: retry later."""


@dataclass
class _Item:
    tensor: torch.Tensor
    future: asyncio.Future[torch.Tensor]


class Batcher:
    """The queue and inference workers of one model (one :class:`Served` instance per worker).

    ``on_batch(size, seconds)`` is called after each batch (for metrics).
    """

    def __init__(
        self,
        instances: Sequence[Served],
        max_batch: int = 32,
        max_delay: float = 0.005,
        max_queue: int = 256,
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
    ) -> None:
        self.instances = list(instances)
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.admitted = 0
        """Images reserved and not yet taken by a worker (decoding or queued): the queue depth."""
        self.decoding = 0
        """Images reserved and not yet queued."""
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._pool = ThreadPoolExecutor(len(self.instances), thread_name_prefix="mobilenet-infer")
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one worker task per instance (on the running event loop)."""
        self._tasks = [asyncio.create_task(self._work(served)) for served in self.instances]

    async def stop(self) -> None:
        """Stop the workers (after the server has finished its requests) and their threads."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def reserve(self, count: int) -> Iterator[None]:
        """Room for ``count`` images until they are queued; :class:`QueueFullError` when there is none."""
        if self.admitted + count > self.max_queue:
            raise QueueFullError(f"the queue holds {self.admitted} of at most {self.max_queue} images")
        self.admitted += count
        self.decoding += count
        queued = 0
        try:
            yield
            queued = count
        finally:
            self.decoding -= count
            self.admitted -= count - queued
            self._arrived.set()

    def enqueue(self, tensors: torch.Tensor) -> list[asyncio.Future[torch.Tensor]]:
        """Queue a prepared batch (``N x C x S x S``) reserved with :meth:`reserve`: a future per row."""
        loop = asyncio.get_running_loop()
        futures = []
        for tensor in tensors:
            future: asyncio.Future[torch.Tensor] = loop.create_future()
            self._queue.put_nowait(_Item(tensor, future))
            futures.append(future)
        return futures

    async def _work(self, served: Served) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            deadline = loop.time() + self.max_delay
            while len(items) < self.max_batch:
                if not self._queue.empty():
                    items.append(self._queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if self.decoding == 0 or left <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            self.admitted -= len(items)
            await self._run(served, items, loop)

    async def _run(self, served: Served, items: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        live = [item for item in items if not item.future.done()]  # a cancelled request's images are dropped
        if not live:
            return
        start = time.perf_counter()
        try:
            batch = torch.stack([item.tensor for item in live])
            probs = await loop.run_in_executor(self._pool, served.predictor.probabilities, batch)
        except Exception as err:  # a runtime's failure fails this batch's requests, not the server
            for item in live:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        self.on_batch(len(live), time.perf_counter() - start)
        for item, row in zip(live, probs, strict=True):
            if not item.future.done():
                item.future.set_result(row)
