"""The emulator's HTTP API (aiohttp): create room, RTC signalling, bind device.

Served next to the WebSocket endpoints, by default on the WebSocket port + 1 (the port
:attr:`voicegw.config.CloudConfig.http_url` derives for a loopback emulator).

=============================================  ==========================================
``POST /v1/audio/rooms``                       create a room (spec 3.2); access token
``POST /v1/audio/rooms/{room_id}/rtc``         WebRTC offer/answer (emulator-defined, see
                                               :mod:`voicegw.realtime.transport`); room token
``POST /v1/connectors/{connector_id}/user_configs``  bind device ids (spec 7.1); access token
=============================================  ==========================================

Every response is a REST envelope ``{"code", "msg", "detail": {"logid"}, "data"?}`` with the
logid also in the ``X-Tt-Logid`` header. Refusals (INFERRED, the status-to-code mapping of
[JS] ``error.ts``):

==========================================  ======  ====  =================================
problem                                     status  code  msg
==========================================  ======  ====  =================================
missing or wrong token                      401     4100  ``authentication is invalid``
body not a JSON object                      400     4000  ``invalid JSON body``
missing/invalid field                       400     4000  names the field path
unknown ``bot_id``                          404     4200  ``bot not found: ID``
unknown or closed room (signalling)         404     4200  ``room not found: ID``
a user is already connected to the room     409     4000  ``room already has a user``
==========================================  ======  ====  =================================

Choices where the spec is silent (INFERRED): ``bot_id`` is known when numeric or listed in
``bot_ids``; ``connector_id`` must be numeric, like real channel ids; every codec of 3.2 is
accepted but the media is always Opus (WebRTC); ``uid`` defaults to ``uid_`` + a numeric id;
``room_id`` is ``room_`` + a numeric id; the room token is random (not derived from the
access token). Bound device ids are remembered per connector and key in :attr:`HttpApi.bound`.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from ..errors import RemoteProtocolError
from ..realtime.rooms import RoomInfo, decode_create_room, encode_room_response
from ..realtime.transport import SignalAnswer, SignalOffer
from .agent import DEFAULT_VOICE_ID, RoomSetup
from .ids import IdFactory

__all__ = ["APP_ID", "HttpApi", "Room", "make_app", "parse_room_request"]

log = logging.getLogger(__name__)

#: The veRTC app id reported for every room (the JS SDK's test app id; meaningless here).
APP_ID = "6705332c79516e015e3e5f0c"


class Room(Protocol):
    """What the HTTP layer needs of one emulated room (see :mod:`.room`)."""

    setup: RoomSetup
    token: str

    @property
    def closed(self) -> bool: ...

    @property
    def has_user(self) -> bool: ...

    async def accept(self, offer_sdp: str) -> str:
        """Take the user's WebRTC offer; returns the answer SDP."""
        ...

    async def close(self) -> None: ...


class _Refusal(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass(slots=True)
class HttpApi:
    """State behind the HTTP endpoints.

    Args:
        token: the access token (the same as for ``/v1/chat``).
        ids: id source (logids, room and conversation ids).
        make_room: builds the room for a validated request (the aiortc side lives in
            :mod:`.room`; tests may pass a fake).
        bot_ids: known agent ids; ``None`` accepts any numeric id.
    """

    token: str = field(repr=False)
    ids: IdFactory
    make_room: Callable[[RoomSetup, str], Room]
    bot_ids: frozenset[str] | None = None
    #: Rooms by id, open and closed (a closed room refuses signalling).
    rooms: dict[str, Room] = field(default_factory=dict)
    #: Bound values: ``{connector_id: {key: {value: label}}}``.
    bound: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    #: Closed rooms beyond this many are forgotten (oldest first).
    keep_closed: int = 100

    def add_room(self, room_id: str, room: Room) -> None:
        """Remember ``room``, forgetting the oldest closed rooms beyond :attr:`keep_closed`."""
        self.rooms[room_id] = room
        closed = [rid for rid, r in self.rooms.items() if r.closed]
        for rid in closed[: max(0, len(closed) - self.keep_closed)]:
            del self.rooms[rid]

    def bound_devices(self, connector_id: str) -> set[str]:
        """The ``device_id`` values bound to ``connector_id``."""
        return set(self.bound.get(connector_id, {}).get("device_id", {}))

    async def close(self) -> None:
        """Close every room."""
        for room in list(self.rooms.values()):
            await room.close()


def _envelope(logid: str, code: int = 0, msg: str = "", data: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "msg": msg, "detail": {"logid": logid}}
    if data is not None:
        body["data"] = data
    return _json_response(body, logid)


def _json_response(body: dict[str, Any], logid: str) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers={"X-Tt-Logid": logid},
    )


