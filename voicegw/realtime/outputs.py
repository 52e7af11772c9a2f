"""What a :class:`~voicegw.realtime.session.RealtimeSession` tells its caller.

Besides the outputs shared with the chat session (:class:`FlushPlayback`, :class:`Received`,
:class:`ToolCallsRequested`, :class:`ServerError`, :class:`Notice`), a room has its own life:
it becomes ready (:class:`RoomReady`), its settings change (:class:`RealtimeConfigUpdated`), and
it ends (:class:`RoomClosed`), after which only a new room helps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ..protocol.outputs import FlushPlayback, Notice, Received, ServerError, ToolCallsRequested
from .objects import SessionUpdateData

__all__ = ["RealtimeConfigUpdated", "RealtimeOutput", "RoomClosed", "RoomReady"]


@dataclass(frozen=True, slots=True)
class RoomReady:
    """``conversation.created``: the room is ready. ``config`` is the effective configuration."""

    conversation_id: str | None
    prologue: str
    config: SessionUpdateData


@dataclass(frozen=True, slots=True)
class RoomClosed:
    """The room is gone (4029 inactivity, 4027/4028 billing, or the agent left: code 0).

    A new room is needed; wait ``retry_after_s`` before creating it.
    """

    code: int
    reason: str
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RealtimeConfigUpdated:
    """``session.updated``: the agent's effective configuration."""

    config: SessionUpdateData


RealtimeOutput: TypeAlias = (
    RoomReady
    | RoomClosed
    | RealtimeConfigUpdated
    | FlushPlayback
    | Received
    | ToolCallsRequested
    | ServerError
    | Notice
)
