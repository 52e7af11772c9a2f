"""The Realtime media + signalling transport, as an interface (spec 3.1).

Coze's hosted Realtime rooms run on Volcengine veRTC: the device joins an RTC room the agent
has already joined, publishes its microphone, subscribes to the agent's audio, and exchanges
the JSON events of spec 3.4/3.5 as RTC *user messages*. There is no Python veRTC SDK, so the
gateway talks to a room through :class:`RtcTransport`; a veRTC binding would be one more
implementation of it. The one shipped, :class:`voicegw.io.webrtc.AiortcTransport`, is plain
WebRTC (aiortc) against the local emulator.

This module is pure: no aiortc, no event loop. It holds the interface, the emulator-internal
signalling shapes and the statistics record.

Emulator/transport-internal pseudo-messages
-------------------------------------------
The veRTC SDK reports the agent joining and leaving with ``onUserJoined``/``onUserLeave``;
WebRTC has no such callback, so the emulator signals them on the data channel with two
messages that are **not Coze events** and never reach the session (the JS SDK surfaces the
same RTC callbacks as the pseudo-events ``bot.join``/``bot.leave``, hence the names)::

    {"event_type": "bot.join", "data": {"uid": "<bot_id>"}}
    {"event_type": "bot.leave", "data": {"uid": "<bot_id>", "reason": "..."}}

A transport consumes them: ``bot.join`` completes :meth:`RtcTransport.wait_agent`;
``bot.leave`` ends :meth:`RtcTransport.messages`.

Signalling (emulator-defined)
-----------------------------
``POST {http_url}/v1/audio/rooms/{room_id}/rtc`` with ``Authorization: Bearer <room token>``
and body ``{"uid": ..., "sdp": <offer>, "type": "offer"}``; the answer is a REST envelope
``{"code": 0, "msg": "", "detail": {"logid"}, "data": {"sdp": <answer>, "type": "answer"}}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..errors import RemoteProtocolError

if TYPE_CHECKING:
    from ..config import CloudConfig
    from .rooms import RoomInfo

__all__ = [
    "AGENT_JOIN",
    "AGENT_LEAVE",
    "DATA_CHANNEL_LABEL",
    "FRAME_MS",
    "RtcTransport",
    "SignalAnswer",
    "SignalOffer",
    "TransportStats",
    "agent_presence",
    "presence_message",
    "signal_path",
]

#: Pseudo-message: the agent joined the room (emulator/transport-internal, not a Coze event).
AGENT_JOIN = "bot.join"
#: Pseudo-message: the agent left the room (emulator/transport-internal, not a Coze event).
AGENT_LEAVE = "bot.leave"
#: Label of the one data channel carrying the JSON events.
DATA_CHANNEL_LABEL = "events"
#: Duration of one audio frame on the wire.
FRAME_MS = 20


class RtcTransport(Protocol):
    """One device's connection to one Realtime room.

    ``join`` connects media and the event channel; only after :meth:`wait_agent` returns may
    events be sent (spec 3.1: "only send uplink events after the agent has joined").
    """

    #: Sample rate of the PCM going in and out (48000 for WebRTC/Opus).
    rate: int

    async def join(self, room: RoomInfo, cloud: CloudConfig, bot_id: str) -> None:
        """Connect; returns once media and the event channel are up."""
        ...

    async def wait_agent(self, timeout: float) -> None:
        """Wait until the agent has joined the room (raises ``CloudError`` on timeout)."""
        ...

    def send_audio(self, pcm: NDArray[np.int16]) -> None:
        """Queue mono int16 audio at :attr:`rate`, any length; never blocks."""
        ...

    def send_message(self, text: str) -> None:
        """Send one JSON event to the agent."""
        ...

    def messages(self) -> AsyncIterator[str]:
        """JSON events from the agent; ends when the agent leaves or the transport drops."""
        ...

    def audio(self) -> AsyncIterator[NDArray[np.int16]]:
        """The agent's audio, mono int16 at :attr:`rate`; ends when the transport drops."""
        ...

    @property
    def queued_ms(self) -> float:
        """Microphone audio accepted by :meth:`send_audio` and not yet sent, ms."""
        ...

    @property
    def is_closed(self) -> bool:
        """True once the transport has dropped or was closed."""
        ...

    async def close(self) -> None:
        """Leave the room and release everything; idempotent."""
        ...


@dataclass(slots=True)
class TransportStats:
    """Counters of one transport (mutable, read any time)."""

    frames_sent: int = 0
    #: Outbound frames dropped because the send queue was full (oldest dropped first).
    frames_dropped: int = 0
    #: Silent frames sent because nothing was queued.
    frames_padded: int = 0
    frames_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0


@dataclass(frozen=True, slots=True)
class SignalOffer:
    """The body of the signalling request."""

    uid: str
    sdp: str
    type: str = "offer"

    def to_json(self) -> dict[str, str]:
        return {"uid": self.uid, "sdp": self.sdp, "type": self.type}

    @classmethod
    def from_json(cls, obj: Any) -> SignalOffer:
        """Validate a decoded request body.

        Raises:
            RemoteProtocolError: naming the missing or invalid field.
        """
        if not isinstance(obj, dict):
            raise RemoteProtocolError("body: expected a JSON object")
        for name in ("uid", "sdp", "type"):
            if not isinstance(obj.get(name), str) or not obj[name]:
                raise RemoteProtocolError(f"{name}: expected a non-empty string")
        if obj["type"] != "offer":
            raise RemoteProtocolError(f"type: expected 'offer', got {obj['type']!r}")
        return cls(obj["uid"], obj["sdp"], obj["type"])


@dataclass(frozen=True, slots=True)
class SignalAnswer:
    """The ``data`` of the signalling response."""

    sdp: str
    type: str = "answer"

    def to_json(self) -> dict[str, str]:
        return {"sdp": self.sdp, "type": self.type}

    @classmethod
    def from_json(cls, obj: Any) -> SignalAnswer:
        """Raises ``RemoteProtocolError`` naming the bad field."""
        if not isinstance(obj, dict) or not isinstance(obj.get("sdp"), str) or not obj["sdp"]:
            raise RemoteProtocolError("data.sdp: expected a non-empty string")
        if obj.get("type") != "answer":
            raise RemoteProtocolError(f"data.type: expected 'answer', got {obj.get('type')!r}")
        return cls(obj["sdp"], "answer")


def signal_path(room_id: str) -> str:
    """The signalling endpoint's path for ``room_id``."""
    return f"/v1/audio/rooms/{room_id}/rtc"


def presence_message(kind: str, uid: str, reason: str = "") -> str:
    """The JSON text of a ``bot.join``/``bot.leave`` pseudo-message."""
    data = {"uid": uid} if kind == AGENT_JOIN else {"uid": uid, "reason": reason}
    return json.dumps({"event_type": kind, "data": data}, separators=(",", ":"))


def agent_presence(text: str) -> str | None:
    """``AGENT_JOIN``/``AGENT_LEAVE`` when ``text`` is one of the pseudo-messages, else None.

    Cheap for ordinary events: only texts mentioning ``bot.`` are parsed.
    """
    if "bot." not in text[:64]:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    kind = obj.get("event_type") if isinstance(obj, dict) else None
    return kind if kind in (AGENT_JOIN, AGENT_LEAVE) else None
