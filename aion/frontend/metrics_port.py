"""The HTTP listener on the metrics port (`--metrics-port`): `GET /metrics` and `GET /health`."""

from __future__ import annotations

from aiohttp import web

from aion.metrics import REGISTRY
from aion.metrics.exposition import render


class MetricsPort:
    """An aiohttp server on `ip:port` serving the given routes; `start()`, then `stop()`."""

    def __init__(self, ip: str, port: int, routes: list[web.RouteDef]) -> None:
        self.ip = ip
        self.port = port
        app = web.Application()
        app.add_routes([web.get("/metrics", _metrics), *routes])
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.ip, self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()


async def _metrics(request: web.Request) -> web.Response:
    """The process's metrics in the reference server's Prometheus text format."""
    return web.Response(text=render(REGISTRY), content_type="text/plain", charset="utf-8")
