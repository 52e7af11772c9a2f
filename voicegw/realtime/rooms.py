"""Create room, ``POST /v1/audio/rooms`` (coze-protocol.md 3.2): the request and the response.

Pure: the objects, their validation and the REST envelope codec. The HTTP call itself is
:func:`voicegw.io.rest.create_room`; the emulator's endpoint is :mod:`voicegw.emulator.http`.

Every class is a frozen schema dataclass (:mod:`voicegw.protocol.schema`), so ranges and enums are
declared once and checked both ways: :func:`encode_create_room` refuses a request that breaks the
spec with :class:`~voicegw.errors.LocalProtocolError`, :func:`decode_create_room` refuses a body
with :class:`~voicegw.errors.RemoteProtocolError`; both name the field (``config.
prologue_delay_duration_ms``). A field left ``None`` is not sent and the service's default
applies; :data:`ROOM_DEFAULTS` holds those defaults and :meth:`RoomConfig.effective` fills them in.

The response is the standard REST envelope ``{code, msg, detail{logid}, data{room_id, app_id,
token, uid}}``: :func:`decode_room_response` returns a :class:`RoomInfo` for ``code`` 0 and raises
:class:`~voicegw.errors.CloudError` (code, msg, logid) otherwise. :class:`RoomInfo` never shows its
join token in ``repr``.

INFERRED choices:

* ``connector_id`` is sent only when set; the service then presumably uses the API channel
  (:data:`API_CONNECTOR_ID`, ``"1024"``), which the JS SDK marks as required but the doc omits.
* ``turn_detection.type`` accepts ``client_vad`` (the JS SDK lists it; the doc table does not).
* ``translate_config`` is refused unless ``room_mode`` is ``translate``, where the doc says it
  applies; ``video_config`` is accepted in every mode.
* A refused request is retryable unless its code says retrying cannot help: 4000 (bad request),
  4100/4101 (authentication, permission), 4200 (not found), 4027/4028 (billing: retry only after a
  long back-off, which the caller decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import CloudError, LocalProtocolError, RemoteProtocolError
from ..protocol.schema import decode_object, encode_object, merge, spec_field

__all__ = [
    "API_CONNECTOR_ID",
    "ROOM_DEFAULTS",
    "CreateRoomRequest",
    "GlossaryEntry",
    "RoomAudioConfig",
    "RoomConfig",
    "RoomInfo",
    "RoomTranslateConfig",
    "RoomTurnDetection",
    "RoomVideoConfig",
    "decode_create_room",
    "decode_room_response",
    "encode_create_room",
    "encode_room_error",
    "encode_room_response",
]

#: The API channel's connector id (the INFERRED default when ``connector_id`` is not sent).
API_CONNECTOR_ID = "1024"

#: Codes of a refused create-room request for which an immediate retry cannot help.
_NOT_RETRYABLE = frozenset({4000, 4027, 4028, 4100, 4101, 4200})


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomAudioConfig:
    """Audio codec of the RTC media; the service default is OPUS."""

    codec: Literal["AACLC", "G711A", "OPUS", "G722"] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomVideoConfig:
    """Video of the RTC room (vision agents); defaults H264, main stream, 1 fps, 1 s expiry."""

    codec: Literal["H264", "BYTEVC1"] | None = None
    stream_video_type: Literal["main", "screen"] | None = None
    video_frame_rate: int | None = spec_field(lo=1, hi=24)
    video_frame_expire_duration: int | None = spec_field(lo=1, hi=10)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomTurnDetection:
    """Fixed for the room: ``server_vad`` (RTC default), ``client_interrupt`` (push-to-talk)..."""

    type: Literal["server_vad", "client_interrupt", "semantic_vad", "client_vad"] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class GlossaryEntry:
    """One fixed translation of a ``translate`` room."""

    original: str = spec_field(required=True)
    translation: str = spec_field(required=True)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomTranslateConfig:
    """Languages of a ``translate`` room (``en``/``zh`` only); ``from`` is a Python keyword."""

    from_: Literal["en", "zh"] | None = spec_field(wire="from")
    to: Literal["en", "zh"] | None = None
    hot_words: tuple[str, ...] | None = None
    glossary: tuple[GlossaryEntry, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomConfig:
    """``config`` of the create-room request (spec 3.2)."""

    room_mode: Literal["default", "podcast", "s2s", "translate"] | None = None
    audio_config: RoomAudioConfig | None = None
    video_config: RoomVideoConfig | None = None
    turn_detection: RoomTurnDetection | None = None
    prologue_content: str | None = None
    prologue_delay_duration_ms: int | None = spec_field(lo=0, hi=5000)
    translate_config: RoomTranslateConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def effective(self) -> RoomConfig:
        """This configuration with the service's defaults filled in where nothing is set."""
        return merge(ROOM_DEFAULTS, self)

    @property
    def turn_type(self) -> str:
        """The room's turn detection type (``server_vad`` unless set)."""
        td = self.turn_detection
        return td.type if td is not None and td.type is not None else "server_vad"

    def _check(self, path: str) -> None:
        if self.translate_config is not None and self.room_mode != "translate":
            p = f"{path}.translate_config" if path else "translate_config"
            raise RemoteProtocolError(
                f"only applies when room_mode is 'translate', not {self.room_mode!r}", path=p
            )


