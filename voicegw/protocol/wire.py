"""JSON text frames <-> event objects (spec 1.5, 1.6).

Every frame is one WebSocket text message holding one JSON object::

    {"id": ..., "event_type": ..., "data": {...}, "detail": {...}}

:func:`encode` writes the envelope in the order real traffic uses (``event_type``, ``id``,
``data``, ``detail``) and omits ``data`` for payload-free events. :func:`decode_server` and
:func:`decode_client` never let anything but :class:`RemoteProtocolError` escape: invalid
UTF-8, invalid JSON, a non-object frame, a missing or non-string ``event_type``, wrong field
types and out-of-range values all raise it, naming the event type and the field path. An
unknown event type becomes :class:`UnknownEvent`.
"""

from __future__ import annotations

import base64
import typing
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import RemoteProtocolError
from .events import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    ClientEvent,
    Detail,
    Event,
    ServerEvent,
    UnknownEvent,
)
from .schema import decode_object, encode_object, unknown_paths

__all__ = [
    "decode",
    "decode_client",
    "decode_server",
    "decode_with",
    "encode",
    "encode_append",
    "encode_dict",
    "unknown_fields",
]

_ENVELOPE_KEYS = frozenset({"id", "event_type", "data", "detail"})


def encode_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready envelope of ``event`` (before serialisation)."""
    out: dict[str, Any] = {}
    if isinstance(event, UnknownEvent):
        out["event_type"] = event.unknown_type
        if event.id is not None:
            out["id"] = event.id
        if event.data is not None:
            out["data"] = event.data
    else:
        out["event_type"] = event.event_type
        if event.id is not None:
            out["id"] = event.id
        name = event.data_field
        data = encode_object(getattr(event, name)) if name else encode_object(event)
        if data or name:
            out["data"] = data
    if event.detail is not None:
        out["detail"] = encode_object(event.detail)
    for k, v in event.envelope_extra.items():
        out.setdefault(k, v)
    return out


def encode(event: Event) -> str:
    """Serialise ``event`` as the text of one WebSocket frame."""
    return orjson.dumps(encode_dict(event)).decode("utf-8")


_APPEND_HEAD = '{"event_type":"input_audio_buffer.append","id":"'


def encode_append(event_id: str, audio: bytes) -> str:
    """Fast path for the hottest frame: ``input_audio_buffer.append`` (50 a second).

    Produces exactly what :func:`encode` produces for
    ``InputAudioBufferAppend(id=event_id, delta=audio)``, without building the event.
    ``event_id`` must need no JSON escaping (the session's ids are hex and dashes).
    """
    b64 = base64.b64encode(audio).decode("ascii")
    return f'{_APPEND_HEAD}{event_id}","data":{{"delta":"{b64}"}}}}'


def _parse(frame: str | bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"frame is not valid JSON ({exc})", path="frame") from None
    if type(obj) is not dict:
        raise RemoteProtocolError("frame is not a JSON object", path="frame")
    return obj


def _decode(
    frame: str | bytes, table: Mapping[str, type[ClientEvent]] | Mapping[str, type[ServerEvent]]
) -> Event:
    obj = _parse(frame)
    event_type = obj.get("event_type")
    if event_type is None:
        raise RemoteProtocolError("is missing", path="event_type")
    if type(event_type) is not str:
        raise RemoteProtocolError("must be a string", path="event_type")
    try:
        return _decode_envelope(obj, event_type, table)
    except RemoteProtocolError as exc:
        if exc.event_type is None:
            raise RemoteProtocolError(
                exc.reason, event_type=event_type, path=exc.path, code=exc.code
            ) from None
        raise


def _decode_envelope(
    obj: dict[str, Any],
    event_type: str,
    table: Mapping[str, type[ClientEvent]] | Mapping[str, type[ServerEvent]],
) -> Event:
    event_id = obj.get("id")
    if event_id is not None and type(event_id) is not str:
        # Docs examples use numeric-looking strings; accept numbers but keep them as text.
        if type(event_id) is int:
            event_id = str(event_id)
        else:
            raise RemoteProtocolError("must be a string", path="id")
    raw_detail = obj.get("detail")
    detail = decode_object(Detail, raw_detail, "detail") if raw_detail is not None else None
    env_extra = {k: v for k, v in obj.items() if k not in _ENVELOPE_KEYS}
    data = obj.get("data")
    cls = table.get(event_type)
    if cls is None:
        return UnknownEvent(
            unknown_type=event_type,
            id=event_id,
            detail=detail,
            data=data,
            envelope_extra=env_extra,
        )
    if data is None:
        data = {}
    elif type(data) is not dict:
        raise RemoteProtocolError("must be an object", path="data")
    name = cls.data_field
    if name is not None:
        inner = decode_object(_resolve(cls, name), data, "data")
        obj_event = cls(id=event_id, detail=detail, envelope_extra=env_extra, **{name: inner})
        check = getattr(obj_event, "_check", None)  # rules of the event around its object
        if check is not None:
            check("data")
        return obj_event
    event = decode_object(cls, data, "data")
    return _with_envelope(event, event_id, detail, env_extra)


_RESOLVED: dict[tuple[type[Any], str], type[Any]] = {}


def _resolve(cls: type[Any], name: str) -> type[Any]:
    key = (cls, name)
    hit = _RESOLVED.get(key)
    if hit is None:
        hit = typing.get_type_hints(cls)[name]
        _RESOLVED[key] = hit
    return hit


def _with_envelope(
    event: Event, event_id: str | None, detail: Detail | None, env_extra: dict[str, Any]
) -> Event:
    # Frozen dataclass: set the envelope fields on the instance decode_object just built.
    object.__setattr__(event, "id", event_id)
    object.__setattr__(event, "detail", detail)
    object.__setattr__(event, "envelope_extra", env_extra)
    return event


def decode_server(frame: str | bytes) -> Event:
    """Decode a frame the service sent. Returns a ServerEvent or an UnknownEvent.

    Raises:
        RemoteProtocolError: the frame is malformed; ``event_type`` and ``path`` say where.
    """
    return _decode(frame, SERVER_EVENTS)


def decode_client(frame: str | bytes) -> Event:
    """Decode a frame a client sent (the emulator's side). Returns a ClientEvent or UnknownEvent.

    Raises:
        RemoteProtocolError: the frame is malformed; ``event_type`` and ``path`` say where.
    """
    return _decode(frame, CLIENT_EVENTS)


def decode_with(
    frame: str | bytes, table: Mapping[str, type[ClientEvent]] | Mapping[str, type[ServerEvent]]
) -> Event:
    """Decode a frame against another API's event table (Realtime, TTS, ASR share the envelope).

    Raises:
        RemoteProtocolError: the frame is malformed; ``event_type`` and ``path`` say where.
    """
    return _decode(frame, table)


def decode(frame: str | bytes, *, direction: str) -> Event:
    """Decode a frame travelling in ``direction`` (``"server"``: sent by the service)."""
    if direction == "server":
        return decode_server(frame)
    if direction == "client":
        return decode_client(frame)
    raise ValueError(f"direction must be 'client' or 'server', got {direction!r}")


def unknown_fields(event: Event) -> list[str]:
    """Dotted paths of every unknown key the event carried (envelope and data)."""
    if isinstance(event, UnknownEvent):
        return []
    found = list(event.envelope_extra)
    name = event.data_field
    found.extend(unknown_paths(getattr(event, name) if name else event, "data"))
    if event.detail is not None:
        found.extend(unknown_paths(event.detail, "detail"))
    return sorted(set(found))
