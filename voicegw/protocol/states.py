"""States of a ``/v1/chat`` session and the tables of legal transitions between them.

Two rules, borrowed from h11's ``_state.py``:

* every change of the three states of :class:`~voicegw.protocol.session.Session` goes through
  one of the tables below, and only the session changes them;
* this module knows nothing about audio devices, sockets or clocks.

A session runs three small machines side by side:

* the **connection** (:class:`ConnState`): ``chat.created`` -> ``chat.update`` ->
  ``chat.updated`` (spec 2.6.1), then failure or loss;
* the **input** (:class:`InputState`): whether microphone audio may be appended now;
* the **chat** (:class:`ChatState`): the agent's turn, from the moment the user's turn is
  committed to ``conversation.chat.completed``/``failed``/``canceled`` (spec 2.6.2-2.6.7).

Table keys are ``(state, trigger)``. A trigger is the ``event_type`` of the wire event that causes
the transition (``"conversation.chat.created"``, ``"input_audio_buffer.complete"``), or, for
transitions no single wire event causes, a name starting with ``=`` (``"=lost"``). A missing key
means the transition is illegal: the session raises :class:`~voicegw.errors.LocalProtocolError`
for a local action and reports a ``Notice`` for a server event (the service is the authority on
its own state, so the session follows it anyway).
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from .objects import ChatUpdateData

__all__ = [
    "CHAT_TRANSITIONS",
    "CONN_TRANSITIONS",
    "FATAL_ERROR_CODES",
    "INPUT_TRANSITIONS",
    "LIVE_CHAT",
    "SERVER_CHAT_TARGET",
    "ChatState",
    "ConnState",
    "InputState",
    "TurnMode",
    "config_mismatch",
    "turn_mode_of",
]


class TurnMode(Enum):
    """Who decides that the user's turn is over (``turn_detection.type``, spec 2.2.4)."""

    PUSH_TO_TALK = "client_interrupt"
    SERVER_VAD = "server_vad"
    SEMANTIC_VAD = "semantic_vad"


class ConnState(Enum):
    """Where the connection is in its setup and life (spec 2.1, 2.6.1)."""

    AWAIT_CREATED = "AWAIT_CREATED"
    CONFIGURING = "CONFIGURING"
    READY = "READY"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


class InputState(Enum):
    """Whether the microphone may append audio now."""

    IDLE = "IDLE"
    #: Push-to-talk: the key is held; appends accumulate until ``input_audio_buffer.complete``.
    LISTENING = "LISTENING"
    #: Server or semantic VAD: audio streams continuously once the session is READY.
    STREAMING = "STREAMING"


class ChatState(Enum):
    """The agent's side of the current turn."""

    NONE = "NONE"
    #: A user turn was committed (or a message sent); no ``conversation.chat.created`` yet.
    PENDING = "PENDING"
    #: A chat was created and is running.
    ACTIVE = "ACTIVE"
    #: The chat waits for ``conversation.chat.submit_tool_outputs``.
    REQUIRES_ACTION = "REQUIRES_ACTION"


#: Chat states in which a chat exists and may be cancelled (spec 2.6.6: never cancel otherwise).
LIVE_CHAT: Final = frozenset({ChatState.ACTIVE, ChatState.REQUIRES_ACTION})

#: Error codes after which the service closes the connection or nothing can work: billing
#: (4027 overdue, 4028 no credits; spec 1.8) and authentication (4100, 4101; spec 6).
FATAL_ERROR_CODES: Final = frozenset({4027, 4028, 4100, 4101})

_C = ConnState
_I = InputState
_H = ChatState

#: Connection transitions. ``=fatal``: a fatal error code, or ``chat.updated`` contradicting the
#: requested input format; ``=lost``: the transport is gone.
CONN_TRANSITIONS: Final[dict[tuple[ConnState, str], ConnState]] = {
    (_C.AWAIT_CREATED, "chat.created"): _C.CONFIGURING,
    (_C.AWAIT_CREATED, "=fatal"): _C.FAILED,
    (_C.AWAIT_CREATED, "=lost"): _C.CLOSED,
    (_C.CONFIGURING, "chat.updated"): _C.READY,
    # Any error while configuring means the service refused ``chat.update``.
    (_C.CONFIGURING, "error"): _C.FAILED,
    (_C.CONFIGURING, "=fatal"): _C.FAILED,
    (_C.CONFIGURING, "=lost"): _C.CLOSED,
    (_C.READY, "chat.updated"): _C.READY,
    (_C.READY, "=fatal"): _C.FAILED,
    (_C.READY, "=lost"): _C.CLOSED,
    (_C.FAILED, "=lost"): _C.CLOSED,
}

