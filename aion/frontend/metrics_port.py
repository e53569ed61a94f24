"""The HTTP listener on the metrics port (`--metrics-port`): `GET /metrics` and `GET /health`."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from aion.frontend.health import Health
from aion.metrics import REGISTRY
from aion.metrics.exposition import render


class MetricsPort:
    """An aiohttp server on `ip:port`; `start()`, then `stop()`. Imported only when a metrics
    port is set: aiohttp adds about a quarter to the server's import time."""

    def __init__(
        self,
        ip: str,
        port: int,
        health: Health,
        refresh: Callable[[], Awaitable[None]],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`refresh` brings the gauges read from the store up to date before each scrape;
        `ssl_context`: TLS (None: plaintext)."""
        self.ip = ip
        self.port = port
        self._ssl_context = ssl_context
        self._health = health
        self._refresh = refresh
        app = web.Application()
        app.add_routes([web.get("/metrics", self._metrics), web.get("/health", self._http_health)])
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.ip, self.port, ssl_context=self._ssl_context).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _http_health(self, request: web.Request) -> web.Response:
        """200 while the server serves, 503 while it starts or stops."""
        if self._health.serving:
            return web.Response(text="SERVING\n")
        return web.Response(status=503, text="NOT_SERVING\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        """The process's metrics in the reference server's Prometheus text format."""
        await self._refresh()
        return web.Response(text=render(REGISTRY), content_type="text/plain", charset="utf-8")
