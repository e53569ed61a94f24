"""The HTTP listener on the metrics port (`--metrics-port`): `GET /health` today."""

from __future__ import annotations

from aiohttp import web


class MetricsPort:
    """An aiohttp server on `ip:port` serving the given routes; `start()`, then `stop()`."""

    def __init__(self, ip: str, port: int, routes: list[web.RouteDef]) -> None:
        self.ip = ip
        self.port = port
        app = web.Application()
        app.add_routes(routes)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.ip, self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()