#: What the service applies for anything ``config`` leaves out (spec 3.2).
ROOM_DEFAULTS = RoomConfig(
    room_mode="default",
    audio_config=RoomAudioConfig(codec="OPUS"),
    turn_detection=RoomTurnDetection(type="server_vad"),
    prologue_delay_duration_ms=500,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRoomRequest:
    """Body of ``POST /v1/audio/rooms``. Only ``bot_id`` is required."""

    bot_id: str = spec_field(required=True, min_bytes=1)
    conversation_id: str | None = None
    voice_id: str | None = None
    uid: str | None = None
    workflow_id: str | None = None
    connector_id: str | None = None
    config: RoomConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomInfo:
    """``data`` of the response: join ``room_id`` on veRTC app ``app_id`` as ``uid``."""

    room_id: str = spec_field(required=True, min_bytes=1)
    app_id: str = spec_field(required=True)
    token: str = spec_field(required=True, min_bytes=1)
    uid: str = spec_field(required=True, min_bytes=1)
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the join token
        return (
            f"RoomInfo(room_id={self.room_id!r}, app_id={self.app_id!r}, token=<hidden>, "
            f"uid={self.uid!r})"
        )


def encode_create_room(req: CreateRoomRequest) -> dict[str, Any]:
    """The JSON body for ``req``, validated.

    Raises:
        LocalProtocolError: a field breaks the spec (``path`` names it, e.g.
            ``config.prologue_delay_duration_ms``).
    """
    body = encode_object(req)
    try:
        decode_object(CreateRoomRequest, body)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(
            f"invalid create-room request: {exc.reason}", path=exc.path
        ) from None
    return body


def decode_create_room(body: Any) -> CreateRoomRequest:
    """Decode a create-room body (the emulator's side).

    Raises:
        RemoteProtocolError: naming the first bad field.
    """
    return decode_object(CreateRoomRequest, body)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if type(value) is str else ""


def decode_room_response(obj: Any) -> RoomInfo:
    """Read the REST envelope of a create-room response.

    Raises:
        CloudError: ``code`` is not 0; carries ``code``, the message and ``logid``.
        RemoteProtocolError: the envelope or its ``data`` is malformed (names the field).
    """
    if type(obj) is not dict:
        raise RemoteProtocolError("the response is not a JSON object", path="response")
    code = obj.get("code")
    if type(code) is not int:
        raise RemoteProtocolError("must be an integer", path="code")
    detail = obj.get("detail")
    logid = _text(detail, "logid") if type(detail) is dict else ""
    if code != 0:
        msg = _text(obj, "msg") or "no message"
        raise CloudError(
            f"create room refused: {code} {msg} (logid {logid or '-'})",
            code=code,
            retryable=code not in _NOT_RETRYABLE,
            logid=logid,
        )
    return decode_object(RoomInfo, obj.get("data"), "data")


def encode_room_response(info: RoomInfo, *, logid: str) -> dict[str, Any]:
    """The success envelope for ``info`` (the emulator's side)."""
    return {"code": 0, "msg": "", "detail": {"logid": logid}, "data": encode_object(info)}


def encode_room_error(code: int, msg: str, *, logid: str) -> dict[str, Any]:
    """A refusal envelope (the emulator's side)."""
    if code == 0:
        raise ValueError("a refusal needs a non-zero code")
    return {"code": code, "msg": msg, "detail": {"logid": logid}}
