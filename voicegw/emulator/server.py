"""The emulator's websockets server: handshake, keepalive, and one core per connection.

``wss://ws.coze.cn/v1/chat`` on loopback (spec 1.2-1.8, 2.7), as ``ws://HOST:PORT/v1/chat``:

* **Handshake.** ``bot_id`` is required, and so is a token: the ``Authorization: Bearer TOKEN``
  header or the ``authorization`` query parameter (``Bearer%20tok`` and ``Bearer+tok``; a raw
  space cannot appear in an HTTP request line). Either one matching is enough. Refusals are
  HTTP responses with a JSON body ``{"code", "msg", "detail": {"logid"}}`` and an
  ``X-Tt-Logid`` header (spec 1.4; status-to-code mapping of [JS] ``error.ts``):

  ==========================  ======  ====  ==============================================
  problem                     status  code  msg
  ==========================  ======  ====  ==============================================
  unknown path (below)        404     4200  ``"not found"``
  missing or wrong token      401     4100  ``"authentication is invalid"``
  missing ``bot_id``          400     4000  ``"missing required parameter: bot_id"``
  unknown ``bot_id``          404     4200  ``"bot not found: ID"``
  ==========================  ======  ====  ==============================================

  Paths: ``/v1/chat``, and ``/v1/audio/speech`` (:mod:`.tts`) and
  ``/v1/audio/transcriptions`` (:mod:`.transcriptions`), which need only the token.
  A ``bot_id`` is known when it is in the ``bot_ids`` the emulator was given or, without that
  list, when it is a numeric string as real agent ids are (INFERRED). The checks run in the
  order of the table. The 101 response carries ``X-Tt-Logid`` too, equal to every event's
  ``detail.logid`` on that connection.
* **Frames.** ``compression=None`` (environment.md 4f) and frames up to 2 MiB: appends under
  about 1 MiB of audio must never be refused (spec 2.5.5).
* **Keepalive.** The service pings every 15 s and closes after 4 missed pongs (spec 1.8).
  websockets 17 keeps at most one ping outstanding: it pings ``ping_interval`` after the last
  pong and fails the connection (close code 1011) if that ping's pong does not come within
  ``ping_timeout``. The emulator sets ``ping_timeout = missed_pongs * ping_interval``: a client
  that stops answering is dropped after the same 60 s of silence the service allows, though
  websockets sends one ping in that time where the service sends four.
* **Concurrency.** Per connection one task reads (and feeds the core) and one task writes
  (sends the core's frames at their absolute deadlines on the loop's monotonic clock, waking
  early when new input arrives). The core runs in a worker thread (:func:`asyncio.to_thread`)
  so that bot synthesis (espeak-ng, MP3/Opus encoding) never stalls the loop; an
  :class:`asyncio.Lock` keeps the reader's and writer's use of the core apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import random
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from ..logsetup import redact_library_loggers
from .bots import Bot, bot_factory
from .chat import ChatConnection
from .faults import REFUSALS, CloseAction, FaultPlan, FaultRun, FaultSource, describe, resolve
from .http import HttpApi, HttpServer
from .ids import IdFactory
from .room import room_factory
from .transcriptions import TranscriptionConnection
from .tts import SpeechConnection
from .turns import DEFAULT_TIMING, Timing
from .vad import DEFAULT_THRESHOLD_DBFS

__all__ = [
    "MAX_FRAME_BYTES",
    "ConnectionRecord",
    "Emulator",
    "add_arguments",
    "run_from_args",
    "serve_forever",
]

log = logging.getLogger(__name__)
redact_library_loggers()  # websockets logs handshake headers (the token) at DEBUG

#: Largest client frame accepted.
MAX_FRAME_BYTES = 2 * 1024 * 1024
CHAT_PATH = "/v1/chat"
#: Streaming TTS and ASR (spec 4, 5): a token and no query parameters.
SPEECH_PATH = "/v1/audio/speech"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
_Core = ChatConnection | SpeechConnection | TranscriptionConnection


@dataclass(slots=True)
class ConnectionRecord:
    """What one connection received and sent, for tests (event types only, bounded)."""

    logid: str
    bot_id: str
    #: Event types the client sent, oldest first (bounded).
    received_types: deque[str]
    #: Event types the emulator sent, oldest first (bounded).
    sent_types: deque[str]
    open: bool = True
    close_code: int | None = None
    #: Set when the connection has ended.
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    #: 1-based index of the handshake that opened it (see ``faults`` on :class:`Emulator`).
    index: int = 0
    #: The faults injected, in order, e.g. ``"malformed_at@3"``, ``"close_at=5:1011"``.
    faults_injected: list[str] = field(default_factory=list)
    #: The ``device_id`` query parameter of ``/v1/chat`` ("" when absent).
    device_id: str = ""


@dataclass(slots=True)
class _Accepted:
    logid: str
    bot_id: str
    index: int
    plan: FaultPlan
    path: str = CHAT_PATH
    device_id: str = ""


@dataclass(slots=True)
class _Handshake:
    ids: IdFactory
    accepted: dict[ServerConnection, _Accepted] = field(default_factory=dict)
    count: int = 0


def _query_token(value: str) -> str | None:
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Emulator:
    """A running emulator, as an async context manager::

        async with Emulator(token="secret", bot="echo") as emu:
            url = f"{emu.url}/v1/chat?bot_id=7000000000000000001"

    Args:
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (read :attr:`port` after start).
        token: the access token clients must present (required, non-empty).
        bot: ``echo``, ``tone``, ``espeak`` or ``script:PATH`` (see :mod:`.bots`).
        bot_ids: known agent ids; ``None`` accepts any numeric id.
        ping_interval: seconds between keepalive pings; ``None`` disables them.
        missed_pongs: unanswered pings tolerated (see the module docstring).
        close_timeout: seconds to wait for a client's closing handshake before dropping TCP.
        timing: the emulated agent's latencies.
        vad_threshold_dbfs: the energy VAD's speech level.
        keep_records: how many :class:`ConnectionRecord` to keep.
        wall_clock: Unix time, for wall-time fields only.
        seed: seed for ids, for reproducible runs.
        faults: faults to inject (see :mod:`.faults`): one :class:`~.faults.FaultPlan` for
            every connection (its ``on`` may restrict it), a sequence of plans merged per
            connection, or a callable from the 1-based handshake index to the plan.
        http_port: port of the HTTP API (create room, RTC signalling, bind device; see
            :mod:`.http`); ``None`` means ``port + 1``, or a free port when ``port`` is 0.

    Raises:
        ValueError: empty token.
        voicegw.errors.ConfigError: unknown bot or bad script file.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str,
        bot: str = "echo",
        bot_ids: Collection[str] | None = None,
        ping_interval: float | None = 15.0,
        missed_pongs: int = 4,
        close_timeout: float = 10.0,
        timing: Timing = DEFAULT_TIMING,
        vad_threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
        keep_records: int = 100,
        wall_clock: Callable[[], float] = time.time,
        seed: int | None = None,
        faults: FaultSource | None = None,
        http_port: int | None = None,
    ) -> None:
        if not token:
            raise ValueError("the emulator always requires a token")
        self.host = host
        self._requested_port = port
        self.token = token
        self.bot = bot
        self._make_bot: Callable[[], Bot] = bot_factory(bot)
        self.bot_ids = frozenset(bot_ids) if bot_ids is not None else None
        self.ping_interval = ping_interval
        self.ping_timeout = ping_interval * missed_pongs if ping_interval else None
        self.close_timeout = close_timeout
        self.timing = timing
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self._wall = wall_clock
        self._rng = random.Random(seed)
        self._hs = _Handshake(IdFactory(self._rng, lambda: int(wall_clock() * 1000)))
        #: One record per connection, oldest dropped first.
        self.connections: deque[ConnectionRecord] = deque(maxlen=keep_records)
        self._server: Server | None = None
        self.port = 0
        self.faults = faults
        #: ``(index, status)`` of every upgrade refused by a ``refuse`` fault (bounded).
        self.refused: deque[tuple[int, int]] = deque(maxlen=keep_records)
        self._requested_http_port = http_port
        http_rng = random.Random(None if seed is None else seed + 1)  # own stream of ids
        #: The HTTP API (Realtime rooms, bind device): ``http.api.rooms``, ``http.api.bound``.
        self.http = HttpServer(
            HttpApi(
                token,
                IdFactory(http_rng, lambda: int(wall_clock() * 1000)),
                room_factory(
                    self._make_bot,
                    rng=http_rng,
                    wall_clock=wall_clock,
                    timing=timing,
                    vad_threshold_dbfs=vad_threshold_dbfs,
                    loopback=host in ("127.0.0.1", "::1", "localhost"),
                ),
                self.bot_ids,
            )
        )

    @property
    def api_url(self) -> str:
        """``http://HOST:PORT`` of the HTTP API (use as ``CloudConfig.api_url``)."""
        return self.http.url

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (append ``/v1/chat?bot_id=...``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            process_request=self._process_request,
            process_response=self._process_response,
            server_header="voicegw-emulator",
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        http_port = self._requested_http_port
        if http_port is None:
            http_port = self.port + 1 if self._requested_port else 0
        try:
            await self.http.start(self.host, http_port)
        except BaseException:
            await self.close()
            raise
        log.info("emulator listening on %s (bot %s)", self.url, self.bot)
        log.info("emulator HTTP API on %s", self.api_url)

    async def close(self) -> None:
        """Stop accepting, close every connection and wait for them to finish."""
        await self.http.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ handshake

    def _refuse(
        self, status: int, code: int, msg: str, logid: str, reason: str | None = None
    ) -> Response:
        body = orjson.dumps({"code": code, "msg": msg, "detail": {"logid": logid}})
        headers = Headers()
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
        headers["X-Tt-Logid"] = logid
        reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
        return Response(status, reason or reasons[status], headers, body)

    def _authorized(self, request: Request, query: dict[str, str]) -> bool:
        offered = []
        header = request.headers.get("Authorization")
        if header is not None:
            offered.append(_query_token(header))
        if "authorization" in query:
            offered.append(_query_token(query["authorization"]))
        want = self.token.encode()
        return any(t is not None and hmac.compare_digest(t.encode(), want) for t in offered)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        logid = self._hs.ids.logid()
        self._hs.count += 1
        index = self._hs.count
        plan = resolve(self.faults, index)
        if plan.refuse is not None:
            reason, code, msg = REFUSALS[plan.refuse]
            log.info("fault: refusing connection %d with %d (logid %s)", index, plan.refuse, logid)
            self.refused.append((index, plan.refuse))
            return self._refuse(plan.refuse, code, msg, logid, reason)
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path not in (CHAT_PATH, SPEECH_PATH, TRANSCRIPTIONS_PATH):
            return self._refuse(404, 4200, "not found", logid)
        if not self._authorized(request, query):
            log.info("refused a connection: authentication is invalid (logid %s)", logid)
            return self._refuse(401, 4100, "authentication is invalid", logid)
        if parts.path != CHAT_PATH:
            self._hs.accepted[connection] = _Accepted(logid, "", index, plan, parts.path)
            return None
        bot_id = query.get("bot_id", "")
        if not bot_id:
            return self._refuse(400, 4000, "missing required parameter: bot_id", logid)
        known = bot_id in self.bot_ids if self.bot_ids is not None else bot_id.isdigit()
        if not known:
            return self._refuse(404, 4200, f"bot not found: {bot_id}", logid)
        device_id = query.get("device_id", "")
        if device_id and not device_id.isdigit():
            # INFERRED: the device id is numeric (spec 1.2); anything else is a bad request.
            return self._refuse(400, 4000, f"invalid parameter device_id: {device_id!r}", logid)
        self._hs.accepted[connection] = _Accepted(logid, bot_id, index, plan, device_id=device_id)
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        accepted = self._hs.accepted.get(connection)
        if accepted is not None:
            if response.status_code != 101:  # websockets refused the upgrade itself
                del self._hs.accepted[connection]
            response.headers["X-Tt-Logid"] = accepted.logid
        return None

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        accepted = self._hs.accepted.pop(ws)
        loop = asyncio.get_running_loop()
        core = self._make_core(accepted, loop.time())
        record = ConnectionRecord(
            core.logid,
            accepted.bot_id,
            core.received,
            core.sent,
            index=accepted.index,
            device_id=accepted.device_id,
        )
        self.connections.append(record)
        plan = accepted.plan
        run = FaultRun(
            plan,
            logid=core.logid,
            bot_id=accepted.bot_id,
            wall_clock=self._wall,
            injected=record.faults_injected,
        )
        log.info("connection open (logid %s, bot_id %s)", core.logid, accepted.bot_id)
        if plan.active:
            log.info("fault plan for logid %s: %s", core.logid, ", ".join(describe(plan)))
        if plan.no_pong:
            _drop_pongs(ws, run)
        lock = asyncio.Lock()
        wake = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                if plan.silent:
                    run.note("silent")
                    writer = None
                else:
                    writer = tg.create_task(self._write(ws, core, lock, wake, run))
                try:
                    await self._read(ws, core, lock, wake, run)
                finally:
                    if writer is not None:
                        writer.cancel()
        finally:
            record.open = False
            record.close_code = ws.close_code
            record.closed.set()
            log.info("connection closed (logid %s, code %s)", core.logid, ws.close_code)

    def _make_core(self, accepted: _Accepted, now: float) -> _Core:
        rng = random.Random(self._rng.getrandbits(64))
        if accepted.path == SPEECH_PATH:
            return SpeechConnection(
                self._make_bot(),
                now=now,
                wall_clock=self._wall,
                rng=rng,
                timing=self.timing,
                logid=accepted.logid,
            )
        if accepted.path == TRANSCRIPTIONS_PATH:
            return TranscriptionConnection(
                self._make_bot(),
                now=now,
                wall_clock=self._wall,
                rng=rng,
                vad_threshold_dbfs=self.vad_threshold_dbfs,
                logid=accepted.logid,
            )
        return ChatConnection(
            self._make_bot(),
            now=now,
            bot_id=accepted.bot_id,
            wall_clock=self._wall,
            rng=rng,
            timing=self.timing,
            vad_threshold_dbfs=self.vad_threshold_dbfs,
            logid=accepted.logid,
        )

    async def _read(
        self,
        ws: ServerConnection,
        core: _Core,
        lock: asyncio.Lock,
        wake: asyncio.Event,
        run: FaultRun,
    ) -> None:
        loop = asyncio.get_running_loop()
        plan = run.plan
        if plan.stall_reads is not None:
            run.note(f"stall_reads={plan.stall_reads}")
            ws.transport.pause_reading()
            try:
                await asyncio.sleep(plan.stall_reads)
            finally:
                if not ws.transport.is_closing():
                    ws.transport.resume_reading()
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                if plan.throttle_reads is not None:
                    await _throttle(ws, len(frame), plan.throttle_reads)
                if plan.silent:
                    continue
                now = loop.time()
                async with lock:
                    await asyncio.to_thread(core.receive, frame, now)
                wake.set()

    async def _write(
        self,
        ws: ServerConnection,
        core: _Core,
        lock: asyncio.Lock,
        wake: asyncio.Event,
        run: FaultRun,
    ) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            if not await _send_injections(ws, run):
                return
            while True:
                wake.clear()
                async with lock:
                    frames = core.due(loop.time())
                    deadline = core.next_deadline()
                for text in frames:
                    await ws.send(text)
                    close = run.after_send(text)
                    if close is not None:
                        await _fault_close(ws, close)
                        return
                    if not await _send_injections(ws, run):
                        return
                if frames:
                    continue
                if deadline is None:
                    await wake.wait()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await wake.wait()


async def _send_injections(ws: ServerConnection, run: FaultRun) -> bool:
    """Send the frames the plan injects at this position; ``False`` once it has closed."""
    while (injection := run.next_injection()) is not None:
        label, text = injection
        await ws.send(text)
        close = run.after_send(text, label)
        if close is not None:
            await _fault_close(ws, close)
            return False
    return True


async def _fault_close(ws: ServerConnection, action: CloseAction) -> None:
    if action.abrupt:
        ws.transport.abort()
    else:
        await ws.close(action.code, action.reason)


async def _throttle(ws: ServerConnection, size: int, rate: int) -> None:
    """Stop reading for as long as ``size`` bytes take at ``rate`` bytes per second."""
    ws.transport.pause_reading()
    try:
        await asyncio.sleep(size / rate)
    finally:
        if not ws.transport.is_closing():
            ws.transport.resume_reading()


def _drop_pongs(ws: ServerConnection, run: FaultRun) -> None:
    """Make the connection never answer pings: drop the pongs websockets queues for them.

    websockets answers a ping inside ``Protocol.recv_frame`` by calling ``send_frame`` with a
    pong; wrapping ``send_frame`` on this connection's protocol object filters exactly those,
    while reads, pings the emulator sends and every other frame go on as usual.
    """
    protocol = ws.protocol
    send_frame = protocol.send_frame
    run.note("no_pong")

    def without_pongs(frame: Frame) -> None:
        if frame.opcode is Opcode.PONG:
            return
        send_frame(frame)

    protocol.send_frame = without_pongs  # type: ignore[method-assign]


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    bot: str = "echo",
    ping_interval: float | None = 15.0,
    missed_pongs: int = 4,
    vad_threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
    out: Callable[[str], None] | None = None,
    faults: Sequence[FaultPlan] = (),
    http_port: int | None = None,
) -> int:
    """Run an emulator until SIGINT or SIGTERM; returns the exit status (0).

    The first line written is ``listening on ws://HOST:PORT``. Without ``token`` a random one
    is generated and written on the second line as ``token: TOKEN`` (a token is always
    required). The next line is ``http api on http://HOST:PORT`` (create room, signalling,
    bind: use it as ``cloud.api_url``). Lines go to ``out`` (default: stdout, flushed).
    ``faults`` are merged per connection as :func:`.faults.plan_for` does.
    """
    emit = out or (lambda line: print(line, flush=True))
    generated = token is None
    token = token or secrets.token_urlsafe(24)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(
            host,
            port,
            token=token,
            bot=bot,
            ping_interval=ping_interval,
            missed_pongs=missed_pongs,
            vad_threshold_dbfs=vad_threshold_dbfs,
            faults=list(faults) or None,
            http_port=http_port,
        ) as emu:
            emit(f"listening on {emu.url}")
            if generated:
                emit(f"token: {token}")
            emit(f"http api on {emu.api_url}")
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser`` (the ``voicegw emulator`` subcommand)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--token", default=None, help="token clients must present (default: generate and print one)"
    )
    parser.add_argument(
        "--bot", default="echo", help="echo, tone, espeak or script:PATH (default echo)"
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=15.0,
        help="seconds between keepalive pings; 0 disables (default 15)",
    )
    parser.add_argument(
        "--missed-pongs",
        type=int,
        default=4,
        help="unanswered pings before the connection is closed (default 4)",
    )
    parser.add_argument(
        "--vad-threshold",
        type=float,
        default=DEFAULT_THRESHOLD_DBFS,
        help="server VAD speech level in dBFS (default -45)",
    )
    parser.add_argument(
        "--fault",
        dest="faults",
        metavar="SPEC",
        action="append",
        type=_fault_arg,
        default=[],
        help="inject faults, e.g. close_at=12 or refuse=401 or on=2,silent (repeatable; "
        "see voicegw/emulator/README.md)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="port of the HTTP API (rooms, bind device); default --port + 1, or free with --port 0",
    )


def _fault_arg(spec: str) -> FaultPlan:
    try:
        return FaultPlan.parse(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def run_from_args(ns: argparse.Namespace) -> int:
    """Run the emulator with options parsed by :func:`add_arguments`; returns the exit status."""
    return await serve_forever(
        ns.host,
        ns.port,
        token=ns.token,
        bot=ns.bot,
        ping_interval=ns.ping_interval or None,
        missed_pongs=ns.missed_pongs,
        vad_threshold_dbfs=ns.vad_threshold,
        faults=getattr(ns, "faults", None) or (),
        http_port=getattr(ns, "http_port", None),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m voicegw.emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m voicegw.emulator",
        description="Local emulator of Coze's /v1/chat WebSocket.",
    )
    add_arguments(parser)
    parser.add_argument(
        "--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=ns.log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return asyncio.run(run_from_args(ns))