def _refused(logid: str, r: _Refusal) -> web.Response:
    resp = _envelope(logid, r.code, r.msg)
    resp.set_status(r.status)
    return resp


def _check_token(request: web.Request, want: str) -> None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if (
        scheme.lower() != "bearer"
        or not token
        or not hmac.compare_digest(token.encode(), want.encode())
    ):
        raise _Refusal(401, 4100, "authentication is invalid")


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        raise _Refusal(400, 4000, "invalid JSON body") from None
    if not isinstance(body, dict):
        raise _Refusal(400, 4000, "invalid JSON body: expected an object")
    return body


def _opt_str(obj: dict[str, Any], name: str, path: str) -> str:
    value = obj.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{path}{name}: expected a string")
    return value


def parse_room_request(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a create-room body (spec 3.2); returns the fields the room needs.

    Validation is :func:`voicegw.realtime.rooms.decode_create_room`.

    Raises:
        RemoteProtocolError: naming the missing or invalid field.
    """
    req = decode_create_room(body)
    cfg = req.config
    td = cfg.turn_detection if cfg is not None else None
    audio = cfg.audio_config if cfg is not None else None
    delay = cfg.prologue_delay_duration_ms if cfg is not None else None
    return {
        "bot_id": req.bot_id,
        "conversation_id": req.conversation_id or "",
        "voice_id": req.voice_id or "",
        "uid": req.uid or "",
        "room_mode": (cfg.room_mode if cfg is not None else None) or "default",
        "codec": (audio.codec if audio is not None else None) or "OPUS",
        "turn_type": (td.type if td is not None else None) or "server_vad",
        "prologue": (cfg.prologue_content if cfg is not None else None) or "",
        "prologue_delay_ms": 500 if delay is None else delay,
    }


def _parse_bind(connector_id: str, body: dict[str, Any]) -> tuple[str, dict[str, dict[str, str]]]:
    if not connector_id.isdigit():
        raise RemoteProtocolError("connector_id: expected a numeric channel id")
    user_id = _opt_str(body, "user_id", "")
    configs = body.get("configs")
    if not isinstance(configs, list) or not configs:
        raise RemoteProtocolError("configs: required, a non-empty array")
    out: dict[str, dict[str, str]] = {}
    for i, item in enumerate(configs):
        path = f"configs[{i}]"
        if not isinstance(item, dict):
            raise RemoteProtocolError(f"{path}: expected an object")
        key = item.get("key")
        if not isinstance(key, str) or not key:
            raise RemoteProtocolError(f"{path}.key: required, a non-empty string")
        enums = item.get("enums")
        if not isinstance(enums, list) or not enums:
            raise RemoteProtocolError(f"{path}.enums: required, a non-empty array")
        values = out.setdefault(key, {})
        for j, entry in enumerate(enums):
            epath = f"{path}.enums[{j}]"
            if not isinstance(entry, dict):
                raise RemoteProtocolError(f"{epath}: expected an object")
            value = entry.get("value")
            if not isinstance(value, str) or not value:
                raise RemoteProtocolError(f"{epath}.value: required, a non-empty string")
            label = entry.get("label", "")
            if not isinstance(label, str):
                raise RemoteProtocolError(f"{epath}.label: expected a string")
            values[value] = label
    return user_id, out


Handler = Callable[[web.Request, str], Awaitable[web.Response]]


def _guarded(api: HttpApi, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def run(request: web.Request) -> web.Response:
        logid = api.ids.logid()
        try:
            return await handler(request, logid)
        except _Refusal as r:
            log.info(
                "%s %s refused: %d %s (logid %s)",
                request.method,
                request.path,
                r.code,
                r.msg,
                logid,
            )
            return _refused(logid, r)
        except RemoteProtocolError as exc:
            log.info("%s %s refused: 4000 %s (logid %s)", request.method, request.path, exc, logid)
            return _refused(logid, _Refusal(400, 4000, str(exc)))

    return run


def make_app(api: HttpApi) -> web.Application:
    """The aiohttp application serving ``api``."""

    async def create_room(request: web.Request, logid: str) -> web.Response:
        _check_token(request, api.token)
        fields = parse_room_request(await _json_body(request))
        bot_id = fields["bot_id"]
        known = bot_id in api.bot_ids if api.bot_ids is not None else bot_id.isdigit()
        if not known:
            raise _Refusal(404, 4200, f"bot not found: {bot_id}")
        room_id = "room_" + api.ids.numeric()
        setup = RoomSetup(
            room_id=room_id,
            bot_id=bot_id,
            uid=fields["uid"] or "uid_" + api.ids.numeric(),
            conversation_id=fields["conversation_id"] or api.ids.numeric(),
            voice_id=fields["voice_id"] or DEFAULT_VOICE_ID,
            turn_type=fields["turn_type"],
            prologue=fields["prologue"],
            prologue_delay_ms=fields["prologue_delay_ms"],
            room_mode=fields["room_mode"],
            codec=fields["codec"],
            logid=logid,
        )
        room_token = "rtc_" + secrets.token_urlsafe(24)
        room = api.make_room(setup, room_token)
        api.add_room(room_id, room)
        log.info(
            "room %s created (bot_id %s, %s, logid %s)", room_id, bot_id, setup.turn_type, logid
        )
        info = RoomInfo(room_id=room_id, app_id=APP_ID, token=room_token, uid=setup.uid)
        return _json_response(encode_room_response(info, logid=logid), logid)

    async def signal(request: web.Request, logid: str) -> web.Response:
        room_id = request.match_info["room_id"]
        room = api.rooms.get(room_id)
        if room is None or room.closed:
            raise _Refusal(404, 4200, f"room not found: {room_id}")
        _check_token(request, room.token)
        offer = SignalOffer.from_json(await _json_body(request))
        if room.closed:  # closed while the body was arriving
            raise _Refusal(404, 4200, f"room not found: {room_id}")
        if offer.uid != room.setup.uid:
            raise RemoteProtocolError(f"uid: not the room's user ({offer.uid!r})")
        if room.has_user:
            raise _Refusal(409, 4000, "room already has a user")
        answer = await room.accept(offer.sdp)
        return _envelope(logid, data=SignalAnswer(answer).to_json())

    async def bind(request: web.Request, logid: str) -> web.Response:
        _check_token(request, api.token)
        connector_id = request.match_info["connector_id"]
        user_id, configs = _parse_bind(connector_id, await _json_body(request))
        per_key = api.bound.setdefault(connector_id, {})
        for key, values in configs.items():
            per_key.setdefault(key, {}).update(values)
        log.info(
            "bound %d value(s) to connector %s (user %s, logid %s)",
            sum(len(v) for v in configs.values()),
            connector_id,
            user_id or "-",
            logid,
        )
        return _envelope(logid)

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/v1/audio/rooms", _guarded(api, create_room))
    app.router.add_post("/v1/audio/rooms/{room_id}/rtc", _guarded(api, signal))
    app.router.add_post("/v1/connectors/{connector_id}/user_configs", _guarded(api, bind))
    return app


class HttpServer:
    """The HTTP API on its own aiohttp site (started and closed with the emulator)."""

    def __init__(self, api: HttpApi) -> None:
        self.api = api
        self.port = 0
        self.host = ""
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, host: str, port: int) -> None:
        """Bind ``host:port`` (0 picks a free port; read :attr:`port`)."""
        runner = web.AppRunner(make_app(self.api), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self.host = host
        server = site._server  # the bound asyncio server: aiohttp has no public accessor
        sockets = getattr(server, "sockets", None) or ()
        self.port = int(sockets[0].getsockname()[1]) if sockets else port

    async def close(self) -> None:
        """Close every room, then stop serving."""
        await self.api.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
