"""``mobilenet serve``: an HTTP inference service for any source ``mobilenet.load`` takes.

- :mod:`.config`: :class:`ServeConfig`, everything ``mobilenet serve`` takes;
- :mod:`.backends`: the runtime that serves a source (eager PyTorch, or an exported file's own);
- :mod:`.batcher`: dynamic batching across requests with a bounded queue;
- :mod:`.service`: the models of a server, loading, readiness, classification;
- :mod:`.protocol`: the Open Inference Protocol (KServe v2) request and response formats;
- :mod:`.app`: the routes (web page, ``/v1`` JSON API, ``/v2`` protocol, health, metrics);
- :mod:`.server`: :func:`mobilenet.serve.server.serve` runs it with uvicorn, loopback by default,
  graceful shutdown on SIGTERM.

The modules from :mod:`.service` up need ``pip install 'mobilenet[serve]'`` (Starlette, uvicorn,
prometheus-client, python-multipart).
"""

from mobilenet.serve.config import TOKEN_ENV, ServeConfig

__all__ = ["TOKEN_ENV", "ServeConfig"]
