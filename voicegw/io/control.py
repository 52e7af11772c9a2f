"""The local control socket: JSON lines over a Unix stream socket, for buttons, LEDs and scripts.

It is **off by default**; a deployment turns it on by giving it a path. Peripherals then talk
to the gateway through it instead of living in the audio daemon (peers.md lesson 8): a button
helper sends ``press``/``release``, an LED driver subscribes to state changes, a home
automation script sends ``cancel`` or ``say``.

Protocol: one JSON object per line (UTF-8, ``\\n``-terminated), each answered by one line::

    > {"cmd": "press"}                      < {"ok": true}
    > {"cmd": "release"}                    < {"ok": true}
    > {"cmd": "cancel"}                     < {"ok": true}
    > {"cmd": "mute", "on": true}           < {"ok": true, "mute": true}
    > {"cmd": "volume", "level": 0.4}       < {"ok": true, "volume": 0.4}
    > {"cmd": "state"}                      < {"ok": true, "state": {...}}
    > {"cmd": "say", "text": "Hello"}       < {"ok": true}   (or "not supported")
    > {"cmd": "subscribe"}                  < {"ok": true, "subscribed": true}
                                            < {"event": "state", "state": {...}}   (now, and
                                              on every ControlServer.publish)
    > {"cmd": "unsubscribe"}                < {"ok": true, "subscribed": false}
    > not json                              < {"ok": false, "error": "malformed JSON: ..."}

A request may carry an ``"id"`` (any JSON value); its response repeats it, so a client that
also receives events can match answers to questions. Event lines have ``"event"`` and no
``"ok"``. Every bad line (malformed JSON, not an object, unknown command, bad argument, a line
over ``max_line`` bytes) gets an error response and the connection stays open; blank lines are
ignored.

Bounds, each with a policy (house style 7):

* at most ``max_clients`` connections; one more is told ``too many control clients`` and
  closed (counted in :attr:`ControlStats.rejected`);
* lines longer than ``max_line`` bytes (64 KiB) are discarded up to their newline, with one
  error response;
* each client has an outbox of ``queue_size`` lines; a client that falls that far behind
  (it does not read its responses or events) is disconnected (:attr:`ControlStats.dropped`),
  so a stuck LED driver can never stall the gateway.

Security: the socket file gets mode ``0660`` before anyone can connect to it (it is bound
under a temporary name, given its mode, then renamed into place). Whoever can connect can
press the button and read the state, so put the socket in a directory of the service (say
``/run/voicegw``) and the helpers in its group. A stale socket left by a crash is replaced;
a path where another process is listening, or that is not a socket, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import os
import socket
import stat
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self, runtime_checkable

from ..errors import ConfigError, VoiceGatewayError

__all__ = [
    "DEFAULT_MAX_LINE",
    "ControlHandler",
    "ControlServer",
    "ControlStats",
    "SayHandler",
]

log = logging.getLogger(__name__)

#: Longest request line accepted, bytes (without the newline).
DEFAULT_MAX_LINE: Final = 64 * 1024
_READ_CHUNK: Final = 4096
#: How long :meth:`ControlServer.close` lets connections finish before cancelling them, s.
_CLOSE_WAIT_S: Final = 2.0
#: Pending connections the kernel queues; those over ``max_clients`` are accepted to be told.
_BACKLOG: Final = 64


class ControlHandler(Protocol):
    """What the control socket drives; the gateway implements it, tests pass a fake.

    Each command method may be a plain method or a coroutine function. A method that raises
    :class:`~voicegw.errors.VoiceGatewayError` or ``ValueError`` (``press`` while already
    pressed, say) turns into an error response carrying its message.
    """

    def press(self) -> Awaitable[None] | None: ...

    def release(self) -> Awaitable[None] | None: ...

    def cancel(self) -> Awaitable[None] | None: ...

    def set_mute(self, on: bool) -> Awaitable[None] | None: ...

    def set_volume(self, level: float) -> Awaitable[None] | None: ...

    def state(self) -> Mapping[str, Any]: ...


@runtime_checkable
class SayHandler(Protocol):
    """A handler that can also speak text (``{"cmd": "say"}``); optional."""

    def say(self, text: str) -> Awaitable[None] | None: ...


@dataclass(slots=True)
class ControlStats:
    """Counters."""

    accepted: int = 0
    """Connections served."""
    rejected: int = 0
    """Connections turned away because ``max_clients`` were connected."""
    dropped: int = 0
    """Connections closed because their outbox was full (a client that does not read)."""
    requests: int = 0
    """Request lines handled (blank lines excluded)."""
    errors: int = 0
    """Error responses sent."""
    published: int = 0
    """Calls of :meth:`ControlServer.publish`."""


class _BadRequest(Exception):
    """A request that gets an error response."""


def _encode(obj: Mapping[str, Any]) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode() + b"\n"


class _Lines:
    """Splits a byte stream into lines of at most ``limit`` bytes.

    :meth:`feed` returns complete lines, and ``None`` once for each line that grew past the
    limit; the rest of such a line, up to its newline, is discarded.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            if self._skipping:
                self._skipping = False
            elif len(self._buf) + len(piece) > self._limit:
                out.append(None)
            else:
                out.append(bytes(self._buf + piece))
            self._buf.clear()
            start = end + 1
        rest = data[start:]
        if not self._skipping and rest:
            if len(self._buf) + len(rest) > self._limit:
                self._buf.clear()
                self._skipping = True
                out.append(None)
            else:
                self._buf += rest
        return out

    def tail(self) -> bytes:
        """What is left after the last newline (a final line without one)."""
        rest, self._buf = bytes(self._buf), bytearray()
        return b"" if self._skipping else rest


