"""Sans-I/O implementation of Coze's ``/v1/chat`` protocol.

Nothing in this package performs I/O, reads a clock or imports asyncio, websockets or pyaudio:
callers feed it text frames and the current time, and read back frames to send and events to act
on. See :mod:`.events` for the events, :mod:`.wire` for the JSON codec and :mod:`.session` for
the state machine.
"""

from __future__ import annotations

from . import events, objects
from .events import *  # noqa: F403
from .objects import *  # noqa: F403
from .session import (
    ChatState,
    ConnState,
    FlushPlayback,
    InputState,
    Ready,
    Received,
    Session,
    SessionEvent,
    TurnMode,
)
from .wire import decode_client, decode_server, encode, unknown_fields

__all__ = [
    *events.__all__,
    *objects.__all__,
    "ChatState",
    "ConnState",
    "FlushPlayback",
    "InputState",
    "Ready",
    "Received",
    "Session",
    "SessionEvent",
    "TurnMode",
    "decode_client",
    "decode_server",
    "encode",
    "unknown_fields",
]
