"""States of a Realtime room session and the tables of legal transitions between them.

Mirrors :mod:`voicegw.protocol.states`: every change of the states of
:class:`~voicegw.realtime.session.RealtimeSession` goes through one of these tables, keyed by
``(state, trigger)``. A trigger is the ``event_type`` of the wire event that causes the transition
(``"session.created"``, ``"input_audio_buffer.start"``), or a name starting with ``=`` for
transitions no single wire event causes (``"=close"``). A missing key means the transition is not
legal: a local command raises :class:`~voicegw.errors.LocalProtocolError` (or, for the duplicate
push-to-talk commands the service ignores, does nothing), a server event is reported with a
``Notice`` and followed (the service is the authority on its own chats).
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Final

__all__ = [
    "CHAT_TRANSITIONS",
    "LIVE_CHAT",
    "PTT_TRANSITIONS",
    "ROOM_TRANSITIONS",
    "SERVER_CHAT_TARGET",
    "TURN_MODES",
    "ChatPhase",
    "PttState",
    "RoomState",
]

#: Room turn modes: the room's ``turn_detection.type`` (``client_interrupt`` = push-to-talk).
TURN_MODES: Final = ("server_vad", "client_vad", "semantic_vad", "client_interrupt")


class RoomState(StrEnum):
    """Where the room is in its life; compares equal to its string value."""

    JOINING = "joining"
    CREATED = "created"
    CONFIGURING = "configuring"
    READY = "ready"
    CLOSED = "closed"


class ChatPhase(Enum):
    """The agent's side of the current turn."""

    NONE = "NONE"
    ACTIVE = "ACTIVE"
    REQUIRES_ACTION = "REQUIRES_ACTION"


class PttState(Enum):
    """The push-to-talk key, as the agent knows it."""

    UP = "UP"
    DOWN = "DOWN"


_R = RoomState
_H = ChatPhase

#: Room transitions; ``=configure``: the first ``session.update`` was sent; ``=close``: closed.
ROOM_TRANSITIONS: Final[dict[tuple[RoomState, str], RoomState]] = {
    (_R.JOINING, "session.created"): _R.CREATED,
    (_R.CREATED, "=configure"): _R.CONFIGURING,
    (_R.CONFIGURING, "conversation.created"): _R.READY,
    # Tolerated orders: the agent may skip ahead; the service is the authority on its room.
    (_R.JOINING, "conversation.created"): _R.READY,
    (_R.CREATED, "conversation.created"): _R.READY,
    **{(s, "=close"): _R.CLOSED for s in (_R.JOINING, _R.CREATED, _R.CONFIGURING, _R.READY)},
}

#: Chat transitions; server chat events not listed are followed anyway (see ``SERVER_CHAT_TARGET``).
#: ``=interrupt``: cancelled locally or barged in; ``=close``: the room closed.
CHAT_TRANSITIONS: Final[dict[tuple[ChatPhase, str], ChatPhase]] = {
    (_H.NONE, "conversation.chat.created"): _H.ACTIVE,
    (_H.ACTIVE, "conversation.chat.created"): _H.ACTIVE,  # a newer turn replaces the chat
    (_H.ACTIVE, "conversation.chat.in_progress"): _H.ACTIVE,
    (_H.REQUIRES_ACTION, "conversation.chat.in_progress"): _H.ACTIVE,
    (_H.ACTIVE, "conversation.chat.requires_action"): _H.REQUIRES_ACTION,
    (_H.REQUIRES_ACTION, "conversation.chat.submit_tool_outputs"): _H.ACTIVE,
    (_H.ACTIVE, "conversation.chat.completed"): _H.NONE,
    (_H.REQUIRES_ACTION, "conversation.chat.completed"): _H.NONE,
    (_H.ACTIVE, "conversation.chat.failed"): _H.NONE,
    (_H.REQUIRES_ACTION, "conversation.chat.failed"): _H.NONE,
    (_H.ACTIVE, "=interrupt"): _H.NONE,
    (_H.REQUIRES_ACTION, "=interrupt"): _H.NONE,
    **{(s, "=close"): _H.NONE for s in _H},
}

SERVER_CHAT_TARGET: Final[dict[str, ChatPhase]] = {
    "conversation.chat.created": _H.ACTIVE,
    "conversation.chat.in_progress": _H.ACTIVE,
    "conversation.chat.requires_action": _H.REQUIRES_ACTION,
    "conversation.chat.completed": _H.NONE,
    "conversation.chat.failed": _H.NONE,
}

#: Push-to-talk key; a duplicate press/release has no entry and is ignored.
PTT_TRANSITIONS: Final[dict[tuple[PttState, str], PttState]] = {
    (PttState.UP, "input_audio_buffer.start"): PttState.DOWN,
    (PttState.DOWN, "input_audio_buffer.complete"): PttState.UP,
    (PttState.DOWN, "=close"): PttState.UP,
    (PttState.UP, "=close"): PttState.UP,
}

#: Chat phases in which a chat exists and may be cancelled.
LIVE_CHAT: Final = frozenset({_H.ACTIVE, _H.REQUIRES_ACTION})
