"""An optional local HTTP endpoint: ``/healthz`` for supervisors, ``/metrics`` for Prometheus.

* ``GET /healthz``: ``200`` with a JSON state when the capture stream is alive and the cloud
  session is up, ``503`` with the same JSON otherwise.
* ``GET /metrics``: the :class:`~voicegw.metrics.Metrics` in the Prometheus text format
  (needs prometheus-client: the ``metrics`` extra).
* anything else: ``404``; methods other than ``GET``/``HEAD``: ``405``.

The server binds ``127.0.0.1`` by default and refuses a non-loopback address unless
``allow_remote=True``: the state it reveals is for the device's own supervisors. It is a
minimal HTTP/1.1 responder on asyncio streams: one request per connection, a bounded request
size, a read timeout, and a cap on concurrent connections, so a misbehaving client cannot
hold the daemon's resources.

One owner: :class:`HealthServer` owns its listening socket and every connection task; it is
run as one task of the gateway's TaskGroup (:meth:`HealthServer.serve`) or as an async
context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

from ..errors import ConfigError
from ..metrics import Metrics

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Health", "HealthProbe", "HealthServer"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Default TCP port for the endpoint.
DEFAULT_PORT = 9733

#: A request line plus headers larger than this is refused (431).
_MAX_REQUEST_BYTES = 8192
#: A client has this long to send its whole request, seconds.
_REQUEST_TIMEOUT_S = 5.0
#: Connections served at once; further ones are closed at once.
_MAX_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Health:
    """The gateway's state as the health check reports it.

    Attributes:
        capture_alive: the capture stream delivered a frame recently.
        cloud_connected: the cloud session is established.
        detail: further JSON-ready fields to report (for example the watchdog's reason).
    """

    capture_alive: bool
    cloud_connected: bool
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """Whether ``/healthz`` answers ``200``."""
        return self.capture_alive and self.cloud_connected


#: Returns the current :class:`Health`; called once per ``/healthz`` request, on the loop.
HealthProbe = Callable[[], Health]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HealthServer:
    """Serves ``/healthz`` and ``/metrics`` over HTTP/1.1.

    Args:
        probe: returns the current health; an exception in it answers ``500``.
        metrics: the instruments for ``/metrics`` and for the summary in ``/healthz``.
        host: the address to bind (a loopback address unless ``allow_remote``).
        port: the TCP port (``0`` picks a free one; see :attr:`port`).
        allow_remote: allow a non-loopback ``host``.
        prometheus: serve ``/metrics`` (needs prometheus-client when ``metrics`` is given).

    Raises:
        ConfigError: ``host`` is not a loopback address and ``allow_remote`` is false, or
            ``/metrics`` is enabled and prometheus-client is not installed. Both are checked
            here, at start-up, not at the first request.
    """

    def __init__(
        self,
        probe: HealthProbe,
        *,
        metrics: Metrics | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        allow_remote: bool = False,
        prometheus: bool = True,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ConfigError(
                f"{host!r} is not a loopback address; the health endpoint binds to loopback "
                "unless remote access is explicitly allowed",
                key="health.host",
            )
        if not 0 <= port <= 65535:
            raise ConfigError(f"{port} is not a TCP port", key="health.port")
        self._serve_metrics = prometheus and metrics is not None
        if self._serve_metrics and metrics is not None:
            metrics.prometheus_registry()  # raises ConfigError when the extra is missing
        self._probe = probe
        self._metrics = metrics
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``).

        Raises:
            RuntimeError: the server is not started.
        """
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the health server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            OSError: the address cannot be bound (in use, not local).
            RuntimeError: already started.
        """
        if self._server is not None:
            raise RuntimeError("the health server is already started")
        self._server = await asyncio.start_server(
            self._on_connection, self._host, self._port, limit=_MAX_REQUEST_BYTES
        )
        log.info("health endpoint on http://%s:%d/healthz", self._host, self.port)

    async def aclose(self) -> None:
        """Stop accepting, cancel the connections in progress, and wait for them."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in self._connections:
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections)
        await server.wait_closed()

    async def serve(self) -> None:
        """Start, then serve until cancelled (for a TaskGroup); closes on the way out."""
        async with self:
            await asyncio.Event().wait()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ connections
    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= _MAX_CONNECTIONS or self._server is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            await self._respond(writer, HTTPStatus.REQUEST_TIMEOUT, b"request timeout\n")
            return
        except asyncio.LimitOverrunError:
            await self._respond(
                writer, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"request too large\n"
            )
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._respond(writer, HTTPStatus.BAD_REQUEST, b"bad request\n")
            return
        method, target, _ = parts
        path = target.split("?", 1)[0]
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            status, body, ctype = HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", None
        elif path == "/healthz":
            status, body, ctype = self._healthz()
        elif path == "/metrics" and self._serve_metrics and self._metrics is not None:
            status, body, ctype = self._metrics_text(self._metrics)
        else:
            status, body, ctype = HTTPStatus.NOT_FOUND, b"not found\n", None
        log.debug("< %s %s %d", method, path, status)
        await self._respond(writer, status, body, content_type=ctype, head_only=head_only)

    def _healthz(self) -> tuple[HTTPStatus, bytes, str]:
        try:
            health = self._probe()
        except Exception:
            log.exception("health probe failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, b'{"status": "error"}\n', _JSON
        state: dict[str, Any] = {
            "status": "ok" if health.healthy else "unhealthy",
            "capture_alive": health.capture_alive,
            "cloud_connected": health.cloud_connected,
            **health.detail,
        }
        if self._metrics is not None:
            state["metrics"] = self._metrics.snapshot()
        status = HTTPStatus.OK if health.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        body = (json.dumps(state, sort_keys=True, default=str) + "\n").encode()
        return status, body, _JSON

    @staticmethod
    def _metrics_text(metrics: Metrics) -> tuple[HTTPStatus, bytes, str | None]:
        try:
            body, ctype = metrics.exposition()
        except Exception:
            log.exception("rendering /metrics failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, b"metrics unavailable\n", None
        return HTTPStatus.OK, body, ctype

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: HTTPStatus,
        body: bytes,
        *,
        content_type: str | None = None,
        head_only: bool = False,
    ) -> None:
        headers = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Content-Type: {content_type or 'text/plain; charset=utf-8'}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "Connection: close",
        ]
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            headers.append("Allow: GET, HEAD")
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(body)
        await writer.drain()


_JSON = "application/json"
