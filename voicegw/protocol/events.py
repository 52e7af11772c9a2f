"""The events of ``/v1/chat``: 9 upstream (U1-U9) and 21 downstream (D1-D21), spec 2.3 and 2.4.

Each event is a frozen dataclass. Envelope fields (``id``, ``detail``) are common to all; the
rest describe ``data``. Two shapes exist:

* *flat* events, whose own fields are the keys of ``data`` (``InputAudioBufferAppend.delta``);
* *object* events, whose ``data`` is one shared object (a :class:`Chat` or :class:`Message`),
  held in the field named by the class's ``data_field``.

Payload-free events (``chat.created``, ``input_audio_buffer.completed``...) have no data fields;
the wire encoder omits ``data`` for them, as the service does (spec 1.6).

:data:`CLIENT_EVENTS` and :data:`SERVER_EVENTS` map ``event_type`` to class: the single table the
wire codec uses in each direction. An event type missing from the table decodes to
:class:`UnknownEvent`, which keeps everything it received.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..errors import RemoteProtocolError
from .objects import Chat, ChatUpdateData, Message, ToolOutput
from .schema import spec_field

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "ChatCreated",
    "ChatUpdate",
    "ChatUpdated",
    "ClientEvent",
    "ConversationAudioCompleted",
    "ConversationAudioDelta",
    "ConversationAudioSentenceStart",
    "ConversationAudioTranscriptCompleted",
    "ConversationAudioTranscriptUpdate",
    "ConversationChatCancel",
    "ConversationChatCanceled",
    "ConversationChatCompleted",
    "ConversationChatCreated",
    "ConversationChatFailed",
    "ConversationChatInProgress",
    "ConversationChatRequiresAction",
    "ConversationChatSubmitToolOutputs",
    "ConversationClear",
    "ConversationCleared",
    "ConversationMessageCompleted",
    "ConversationMessageCreate",
    "ConversationMessageDelta",
    "Detail",
    "DumpAudio",
    "Error",
    "Event",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCleared",
    "InputAudioBufferComplete",
    "InputAudioBufferCompleted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputTextGenerateAudio",
    "ServerEvent",
    "UnknownEvent",
]


def _envelope(default: Any = None) -> Any:
    return field(default=default, metadata={"envelope": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class Detail:
    """``detail`` of server events: one ``logid`` per connection, ``respond_at`` in ms (string)."""

    logid: str | None = None
    respond_at: str | None = None
    origin_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``id`` is optional on client events (spec 1.6, 1.7)."""

    event_type: ClassVar[str] = ""
    direction: ClassVar[Literal["client", "server"]] = "client"
    #: For object events: the field that holds the whole ``data`` object.
    data_field: ClassVar[str | None] = None

    id: str | None = _envelope()
    detail: Detail | None = _envelope()
    #: Unknown top-level keys of the envelope, kept and reported.
    envelope_extra: dict[str, Any] = field(default_factory=dict, metadata={"envelope": True})
    #: Unknown keys inside ``data`` (flat events only; object events keep them on the object).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientEvent(Event):
    direction: ClassVar[Literal["client", "server"]] = "client"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerEvent(Event):
    direction: ClassVar[Literal["client", "server"]] = "server"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(Event):
    """An event type this version does not know. Nothing it carried is dropped."""

    unknown_type: str = _envelope("")
    data: Any = _envelope()


