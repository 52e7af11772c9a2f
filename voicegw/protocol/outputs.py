"""What a :class:`~voicegw.protocol.session.Session` tells its caller, and its event ids.

The session's outputs are small frozen dataclasses returned by ``events_received()``; the caller
acts on each in order. Sans-I/O like the rest of the package.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeAlias

from .events import ServerEvent
from .objects import ChatUpdateData, ToolCall

__all__ = [
    "ConfigUpdated",
    "FlushPlayback",
    "Notice",
    "Ready",
    "Received",
    "ServerError",
    "SessionEvent",
    "ToolCallsRequested",
]

# ---------------------------------------------------------------- what the caller acts on


@dataclass(frozen=True, slots=True)
class Ready:
    """The service confirmed the configuration (first ``chat.updated``); audio may flow now."""

    config: ChatUpdateData


@dataclass(frozen=True, slots=True)
class ConfigUpdated:
    """A later ``chat.updated``: the effective configuration changed."""

    config: ChatUpdateData


@dataclass(frozen=True, slots=True)
class FlushPlayback:
    """Empty the local playback buffer now. ``epoch`` counts flushes (see ``playback_epoch``)."""

    reason: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Received:
    """A server event, in arrival order (late audio of cancelled chats excepted)."""

    event: ServerEvent


@dataclass(frozen=True, slots=True)
class ToolCallsRequested:
    """Run these tools, then call :meth:`Session.submit_tool_outputs` with ``chat_id``."""

    chat_id: str
    tool_calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event, or a configuration the service did not honour. If ``fatal``, close."""

    code: int
    msg: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """Something odd but tolerated (unknown event or fields, an out-of-order event)."""

    message: str


SessionEvent: TypeAlias = (
    Ready | ConfigUpdated | FlushPlayback | Received | ToolCallsRequested | ServerError | Notice
)


class _EventIds:
    """Unique event ids in UUID v4 form: 80 random bits per session plus a counter.

    Every uplink event gets a unique id (spec 8.10) so acknowledgements can be matched; a
    fresh ``uuid4()`` per 20 ms append costs more than the rest of the frame's encoding.
    """

    __slots__ = ("_head", "_n")

    def __init__(self) -> None:
        r = uuid.uuid4().hex
        variant = "89ab"[int(r[16], 16) & 3]
        self._head = f"{r[:8]}-{r[8:12]}-4{r[13:16]}-{variant}{r[17:20]}-"
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f"{self._head}{self._n:012x}"
