"""The Web UI's server: the built app with its SPA fallback (every path that is not a file is the
app's `index.html`), long caching of the content-hashed `_app/immutable/` files, and what
Temporal's UI server answers besides: `GET /api/v1/settings`, a run's history as a JSON download,
and the CSRF check (a `_csrf` cookie the app echoes in `X-CSRF-TOKEN` on every write). Every
other `/api/...` request goes to the HTTP API's handler, so one origin serves the app and its
API."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import ssl
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv
from yarl import URL

from aion.http import HttpApi
from aion.http.jsonpb import to_json
from aion.http.server import MAX_BODY_BYTES, NO_SHORTHAND, listen
from aion.ui import UiConfig, built

log = logging.getLogger("aion.ui")

UI_VERSION = "2.38.0"
"""The `@temporalio/ui` version the app is built from (ui/package.json). The app reads it from
the settings: from 2.23.0 on it encodes path parameters once, as Aion's HTTP API expects."""
WORKFLOW_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
CSRF_COOKIE = "_csrf"
CSRF_HEADER = "X-CSRF-TOKEN"
CSRF_MAX_AGE = 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "Aion's Web UI is not built. Build it with scripts/build-ui (needs node and npm), or run "
    "scripts/dev-server, which builds it on first use.\n"
)


class UiServer:
    """The Web UI on `config.ip:config.port` over the given HTTP API (with TLS when given an
    SSL context)."""

    def __init__(
        self, config: UiConfig, api: HttpApi, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.config = config
        self._api = api
        self._ssl_context = ssl_context
        self._prefix = config.public_path.rstrip("/")
        self._assets = config.assets.resolve()
        self._index = self._read_index()
        self._settings = _settings(config)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen (port 0: a free one, then in `self.port`)."""
        if self._index is None:
            log.warning("the Web UI is not built in %s: %s", self._assets, NOT_BUILT.strip())
        self._runner, self.port = await listen(
            self.application(), self.config.ip, self.config.port, self._ssl_context
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def application(self) -> web.Application:
        middlewares = [_csrf]
        if self.config.api_key:
            middlewares.append(_credential(self.config.api_key))
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
        api = f"{self._prefix}/api/v1"
        app.router.add_get(f"{api}/settings", self._get_settings)
        app.router.add_get(
            api + "/namespaces/{namespace}/workflows/{workflow:.+}/run/{run}/history.json",
            self._history,
        )
        app.router.add_route("*", self._prefix + "/api/{tail:.*}", self._to_api)
        app.router.add_get(self._prefix + "/{tail:.*}", self._app)
        if self._prefix:
            app.router.add_get(self._prefix, self._app)
        return app

    async def _get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(self._settings)

    async def _to_api(self, request: web.Request) -> web.StreamResponse:
        """The HTTP API's answer, payloads in full as Temporal's UI server gives them (the app
        decodes `{metadata, data}` payloads, through the codec server when there is one)."""
        url = request.rel_url
        path = URL.build(
            path=url.raw_path.removeprefix(self._prefix),
            query_string=url.raw_query_string,
            encoded=True,
        )
        headers = CIMultiDict(request.headers)
        headers["Accept"] = f"application/json+{NO_SHORTHAND}"
        response = await self._api.handle(request.clone(rel_url=path, headers=headers))
        response.content_type = "application/json"
        return response

    async def _history(self, request: web.Request) -> web.StreamResponse:
        """The run's whole history as Temporal's JSON (`{"events": [...]}`, payloads in full), a
        file `temporal workflow show -o json` also writes and the UI's import page reads."""
        info = request.match_info
        execution = common_pb.WorkflowExecution(workflow_id=info["workflow"], run_id=info["run"])
        history = history_pb.History()
        token = b""
        while True:
            page = wsv.GetWorkflowExecutionHistoryRequest(
                namespace=info["namespace"], execution=execution, next_page_token=token
            )
            response = await self._api.call(
                request, WORKFLOW_SERVICE, "GetWorkflowExecutionHistory", page
            )
            if isinstance(response, web.Response):
                return response
            assert isinstance(response, wsv.GetWorkflowExecutionHistoryResponse)
            history.events.extend(response.history.events)
            token = response.next_page_token
            if not token:
                break
        name = f"{info['workflow']}_{info['run']}.json".replace("/", "_").replace('"', "_")
        return web.Response(
            body=to_json(history, shorthand=False),
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def _app(self, request: web.Request) -> web.StreamResponse:
        """A file of the build, else the app's page (the route is the app's to resolve)."""
        if self._index is None:
            return web.Response(status=503, text=NOT_BUILT)
        tail = request.match_info.get("tail", "")
        file = (self._assets / tail).resolve()
        if tail and file.is_file() and file.is_relative_to(self._assets):
            immutable = tail.startswith("_app/immutable/")
            cache = IMMUTABLE if immutable else "no-cache"
            return web.FileResponse(file, headers={"Cache-Control": cache})
        return web.Response(
            body=self._index,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    def _read_index(self) -> bytes | None:
        """The app's page, pointed at the public path when there is one (the build assumes the
        root: its base is "" and its scripts are under "/_app/")."""
        if not built(self._assets):
            return None
        html = (self._assets / "index.html").read_text()
        if self._prefix:
            html = html.replace('base: ""', f"base: {json.dumps(self._prefix)}")
            html = html.replace('"/_app/', f'"{self._prefix}/_app/')
        return html.encode()


@web.middleware
async def _csrf(request: web.Request, handler: Any) -> web.StreamResponse:
    """Writes must echo the `_csrf` cookie in `X-CSRF-TOKEN` (the app does, as for Temporal's
    UI server); every answer carries the cookie, a new one when the request had none."""
    token = request.cookies.get(CSRF_COOKIE)
    response: web.StreamResponse
    if request.method in SAFE_METHODS:
        response = await handler(request)
    elif not (sent := request.headers.get(CSRF_HEADER)):
        response = web.json_response(
            {"message": "missing csrf token in request header"}, status=400
        )
    elif not token or not hmac.compare_digest(sent, token):
        response = web.json_response({"message": "invalid csrf token"}, status=403)
    else:
        response = await handler(request)
    response.set_cookie(
        CSRF_COOKIE,
        token or secrets.token_hex(16),
        path="/",
        max_age=CSRF_MAX_AGE,
        samesite="Strict",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _credential(api_key: str) -> Any:
    """The configured credential on every request that brings none of its own (the app sends
    none): the UI acts with its rights, the browser never sees it."""
    authorization = f"Bearer {api_key}"

    @web.middleware
    async def add(request: web.Request, handler: Any) -> web.StreamResponse:
        if "Authorization" not in request.headers:
            headers = CIMultiDict(request.headers)
            headers["Authorization"] = authorization
            request = request.clone(headers=headers)
        response: web.StreamResponse = await handler(request)
        return response

    return add


def _settings(config: UiConfig) -> dict[str, Any]:
    """What Temporal's UI server answers at `/api/v1/settings`, for a server without auth."""
    return {
        "Auth": {"Enabled": False, "Options": None, "RedirectToProvider": False},
        "DefaultNamespace": "default",
        "ShowTemporalSystemNamespace": False,
        "NavCollapsedByDefault": False,
        "FeedbackURL": "",
        "DisableNewsFetch": False,
        "Codec": {
            "Endpoint": config.codec_endpoint,
            "PassAccessToken": False,
            "IncludeCredentials": False,
            "DefaultErrorMessage": "",
            "DefaultErrorLink": "",
        },
        "Version": UI_VERSION,
        "DisableWriteActions": False,
        "WorkflowTerminateDisabled": False,
        "WorkflowCancelDisabled": False,
        "WorkflowSignalDisabled": False,
        "WorkflowUpdateDisabled": False,
        "WorkflowResetDisabled": False,
        "BatchActionsDisabled": False,
        "StartWorkflowDisabled": False,
        "HideWorkflowQueryErrors": False,
        "RefreshWorkflowCountsDisabled": False,
    }