# ---------------------------------------------------------------- upstream U1-U9 (spec 2.3)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatUpdate(ClientEvent):
    """U1: set the session configuration. The service answers ``chat.updated`` or ``error``."""

    event_type: ClassVar[str] = "chat.update"
    data_field: ClassVar[str | None] = "config"
    config: ChatUpdateData = field(default_factory=ChatUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferAppend(ClientEvent):
    """U2: audio bytes in the configured input format (base64 on the wire)."""

    event_type: ClassVar[str] = "input_audio_buffer.append"
    delta: bytes = spec_field(required=True)

    def __repr__(self) -> str:  # never print audio
        return f"InputAudioBufferAppend(id={self.id!r}, delta=<{len(self.delta)} bytes>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferComplete(ClientEvent):
    """U3: end of a push-to-talk utterance; commits the buffer."""

    event_type: ClassVar[str] = "input_audio_buffer.complete"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferClear(ClientEvent):
    """U4: discard buffered, uncommitted audio."""

    event_type: ClassVar[str] = "input_audio_buffer.clear"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationMessageCreate(ClientEvent):
    """U5: a typed message; ``role='user'`` starts a turn (and cancels a reply with code 3)."""

    event_type: ClassVar[str] = "conversation.message.create"
    role: Literal["user", "assistant"] = spec_field(required=True)
    content_type: Literal["text", "object_string"] = spec_field(required=True)
    content: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationClear(ClientEvent):
    """U6: clear the context (start a new section)."""

    event_type: ClassVar[str] = "conversation.clear"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatSubmitToolOutputs(ClientEvent):
    """U7: results of client-side tool calls for ``chat_id``."""

    event_type: ClassVar[str] = "conversation.chat.submit_tool_outputs"
    chat_id: str = spec_field(required=True)
    tool_outputs: tuple[ToolOutput, ...] = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatCancel(ClientEvent):
    """U8: interrupt the current reply. Send only while a chat is active (spec 2.6.6)."""

    event_type: ClassVar[str] = "conversation.chat.cancel"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputTextGenerateAudio(ClientEvent):
    """U9: speak ``text`` in the session's voice without running the agent (< 1024 bytes)."""

    event_type: ClassVar[str] = "input_text.generate_audio"
    mode: Literal["text"] = spec_field("text")
    text: str = spec_field(required=True, min_bytes=1, max_bytes=1023)


# ---------------------------------------------------------------- downstream D1-D21 (spec 2.4)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatCreated(ServerEvent):
    """D1: first event of a connection."""

    event_type: ClassVar[str] = "chat.created"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatUpdated(ServerEvent):
    """D2: the full effective configuration after ``chat.update``."""

    event_type: ClassVar[str] = "chat.updated"
    data_field: ClassVar[str | None] = "config"
    config: ChatUpdateData = field(default_factory=ChatUpdateData)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ChatEvent(ServerEvent):
    data_field: ClassVar[str | None] = "chat"
    chat: Chat = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatCreated(_ChatEvent):
    """D3: a turn starts."""

    event_type: ClassVar[str] = "conversation.chat.created"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatInProgress(_ChatEvent):
    """D4: the agent is working."""

    event_type: ClassVar[str] = "conversation.chat.in_progress"


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageEvent(ServerEvent):
    data_field: ClassVar[str | None] = "message"
    message: Message = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationMessageDelta(_MessageEvent):
    """D5: incremental text of a message."""

    event_type: ClassVar[str] = "conversation.message.delta"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAudioSentenceStart(ServerEvent):
    """D6: subtitle; the deltas that follow belong to this sentence."""

    event_type: ClassVar[str] = "conversation.audio.sentence_start"
    text: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAudioDelta(_MessageEvent):
    """D7: reply audio; ``message.content`` is base64 in the configured output format."""

    event_type: ClassVar[str] = "conversation.audio.delta"
    #: The decoded payload, kept from validation so the hot path decodes base64 once.
    _audio: bytes | None = field(
        default=None, repr=False, compare=False, metadata={"envelope": True}
    )

    @property
    def audio(self) -> bytes:
        """The decoded audio bytes of this delta."""
        cached = self._audio
        if cached is None:
            cached = base64.b64decode(self.message.content or "")
            object.__setattr__(self, "_audio", cached)
        return cached

    def _check(self, path: str) -> None:
        # Validate while decoding, so bad audio surfaces as RemoteProtocolError at the boundary
        # instead of a binascii.Error wherever ``audio`` is first read (spec 1.5, 8.13).
        try:
            audio = base64.b64decode(self.message.content or "", validate=True)
        except (binascii.Error, ValueError):
            raise RemoteProtocolError(
                "is not valid base64 (standard alphabet, padded)", path=f"{path}.content"
            ) from None
        object.__setattr__(self, "_audio", audio)

    def __repr__(self) -> str:  # never print audio
        m = self.message
        size = len(m.content or "") * 3 // 4
        return f"ConversationAudioDelta(id={m.id!r}, chat_id={m.chat_id!r}, audio=<~{size} bytes>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationMessageCompleted(_MessageEvent):
    """D8: a message is complete (question, answer, verbose, function_call, follow_up...)."""

    event_type: ClassVar[str] = "conversation.message.completed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAudioCompleted(_MessageEvent):
    """D9: all reply audio has been *sent* (not played)."""

    event_type: ClassVar[str] = "conversation.audio.completed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatCompleted(_ChatEvent):
    """D10: the turn is finished."""

    event_type: ClassVar[str] = "conversation.chat.completed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatFailed(_ChatEvent):
    """D11: the turn failed; see ``chat.last_error``."""

    event_type: ClassVar[str] = "conversation.chat.failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(ServerEvent):
    """D12: protocol or processing error; ``detail.origin_message`` may hold the bad frame."""

    event_type: ClassVar[str] = "error"
    code: int = spec_field(required=True)
    msg: str = spec_field("")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferCompleted(ServerEvent):
    """D13: acknowledges ``input_audio_buffer.complete``."""

    event_type: ClassVar[str] = "input_audio_buffer.completed"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferCleared(ServerEvent):
    """D14: acknowledges ``input_audio_buffer.clear``."""

    event_type: ClassVar[str] = "input_audio_buffer.cleared"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationCleared(ServerEvent):
    """D15: acknowledges ``conversation.clear``."""

    event_type: ClassVar[str] = "conversation.cleared"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatCanceled(ServerEvent):
    """D16: output interrupted. ``code``: 1 user voice, 2 client cancel, 3 message.create."""

    event_type: ClassVar[str] = "conversation.chat.canceled"
    code: int | None = spec_field(choices=(1, 2, 3))
    msg: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAudioTranscriptUpdate(ServerEvent):
    """D17: interim ASR text; each update carries the whole hypothesis."""

    event_type: ClassVar[str] = "conversation.audio_transcript.update"
    content: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAudioTranscriptCompleted(ServerEvent):
    """D18: final ASR text of the user's utterance."""

    event_type: ClassVar[str] = "conversation.audio_transcript.completed"
    content: str = spec_field(required=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationChatRequiresAction(_ChatEvent):
    """D19: a client-side tool must run; answer with ``submit_tool_outputs``."""

    event_type: ClassVar[str] = "conversation.chat.requires_action"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferSpeechStarted(ServerEvent):
    """D20: server VAD heard speech start; flush playback now."""

    event_type: ClassVar[str] = "input_audio_buffer.speech_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferSpeechStopped(ServerEvent):
    """D21: server VAD decided the user stopped."""

    event_type: ClassVar[str] = "input_audio_buffer.speech_stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class DumpAudio(ServerEvent):
    """Debug only (seen in the JS SDK): a URL of an audio dump."""

    event_type: ClassVar[str] = "dump.audio"
    url: str | None = None


CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    cls.event_type: cls
    for cls in (
        ChatUpdate,
        InputAudioBufferAppend,
        InputAudioBufferComplete,
        InputAudioBufferClear,
        ConversationMessageCreate,
        ConversationClear,
        ConversationChatSubmitToolOutputs,
        ConversationChatCancel,
        InputTextGenerateAudio,
    )
}

SERVER_EVENTS: dict[str, type[ServerEvent]] = {
    cls.event_type: cls
    for cls in (
        ChatCreated,
        ChatUpdated,
        ConversationChatCreated,
        ConversationChatInProgress,
        ConversationMessageDelta,
        ConversationAudioSentenceStart,
        ConversationAudioDelta,
        ConversationMessageCompleted,
        ConversationAudioCompleted,
        ConversationChatCompleted,
        ConversationChatFailed,
        Error,
        InputAudioBufferCompleted,
        InputAudioBufferCleared,
        ConversationCleared,
        ConversationChatCanceled,
        ConversationAudioTranscriptUpdate,
        ConversationAudioTranscriptCompleted,
        ConversationChatRequiresAction,
        InputAudioBufferSpeechStarted,
        InputAudioBufferSpeechStopped,
        DumpAudio,
    )
}
