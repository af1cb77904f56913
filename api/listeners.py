"""The control plane on two listeners: DSP on `server.port`, the management API on its own port.

Used only when `management.port` is set (otherwise `connector control-plane` serves one listener,
as before). One process, one event loop, one app:

- `ListenerRouting` (ASGI middleware) decides by the *local* port of the connection
  (`scope["server"][1]`, never a header): the management port serves only `/management/...`,
  `/health`, `/ready` and its own API docs; the main port answers `/management/...` with 404
  problem+json (through `connector.http.errors.error_response`, like every other error). Each
  port's OpenAPI document (`/openapi.json`, behind `/docs`) lists only the paths that port
  serves. Everything else on the main port is unchanged.
- `ListenerPair` binds both sockets first (a busy port fails before anything starts), runs the
  app's lifespan **once** (uvicorn's own `LifespanOn`; both servers run with `lifespan="off"`, so
  start-up never runs twice), serves both `uvicorn.Server`s on the same loop, and on SIGINT/SIGTERM
  stops both together: each drains for at most `timeout_graceful_shutdown` seconds (in parallel),
  then the lifespan shuts down once, after the last request of either listener is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.lifespan.on import LifespanOn

from connector.core.errors import NotFoundError
from connector.http.errors import error_response
from connector.runtime.logging import get_logger

__all__ = [
    "MANAGEMENT_LISTENER_PATHS",
    "STARTUP_FAILURE",
    "ListenerPair",
    "ListenerRouting",
    "is_management_path",
    "served",
]

log = get_logger(__name__)

MANAGEMENT_PREFIX: Final = "/management"
#: What the management listener serves besides `/management/...` (probes of either port work),
#: with its API docs pages and their assets (`api.docs`).
MANAGEMENT_LISTENER_PATHS: Final = frozenset(
    {"/live", "/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
DOCS_ASSETS_PREFIX: Final = "/docs/assets/"
OPENAPI_PATH: Final = "/openapi.json"
#: Exit code when the app's start-up fails (uvicorn uses the same).
STARTUP_FAILURE: Final = 3


def is_management_path(path: str) -> bool:
    return path == MANAGEMENT_PREFIX or path.startswith(MANAGEMENT_PREFIX + "/")


def served(path: str, management: bool) -> bool:
    """Whether the management listener (`management`) or the main one serves `path`."""
    if management:
        return (
            is_management_path(path)
            or path in MANAGEMENT_LISTENER_PATHS
            or path.startswith(DOCS_ASSETS_PREFIX)
        )
    return not is_management_path(path)


class ListenerRouting:
    """ASGI middleware: which paths each listener serves (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        management_port: int,
        openapi: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.management_port = management_port
        self._openapi = openapi
        self._documents: dict[bool, dict[str, Any]] = {}

    def document(self, openapi: Callable[[], dict[str, Any]], management: bool) -> dict[str, Any]:
        """The OpenAPI document of one listener: the app's, with only the paths it serves."""
        if management not in self._documents:
            whole = openapi()
            paths = {
                path: item
                for path, item in whole.get("paths", {}).items()
                if served(path, management)
            }
            self._documents[management] = {**whole, "paths": paths}
        return self._documents[management]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan passes through
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        port = server[1] if server else None
        path: str = scope["path"]
        management = port == self.management_port
        allowed = served(path, management)
        if allowed and path == OPENAPI_PATH and self._openapi is not None:
            document = self.document(self._openapi, management)
            await JSONResponse(document)(scope, receive, send)
            return
        if allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        # The same body an unknown route gets on this surface (problem+json for /management).
        response = error_response(Request(scope), NotFoundError("Not Found"))
        await response(scope, receive, send)


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int


def bind(listener: Listener) -> socket.socket:
    """A listening TCP socket for `listener` (IPv6 literal or `::`: dual stack where possible).

    Raises:
        OSError: the address cannot be bound (in use, not local, ...).
    """
    if ":" in listener.host:
        dual = listener.host == "::" and socket.has_dualstack_ipv6()
        return socket.create_server(
            (listener.host, listener.port), family=socket.AF_INET6, dualstack_ipv6=dual
        )
    return socket.create_server((listener.host, listener.port), family=socket.AF_INET)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals and the lifespan to `ListenerPair`.

    Requests still see the lifespan's state (`scope["state"]`), as under a single server."""

    def __init__(self, config: uvicorn.Config, lifespan_state: dict[str, Any]) -> None:
        super().__init__(config)
        self._lifespan_state = lifespan_state

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.lifespan.state = self._lifespan_state  # the servers run with lifespan="off"
        await super().startup(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ListenerPair:
    """Serve one ASGI app on a main and a management listener (see the module docstring).

    `app` is wrapped in `ListenerRouting` here, so the routing rule holds exactly when two
    listeners exist. `serve()` returns 0, or `STARTUP_FAILURE` when the app's start-up failed.
    """

    def __init__(
        self,
        app: ASGIApp,
        main: Listener,
        management: Listener,
        *,
        timeout_graceful_shutdown: int = 5,
        keep_alive_seconds: int = 5,
        handle_signals: bool = True,
    ) -> None:
        self.main = main
        self.management = management
        self.app = ListenerRouting(app, management.port, getattr(app, "openapi", None))
        self.handle_signals = handle_signals
        self._configs = {
            listener.name: uvicorn.Config(
                self.app,
                host=listener.host,
                port=listener.port,
                log_config=None,
                access_log=False,
                proxy_headers=False,
                lifespan="off",
                timeout_graceful_shutdown=timeout_graceful_shutdown,
                timeout_keep_alive=keep_alive_seconds,
            )
            for listener in (main, management)
        }
        # The app's lifespan, run once for both listeners (uvicorn's own implementation).
        self._lifespan = LifespanOn(
            uvicorn.Config(self.app, log_config=None, proxy_headers=False, lifespan="on")
        )
        self.servers = {
            name: _Server(config, self._lifespan.state) for name, config in self._configs.items()
        }
        self.started = asyncio.Event()
        self._stop = asyncio.Event()

    def request_exit(self) -> None:
        """Stop both listeners (graceful, bounded); a second call forces the exit."""
        if self._stop.is_set():
            for server in self.servers.values():
                server.force_exit = True
        self._stop.set()

    async def serve(self) -> int:
        # Bind first: a busy port fails here, before the app's start-up ran.
        sockets = {}
        try:
            for listener in (self.main, self.management):
                sockets[listener.name] = bind(listener)
        except OSError as exc:
            for sock in sockets.values():
                sock.close()
            failed = self.management if self.main.name in sockets else self.main
            raise OSError(
                exc.errno, f"cannot listen on {failed.host}:{failed.port} ({failed.name}): {exc}"
            ) from exc
        for name, config in self._configs.items():
            config.load()
            log.info("listening", listener=name, host=config.host, port=config.port)
        loop = asyncio.get_running_loop()
        with self._signals(loop):  # from here on: a signal during start-up stops right after it
            return await self._run(sockets)

    async def _run(self, sockets: dict[str, socket.socket]) -> int:
        lifespan = self._lifespan
        await lifespan.startup()
        if lifespan.should_exit:  # start-up failed; uvicorn logged why
            for sock in sockets.values():
                sock.close()
            return STARTUP_FAILURE
        tasks = [
            asyncio.create_task(server.serve(sockets=[sockets[name]]), name=f"listener-{name}")
            for name, server in self.servers.items()
        ]
        stop = asyncio.create_task(self._stop.wait())
        try:
            while not all(server.started for server in self.servers.values()):
                if any(task.done() for task in tasks):
                    break
                await asyncio.sleep(0.01)
            else:
                self.started.set()
            # Until asked to stop, or until one listener ends on its own (then stop both).
            await asyncio.wait({stop, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            for server in self.servers.values():
                server.should_exit = True
            # Each drains for at most timeout_graceful_shutdown, both at once; then the
            # lifespan ends once, after the last request of either listener.
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await lifespan.shutdown()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return 0

    @contextlib.contextmanager
    def _signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        if not self.handle_signals:
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self.request_exit)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