#: Input transitions. ``=stream``: the session became READY in a VAD mode; ``=stop``: the
#: session failed or closed.
INPUT_TRANSITIONS: Final[dict[tuple[InputState, str], InputState]] = {
    (_I.IDLE, "=press"): _I.LISTENING,
    (_I.LISTENING, "input_audio_buffer.complete"): _I.IDLE,
    (_I.IDLE, "=stream"): _I.STREAMING,
    (_I.IDLE, "=stop"): _I.IDLE,
    (_I.LISTENING, "=stop"): _I.IDLE,
    (_I.STREAMING, "=stop"): _I.IDLE,
}

#: Chat transitions.
#:
#: * ``=await``/``=settle``: the count of committed user turns without a chat became non-zero /
#:   zero (a release, a sent message or ``speech_stopped`` / a chat was created or the turn was
#:   abandoned);
#: * ``=barge_in``: the user interrupted the reply locally (press, cancel, a new message or
#:   ``generate_audio``, or ``speech_started`` in VAD modes);
#: * ``=lost``: the connection ended.
CHAT_TRANSITIONS: Final[dict[tuple[ChatState, str], ChatState]] = {
    (_H.NONE, "=await"): _H.PENDING,
    (_H.PENDING, "=settle"): _H.NONE,
    (_H.NONE, "conversation.chat.created"): _H.ACTIVE,
    (_H.PENDING, "conversation.chat.created"): _H.ACTIVE,
    (_H.ACTIVE, "conversation.chat.in_progress"): _H.ACTIVE,
    (_H.REQUIRES_ACTION, "conversation.chat.in_progress"): _H.ACTIVE,
    (_H.ACTIVE, "conversation.chat.requires_action"): _H.REQUIRES_ACTION,
    (_H.REQUIRES_ACTION, "conversation.chat.submit_tool_outputs"): _H.ACTIVE,
    (_H.ACTIVE, "conversation.chat.completed"): _H.NONE,
    (_H.REQUIRES_ACTION, "conversation.chat.completed"): _H.NONE,
    (_H.ACTIVE, "conversation.chat.failed"): _H.NONE,
    (_H.REQUIRES_ACTION, "conversation.chat.failed"): _H.NONE,
    (_H.ACTIVE, "conversation.chat.canceled"): _H.NONE,
    (_H.REQUIRES_ACTION, "conversation.chat.canceled"): _H.NONE,
    (_H.ACTIVE, "=barge_in"): _H.NONE,
    (_H.REQUIRES_ACTION, "=barge_in"): _H.NONE,
    (_H.NONE, "=lost"): _H.NONE,
    (_H.PENDING, "=lost"): _H.NONE,
    (_H.ACTIVE, "=lost"): _H.NONE,
    (_H.REQUIRES_ACTION, "=lost"): _H.NONE,
}

#: Where a chat event from the service leads when it is not legal in the current state: the
#: service is the authority on its own chats, so the session reports the surprise and follows.
SERVER_CHAT_TARGET: Final[dict[str, ChatState]] = {
    "conversation.chat.created": _H.ACTIVE,
    "conversation.chat.in_progress": _H.ACTIVE,
    "conversation.chat.requires_action": _H.REQUIRES_ACTION,
    "conversation.chat.completed": _H.NONE,
    "conversation.chat.failed": _H.NONE,
    "conversation.chat.canceled": _H.NONE,
}


def turn_mode_of(config: ChatUpdateData) -> TurnMode:
    """The turn mode ``config`` asks for; absent means push-to-talk, the service default."""
    td = config.turn_detection
    return TurnMode(td.type) if td is not None and td.type is not None else TurnMode.PUSH_TO_TALK


def config_mismatch(requested: ChatUpdateData, echoed: ChatUpdateData) -> str | None:
    """Describe how ``chat.updated`` contradicts what the session relies on, if it does.

    The input format must match, or the service misreads every append (spec 2.1); the turn mode
    must match, or the session runs the wrong machine. ``bit_depth`` is left out: G.711 devices
    send 8 and what the service echoes for it is unverified (spec 9, question 12).
    """
    want, got = requested.input_audio, echoed.input_audio
    if want is not None and got is not None:
        for name in ("format", "codec", "sample_rate", "channel"):
            w, g = getattr(want, name), getattr(got, name)
            if w is not None and g is not None and w != g:
                return f"input_audio.{name} is {g!r}, requested {w!r}"
    if echoed.turn_detection is not None and echoed.turn_detection.type is not None:
        mode = turn_mode_of(requested).value
        if echoed.turn_detection.type != mode:
            return f"turn_detection.type is {echoed.turn_detection.type!r}, requested {mode!r}"
    return None