class _Outbox:
    """A client's bounded queue of lines to write; ``put`` fails when it is full."""

    def __init__(self, size: int) -> None:
        self._lines: deque[bytes] = deque()
        self._size = size
        self._wake = asyncio.Event()
        self._closed = False

    def put(self, line: bytes) -> bool:
        if self._closed:
            return True
        if len(self._lines) >= self._size:
            return False
        self._lines.append(line)
        self._wake.set()
        return True

    def close(self) -> None:
        """Let the writer finish what is queued, then stop."""
        self._closed = True
        self._wake.set()

    async def get(self) -> bytes | None:
        while not self._lines:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._lines.popleft()


class _Client:
    def __init__(self, writer: asyncio.StreamWriter, queue_size: int) -> None:
        self.writer = writer
        self.outbox = _Outbox(queue_size)
        self.subscribed = False
        self.dropped = False
        #: The state to send right after the response to ``subscribe``.
        self.initial_state: dict[str, Any] | None = None


class ControlServer:
    """Serves the control protocol on a Unix stream socket.

    Args:
        handler: what the commands drive.
        path: the socket file.
        mode: permission bits of the socket file.
        max_clients: connections served at once.
        max_line: longest request line, bytes.
        queue_size: lines (responses and events) queued per client before it is dropped.

    Use ``async with ControlServer(handler, path) as server:`` or :meth:`start` and
    :meth:`close`. Call :meth:`publish` (on the event loop's thread) whenever the state that
    ``handler.state()`` reports changes.
    """

    def __init__(
        self,
        handler: ControlHandler,
        path: str | Path,
        *,
        mode: int = 0o660,
        max_clients: int = 8,
        max_line: int = DEFAULT_MAX_LINE,
        queue_size: int = 64,
    ) -> None:
        for key, value in (
            ("max_clients", max_clients),
            ("max_line", max_line),
            ("queue_size", queue_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}", key=key)
        if not 0 <= mode <= 0o777:
            raise ConfigError(f"must be permission bits such as 0o660, got {mode!r}", key="mode")
        self.handler = handler
        self.path = Path(path)
        self.mode = mode
        self.max_clients = max_clients
        self.max_line = max_line
        self.queue_size = queue_size
        self.stats = ControlStats()
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._commands: dict[str, Callable[[dict[str, Any], _Client], Awaitable[dict[str, Any]]]]
        self._commands = {
            "press": self._press,
            "release": self._release,
            "cancel": self._cancel,
            "mute": self._mute,
            "volume": self._volume,
            "state": self._state,
            "say": self._say,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
        }

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def clients(self) -> int:
        """Connections currently served."""
        return len(self._clients)

    async def start(self) -> None:
        """Create the socket file and start accepting connections.

        Raises:
            ConfigError: the path is in use by a running server, is not a socket, or cannot
                be created (missing directory, permissions, or too long: a Unix socket path
                has at most 107 bytes, and the temporary name is a few bytes longer).
        """
        if self._server is not None:
            return
        self._closing = False
        path = self.path
        _clear_stale(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, self.mode)
            sock.listen(_BACKLOG)
            os.replace(tmp, path)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ConfigError(
                f"cannot create the control socket {path}: {exc.strerror or exc}",
                key="control.path",
            ) from None
        self._inode = os.stat(path).st_ino
        try:
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, backlog=_BACKLOG)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            self._inode = None
            raise
        log.info("control socket listening on %s", path)

    async def close(self) -> None:
        """Stop accepting, disconnect every client, remove the socket file. Idempotent."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            client.outbox.close()
            client.writer.transport.abort()
        # An aborted connection ends its own task (its reader sees EOF). Cancelling them is
        # the last resort, for a handler call that does not return: asyncio's stream server
        # reports a cancelled connection task as an error on Python 3.11.
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_CLOSE_WAIT_S)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        if server is not None:
            await server.wait_closed()
        if self._inode is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            self._inode = None

    # ------------------------------------------------------------ events
    def publish(self, state: Mapping[str, Any]) -> None:
        """Send ``{"event": "state", "state": state}`` to every subscribed client.

        Never blocks: a subscriber whose outbox is full is disconnected and counted.

        Raises:
            TypeError, ValueError: ``state`` cannot be encoded as JSON.
        """
        line = _encode({"event": "state", "state": dict(state)})
        self.stats.published += 1
        for client in list(self._clients):
            if client.subscribed:
                self._send(client, line)

    # ------------------------------------------------------------ connections
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closing or len(self._clients) >= self.max_clients:
            self.stats.rejected += 1
            log.warning("control socket: too many clients (%d), one turned away", self.clients)
            with contextlib.suppress(ConnectionError):
                writer.write(
                    _encode(
                        {
                            "ok": False,
                            "error": f"too many control clients (at most {self.max_clients})",
                        }
                    )
                )
            writer.close()
            return
        assert task is not None
        client = _Client(writer, self.queue_size)
        self._clients.add(client)
        self._tasks.add(task)
        self.stats.accepted += 1
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_loop(client))
                await self._read_loop(reader, client)
                client.outbox.close()
        finally:
            self._clients.discard(client)
            self._tasks.discard(task)
            writer.close()

    async def _read_loop(self, reader: asyncio.StreamReader, client: _Client) -> None:
        lines = _Lines(self.max_line)
        while not client.dropped:
            try:
                chunk = await reader.read(_READ_CHUNK)
            except ConnectionError:
                return
            batch = lines.feed(chunk) if chunk else [lines.tail()]
            for line in batch:
                if client.dropped:
                    return
                await self._handle_line(line, client)
            if not chunk:
                return

    async def _write_loop(self, client: _Client) -> None:
        writer = client.writer
        try:
            while (line := await client.outbox.get()) is not None:
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            client.dropped = True

    def _send(self, client: _Client, line: bytes) -> None:
        if client.dropped:
            return
        if client.outbox.put(line):
            return
        client.dropped = True
        self.stats.dropped += 1
        log.warning(
            "control socket: a client fell %d lines behind and was disconnected", self.queue_size
        )
        client.outbox.close()
        client.writer.transport.abort()

    # ------------------------------------------------------------ requests
    async def _handle_line(self, line: bytes | None, client: _Client) -> None:
        if line is not None and not line.strip():
            return
        self.stats.requests += 1
        request: dict[str, Any] = {}
        try:
            if line is None:
                raise _BadRequest(f"line longer than {self.max_line} bytes; it was discarded")
            try:
                parsed = json.loads(line)
            except ValueError as exc:
                raise _BadRequest(f"malformed JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise _BadRequest('a request is a JSON object, such as {"cmd": "state"}')
            request = parsed
            cmd = request.get("cmd")
            if not isinstance(cmd, str):
                raise _BadRequest('missing "cmd" (a string), as in {"cmd": "state"}')
            run = self._commands.get(cmd)
            if run is None:
                known = ", ".join(sorted(self._commands))
                raise _BadRequest(f"unknown command {cmd!r}; known: {known}")
            response = {"ok": True, **await run(request, client)}
        except _BadRequest as exc:
            response = {"ok": False, "error": str(exc)}
        except (VoiceGatewayError, ValueError) as exc:
            response = {"ok": False, "error": str(exc) or type(exc).__name__}
        except Exception as exc:
            # A bug in the handler must not let a client take the gateway down.
            log.exception("control socket: the handler failed")
            response = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        if "id" in request:
            response["id"] = request["id"]
        if response["ok"] is False:
            self.stats.errors += 1
        try:
            line_out = _encode(response)
        except (TypeError, ValueError) as exc:
            self.stats.errors += 1
            line_out = _encode({"ok": False, "error": f"the response is not JSON: {exc}"})
        self._send(client, line_out)
        state, client.initial_state = client.initial_state, None
        if state is not None:
            try:
                self._send(client, _encode({"event": "state", "state": state}))
            except (TypeError, ValueError):
                log.exception("control socket: the handler's state is not JSON")

    async def _press(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        await _call(self.handler.press)
        return {}

    async def _release(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        await _call(self.handler.release)
        return {}

    async def _cancel(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        await _call(self.handler.cancel)
        return {}

    async def _mute(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        on = request.get("on")
        if not isinstance(on, bool):
            raise _BadRequest('"on" must be true or false, as in {"cmd": "mute", "on": true}')
        await _call(self.handler.set_mute, on)
        return {"mute": on}

    async def _volume(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        level = request.get("level")
        if (
            isinstance(level, bool)
            or not isinstance(level, (int, float))
            or not (math.isfinite(level) and 0.0 <= level <= 1.0)
        ):
            raise _BadRequest(f'"level" must be a number from 0.0 to 1.0, got {level!r}')
        await _call(self.handler.set_volume, float(level))
        return {"volume": float(level)}

    async def _state(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        return {"state": dict(self.handler.state())}

    async def _say(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        if not isinstance(self.handler, SayHandler):
            raise _BadRequest("say is not supported by this gateway")
        text = request.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _BadRequest('"text" must be a non-empty string')
        await _call(self.handler.say, text)
        return {}

    async def _subscribe(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        # The current state goes out right after the response, so a new LED driver needs
        # no separate "state" request and misses no change.
        client.initial_state = dict(self.handler.state())
        client.subscribed = True
        return {"subscribed": True}

    async def _unsubscribe(self, request: dict[str, Any], client: _Client) -> dict[str, Any]:
        client.subscribed = False
        return {"subscribed": False}


async def _call(method: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    result = method(*args)
    if inspect.isawaitable(result):
        await result


def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse anything else at ``path``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot use {path}: {exc.strerror}", key="control.path") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(
            f"{path} exists and is not a socket; refusing to replace it", key="control.path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        log.info("removing the stale control socket %s", path)
        os.unlink(path)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot check {path}: {exc.strerror}", key="control.path") from None
    finally:
        probe.close()
    raise ConfigError(
        f"another process is listening on {path}; stop it or choose another path",
        key="control.path",
    )
