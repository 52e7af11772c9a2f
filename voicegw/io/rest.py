"""HTTP client for Coze's REST APIs a device needs: create room (spec 3.2), bind device (7.1).

Both take the :class:`~voicegw.config.CloudConfig` (for ``http_url`` and the timeout) and the
access token, and return once the service answered. Every failure becomes a
:class:`~voicegw.errors.CloudError` carrying a Coze ``code``, ``retryable`` and the ``logid``:

* a REST envelope with a non-zero ``code``: that code and ``msg`` (the body wins over the
  HTTP status, as the service always sends one);
* an HTTP error without an envelope: the [JS] ``error.ts`` mapping 400 -> 4000, 401 -> 4100,
  403 -> 4101, 404 -> 4200, 429 -> 4013; other statuses keep the status as the code;
* a network failure or timeout: ``code=None``, retryable.

4000, 4100, 4101 and 4200 are not retryable; everything else is. The logid comes from the
envelope's ``detail.logid`` or the ``X-Tt-Logid`` header. TLS certificates are always
verified (aiohttp's default; nothing here turns it off). Tokens and SDP bodies are never
logged.

:func:`rtc_signal` posts the emulator-defined WebRTC offer (see
:mod:`voicegw.realtime.transport`); Coze's hosted rooms use veRTC's own signalling instead.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from ..errors import CloudError, RemoteProtocolError
from ..realtime.transport import SignalAnswer, SignalOffer, signal_path
from ..urls import require_secure

if TYPE_CHECKING:
    from ..config import CloudConfig
    from ..realtime.rooms import CreateRoomRequest, RoomInfo

__all__ = ["STATUS_CODES", "bind_device", "create_room", "post_json", "rtc_signal"]

log = logging.getLogger(__name__)

#: HTTP status -> Coze code when a refusal carries no REST envelope ([JS] ``error.ts``).
STATUS_CODES = {400: 4000, 401: 4100, 403: 4101, 404: 4200, 429: 4013}
_FATAL = frozenset({4000, 4100, 4101, 4200})


def _error(msg: str, code: int | None, logid: str) -> CloudError:
    return CloudError(msg, code=code, retryable=code not in _FATAL, logid=logid)


async def post_json(
    url: str, token: str, body: dict[str, Any], *, timeout: float, what: str
) -> tuple[dict[str, Any], str]:
    """POST ``body`` with a Bearer token; returns ``(envelope, logid)`` of a ``code: 0`` reply.

    ``what`` names the call in error messages (``"create room"``).

    Raises:
        CloudError: HTTP, envelope or network failure (see the module docstring).
    """
    require_secure(url, what)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.post(url, json=body, headers=headers) as resp,
        ):
            logid = resp.headers.get("X-Tt-Logid", "")
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _error(f"{what}: {type(exc).__name__}: {str(exc) or 'timed out'}", None, "") from exc
    envelope: Any = None
    try:
        envelope = json.loads(raw) if raw else None
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("code"), int):
        detail = envelope.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("logid"), str):
            logid = detail["logid"] or logid
        code = envelope["code"]
        if code != 0:
            msg = envelope.get("msg") if isinstance(envelope.get("msg"), str) else ""
            raise _error(f"{what} failed: {code} {msg} (logid {logid})", code, logid)
        if status >= 400:
            code = STATUS_CODES.get(status, status)
            raise _error(f"{what} failed: HTTP {status} (logid {logid})", code, logid)
        return envelope, logid
    if status >= 400:
        code = STATUS_CODES.get(status, status)
        raise _error(f"{what} failed: HTTP {status} (logid {logid})", code, logid)
    raise _error(f"{what}: the response is not a REST envelope (HTTP {status})", None, logid)


async def create_room(cloud: CloudConfig, token: str, req: CreateRoomRequest) -> RoomInfo:
    """``POST {http_url}/v1/audio/rooms``: the room to join (spec 3.2).

    Raises:
        CloudError: the service refused (code, msg, logid) or could not be reached.
    """
    from ..realtime.rooms import decode_room_response, encode_create_room

    envelope, logid = await post_json(
        f"{cloud.http_url}/v1/audio/rooms",
        token,
        encode_create_room(req),
        timeout=cloud.connect_timeout_s,
        what="create room",
    )
    try:
        room = decode_room_response(envelope)
    except RemoteProtocolError as exc:
        raise _error(f"create room: {exc} (logid {logid})", None, logid) from exc
    log.info("room %s created (logid %s)", room.room_id, logid)
    return room


async def bind_device(
    cloud: CloudConfig,
    token: str,
    connector_id: str,
    device_id: str,
    label: str = "",
    user_id: str = "",
) -> str:
    """``POST {http_url}/v1/connectors/{connector_id}/user_configs`` (spec 7.1); returns the logid.

    Registers ``device_id`` (shown as ``label``, default the id itself) under the key
    ``device_id`` for the custom channel ``connector_id``.

    Raises:
        ValueError: empty ``connector_id`` or ``device_id``.
        CloudError: the service refused (code, msg, logid) or could not be reached.
    """
    if not connector_id or not device_id:
        raise ValueError("bind device needs a connector_id and a device_id")
    body: dict[str, Any] = {
        "configs": [
            {"key": "device_id", "enums": [{"label": label or device_id, "value": device_id}]}
        ]
    }
    if user_id:
        body["user_id"] = user_id
    _, logid = await post_json(
        f"{cloud.http_url}/v1/connectors/{connector_id}/user_configs",
        token,
        body,
        timeout=cloud.connect_timeout_s,
        what="bind device",
    )
    log.info("device bound to connector %s (logid %s)", connector_id, logid)
    return logid


async def rtc_signal(http_url: str, room: RoomInfo, offer_sdp: str, *, timeout: float) -> str:
    """Post a WebRTC offer to the emulator's signalling endpoint; returns the answer SDP.

    Authenticates with the room's join token (``RoomInfo.token``), not the access token.

    Raises:
        CloudError: refused, unreachable, or a malformed answer.
    """
    envelope, logid = await post_json(
        http_url.rstrip("/") + signal_path(room.room_id),
        room.token,
        SignalOffer(room.uid, offer_sdp).to_json(),
        timeout=timeout,
        what="rtc signalling",
    )
    try:
        return SignalAnswer.from_json(envelope.get("data")).sdp
    except RemoteProtocolError as exc:
        raise _error(f"rtc signalling: {exc} (logid {logid})", None, logid) from exc
