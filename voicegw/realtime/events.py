"""The Realtime (RTC) signalling events: 10 upstream (spec 3.4) and 21 downstream (spec 3.5).

They travel as RTC user messages in the ``/v1/chat`` envelope (spec 1.6, 3.3), so the classes
derive from :class:`~voicegw.protocol.events.ClientEvent` / ``ServerEvent`` and use the same
codec. Events whose meaning and payload are identical on ``/v1/chat`` are *the same classes*,
re-exported here (``conversation.message.create``, ``conversation.chat.submit_tool_outputs``,
``conversation.chat.cancel``, ``input_text.generate_audio``, ``input_audio_buffer.complete``, the
chat and message events, ``input_audio_buffer.completed``); the rest are new classes, prefixed
``Realtime`` where a ``/v1/chat`` name would clash (:class:`RealtimeError`).

:data:`REALTIME_CLIENT_EVENTS` and :data:`REALTIME_SERVER_EVENTS` map ``event_type`` to class;
:func:`decode_realtime_server` and :func:`decode_realtime_client` decode one message against
them (via :func:`voicegw.protocol.wire.decode_with`), and anything else becomes an
:class:`~voicegw.protocol.events.UnknownEvent` (``live.created`` among them: listed by the JS SDK
only, undocumented).

INFERRED choices:

* The Realtime ``error`` carries ``detail{logid}`` *inside* ``data`` (spec 3.3); the attribute is
  :attr:`RealtimeError.error_detail` because ``detail`` is the envelope's field. An envelope-level
  ``detail`` is accepted too, like on ``/v1/chat``.
* ``conversation.chat.requires_action``: the doc table names the array
  ``submit_tool_outputs.tool_outputs``, the doc example and ``/v1/chat`` say ``tool_calls``. We
  read ``tool_calls``; a message that has only ``tool_outputs`` is read as if it said
  ``tool_calls`` (:func:`decode_realtime_server` renames the key before decoding).
* :func:`encode_realtime` always writes ``"data"`` (``{}`` for payload-free events) as the
  Realtime doc examples do; :func:`voicegw.protocol.wire.encode`, which omits an empty ``data``,
  produces frames that decode identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from ..protocol.events import (
    ClientEvent,
    ConversationChatCancel,
    ConversationChatCompleted,
    ConversationChatCreated,
    ConversationChatFailed,
    ConversationChatInProgress,
    ConversationChatRequiresAction,
    ConversationChatSubmitToolOutputs,
    ConversationMessageCompleted,
    ConversationMessageCreate,
    ConversationMessageDelta,
    Event,
    InputAudioBufferComplete,
    InputAudioBufferCompleted,
    InputTextGenerateAudio,
    ServerEvent,
    UnknownEvent,
)
from ..protocol.objects import Usage
from ..protocol.schema import spec_field
from ..protocol.wire import decode_with, encode_dict
from .objects import ModeData, PreAnswerData, RealtimeErrorDetail, SessionUpdateData

__all__ = [
    "REALTIME_CLIENT_EVENTS",
    "REALTIME_SERVER_EVENTS",
    "AudioAgentSpeechStarted",
    "AudioAgentSpeechStopped",
    "AudioUserSpeechStarted",
    "AudioUserSpeechStopped",
    "ClientVad",
    "ConversationAudioTranscriptDelta",
    "ConversationChatCancel",
    "ConversationChatCompleted",
    "ConversationChatCreated",
    "ConversationChatFailed",
    "ConversationChatInProgress",
    "ConversationChatPreAnswer",
    "ConversationChatRequiresAction",
    "ConversationChatSubmitToolOutputs",
    "ConversationCreated",
    "ConversationMessageCompleted",
    "ConversationMessageCreate",
    "ConversationMessageDelta",
    "InputAudioBufferComplete",
    "InputAudioBufferCompleted",
    "InputAudioBufferStart",
    "InputAudioBufferStarted",
    "InputTextGenerateAudio",
    "ModeUpdate",
    "ModeUpdated",
    "RealtimeError",
    "SessionCreated",
    "SessionPreAnswerUpdate",
    "SessionPreAnswerUpdated",
    "SessionUpdate",
    "SessionUpdated",
    "UnknownEvent",
    "decode_realtime_client",
    "decode_realtime_server",
    "encode_realtime",
]


# ---------------------------------------------------------------- upstream (spec 3.4)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdate(ClientEvent):
    """Change the room's session settings; only the fields present change."""

    event_type: ClassVar[str] = "session.update"
    data_field: ClassVar[str | None] = "config"
    config: SessionUpdateData = field(default_factory=SessionUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientVad(ClientEvent):
    """``client_vad`` turn mode: the user started (``True``) or stopped speaking. On change only."""

    event_type: ClassVar[str] = "client.vad"
    vad: bool = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPreAnswerUpdate(ClientEvent):
    """Configure filler replies played while the model thinks."""

    event_type: ClassVar[str] = "session.pre_answer.update"
    data_field: ClassVar[str | None] = "config"
    config: PreAnswerData = field(default_factory=PreAnswerData)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeUpdate(ClientEvent):
    """Set the user's language; honoured only with ``asr_config.stream_mode=output_no_stream``."""

    event_type: ClassVar[str] = "mode.update"
    data_field: ClassVar[str | None] = "config"
    config: ModeData = field(default_factory=ModeData)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferStart(ClientEvent):
    """Push-to-talk press (rooms created with ``client_interrupt``). Duplicates are ignored."""

    event_type: ClassVar[str] = "input_audio_buffer.start"


# ---------------------------------------------------------------- downstream (spec 3.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCreated(ServerEvent):
    """The room's session is initialised (after the user joined)."""

    event_type: ClassVar[str] = "session.created"
    voice_id: str | None = None
    log_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdated(ServerEvent):
    """Acknowledges ``session.update`` with the effective settings."""

    event_type: ClassVar[str] = "session.updated"
    data_field: ClassVar[str | None] = "config"
    config: SessionUpdateData = field(default_factory=SessionUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationCreated(ServerEvent):
    """Room initialisation is complete; ``prologue`` is the opening line (may be ``""``)."""

    event_type: ClassVar[str] = "conversation.created"
    conversation_id: str | None = None
    prologue: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioUserSpeechStarted(ServerEvent):
    """VAD: the user started speaking (a barge-in while the agent speaks)."""

    event_type: ClassVar[str] = "audio.user.speech_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioUserSpeechStopped(ServerEvent):
    """VAD: the user stopped speaking."""

    event_type: ClassVar[str] = "audio.user.speech_stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioAgentSpeechStarted(ServerEvent):
    """The agent's audio started."""

    event_type: ClassVar[str] = "audio.agent.speech_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioAgentSpeechStopped(ServerEvent):
    """The agent's audio stopped: at its end, or interrupted (voice, keyword or cancel)."""

    event_type: ClassVar[str] = "audio.agent.speech_stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAudioTranscriptDelta(ServerEvent):
    """User speech recognition: the whole text so far each time."""

    event_type: ClassVar[str] = "conversation.audio_transcript.delta"
    content: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPreAnswerUpdated(ServerEvent):
    """Acknowledges ``session.pre_answer.update``."""

    event_type: ClassVar[str] = "session.pre_answer.updated"
    data_field: ClassVar[str | None] = "config"
    config: PreAnswerData = field(default_factory=PreAnswerData)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatPreAnswer(ServerEvent):
    """A filler reply was produced (``content`` empty for audio; ``usage`` only for a bot)."""

    event_type: ClassVar[str] = "conversation.chat.pre_answer"
    content: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeUpdated(ServerEvent):
    """Acknowledges ``mode.update``."""

    event_type: ClassVar[str] = "mode.updated"
    data_field: ClassVar[str | None] = "config"
    config: ModeData = field(default_factory=ModeData)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferStarted(ServerEvent):
    """Acknowledges ``input_audio_buffer.start`` (push-to-talk press)."""

    event_type: ClassVar[str] = "input_audio_buffer.started"


@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeError(ServerEvent):
    """``error``: 4029 inactivity (room dismissed), 4027 overdue, 4028 no credits (spec 3.7)."""

    event_type: ClassVar[str] = "error"
    code: int = spec_field(required=True)
    msg: str = spec_field("")
    error_detail: RealtimeErrorDetail | None = spec_field(wire="detail")

    @property
    def logid(self) -> str | None:
        """The log id, from ``data.detail`` or else the envelope's ``detail``."""
        if self.error_detail is not None and self.error_detail.logid:
            return self.error_detail.logid
        return self.detail.logid if self.detail is not None else None


REALTIME_CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    cls.event_type: cls
    for cls in (
        SessionUpdate,
        ConversationMessageCreate,
        ConversationChatSubmitToolOutputs,
        ConversationChatCancel,
        ClientVad,
        SessionPreAnswerUpdate,
        ModeUpdate,
        InputTextGenerateAudio,
        InputAudioBufferStart,
        InputAudioBufferComplete,
    )
}

REALTIME_SERVER_EVENTS: dict[str, type[ServerEvent]] = {
    cls.event_type: cls
    for cls in (
        SessionCreated,
        SessionUpdated,
        ConversationCreated,
        ConversationChatCreated,
        ConversationChatInProgress,
        ConversationMessageDelta,
        ConversationMessageCompleted,
        ConversationChatCompleted,
        ConversationChatRequiresAction,
        ConversationChatFailed,
        AudioUserSpeechStarted,
        AudioUserSpeechStopped,
        AudioAgentSpeechStarted,
        AudioAgentSpeechStopped,
        ConversationAudioTranscriptDelta,
        SessionPreAnswerUpdated,
        ConversationChatPreAnswer,
        ModeUpdated,
        InputAudioBufferStarted,
        InputAudioBufferCompleted,
        RealtimeError,
    )
}

_REQUIRES_ACTION = ConversationChatRequiresAction.event_type


def _tool_outputs_alias(text: str | bytes) -> str | bytes:
    """Rename ``submit_tool_outputs.tool_outputs`` to ``tool_calls`` (the doc table's spelling)."""
    try:
        obj = orjson.loads(text)
        sto = obj["data"]["required_action"]["submit_tool_outputs"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return text  # let the real decoder report what is wrong
    if type(sto) is not dict or "tool_calls" in sto or "tool_outputs" not in sto:
        return text
    sto["tool_calls"] = sto.pop("tool_outputs")
    return orjson.dumps(obj)


def decode_realtime_server(text: str | bytes) -> Event:
    """Decode one message the agent sent. Returns a ServerEvent or an UnknownEvent.

    Raises:
        RemoteProtocolError: the message is malformed; ``event_type`` and ``path`` say where.
    """
    if isinstance(text, str):
        probe = _REQUIRES_ACTION in text and "tool_outputs" in text
    else:
        probe = _REQUIRES_ACTION.encode() in text and b"tool_outputs" in text
    if probe:
        text = _tool_outputs_alias(text)
    return decode_with(text, REALTIME_SERVER_EVENTS)


def decode_realtime_client(text: str | bytes) -> Event:
    """Decode one message a client sent (the emulated agent's side).

    Raises:
        RemoteProtocolError: the message is malformed; ``event_type`` and ``path`` say where.
    """
    return decode_with(text, REALTIME_CLIENT_EVENTS)


def encode_realtime(event: Event) -> str:
    """Serialise ``event`` as one RTC user message, always with ``"data"`` (``{}`` if empty)."""
    out = encode_dict(event)
    if "data" not in out:
        # Keep the envelope order of real traffic: event_type, id, data, detail.
        ordered: dict[str, Any] = {k: out[k] for k in ("event_type", "id") if k in out}
        ordered["data"] = {}
        ordered.update((k, v) for k, v in out.items() if k not in ordered)
        out = ordered
    return orjson.dumps(out).decode("utf-8")
