"""Building blocks of the emulated Realtime agent (:mod:`.agent`): room setup, outputs, and
the timelines of a reply, planned ahead like :mod:`.turns` does for ``/v1/chat``.

Pure: every function returns ``(due time, item)`` pairs; the agent queues them under the
reply's tag so an interrupt can drop what is not yet due.

Timeline of an answer (spec 3.6 free-talk order, INFERRED there):

=====================================  ==================================================
``conversation.message.delta`` xN      one per word from ``t0`` (after ``think_s``), then
                                       every ``word_s``
``audio.agent.speech_started``         ``tts_s`` after the first sentence's last delta
agent audio                            :data:`CHUNK_S` pieces, each released
                                       :data:`LEAD_S` before it plays
``conversation.message.completed``     after the last delta, never before the audio starts
``conversation.chat.completed``        with it (``usage`` non-zero)
``audio.agent.speech_stopped``         when the audio has played out
=====================================  ==================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..audio import Samples
from ..dsp.resample import resample
from ..protocol.events import ServerEvent
from ..protocol.objects import RequiredAction, SubmitToolOutputs, ToolCall, ToolCallFunction, Usage
from ..realtime.events import (
    AudioAgentSpeechStarted,
    AudioAgentSpeechStopped,
    ConversationChatCompleted,
    ConversationChatCreated,
    ConversationChatInProgress,
    ConversationChatRequiresAction,
    ConversationMessageCompleted,
    ConversationMessageDelta,
)
from .bots import Reply, Sentence, ToolRequest
from .turns import ChatContext, Timing, text_chunks, usage_for

__all__ = [
    "CHUNK_S",
    "DEFAULT_VOICE_ID",
    "LEAD_S",
    "RATE",
    "TURN_TYPES",
    "AgentOutput",
    "CloseRoom",
    "Planned",
    "PlayAudio",
    "RoomSetup",
    "SendText",
    "StopAudio",
    "TurnType",
    "answer_plan",
    "chat_opening",
    "speech_plan",
    "tool_request_plan",
]

#: Sample rate of the audio in and out (WebRTC Opus).
RATE = 48000
#: Turn detection types a room may be created with (spec 3.2; ``client_vad`` from [JS]).
TurnType = Literal["server_vad", "client_interrupt", "semantic_vad", "client_vad"]
TURN_TYPES: tuple[TurnType, ...] = ("server_vad", "client_interrupt", "semantic_vad", "client_vad")
#: ``voice_id`` when the room request names none (spec 3.2 default).
DEFAULT_VOICE_ID = "柔美女友"
#: Agent audio is released in pieces of this many seconds ...
CHUNK_S = 0.1
#: ... this far ahead of their play time (so stopping it is prompt).
LEAD_S = 0.15

_ZERO = Usage(token_count=0, output_count=0, input_count=0)


@dataclass(frozen=True, slots=True)
class RoomSetup:
    """What the create-room request fixed for the room (spec 3.2)."""

    room_id: str
    bot_id: str
    uid: str
    conversation_id: str
    voice_id: str = DEFAULT_VOICE_ID
    turn_type: TurnType = "server_vad"
    prologue: str = ""
    prologue_delay_ms: int = 500
    room_mode: str = "default"
    codec: str = "OPUS"
    #: The room's logid (``session.created.log_id``, errors' ``detail.logid``).
    logid: str = ""


@dataclass(frozen=True, slots=True)
class SendText:
    """Send this JSON event to the user (``event`` is what it encodes)."""

    text: str
    event: ServerEvent


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Queue this agent audio (mono int16 at :data:`RATE`) for playback."""

    samples: Samples


@dataclass(frozen=True, slots=True)
class StopAudio:
    """Drop agent audio queued for playback (an interrupt)."""


@dataclass(frozen=True, slots=True)
class CloseRoom:
    """Dismiss the room: the user leaves, it cannot be rejoined."""

    code: int
    reason: str


AgentOutput = SendText | PlayAudio | StopAudio | CloseRoom
#: (due time, item) pairs in sending order.
Planned = list[tuple[float, ServerEvent | PlayAudio]]


def chat_opening(ctx: ChatContext, now: float, question: str, *, spoken: bool) -> Planned:
    """The user's message (spoken turns only), ``chat.created`` and ``in_progress``."""
    out: Planned = []
    if spoken:
        user = ctx.message(
            id=ctx.new_id(), role="user", type="question", content=question, content_type="text"
        )
        out.append((now, ConversationMessageCompleted(message=user)))
    out.append((now, ConversationChatCreated(chat=ctx.with_status("created", usage=_ZERO))))
    in_progress = ctx.with_status("in_progress", usage=_ZERO)
    out.append((now, ConversationChatInProgress(chat=in_progress)))
    return out


def tool_request_plan(ctx: ChatContext, request: ToolRequest, call_id: str, at: float) -> Planned:
    """``conversation.chat.requires_action`` carrying one ``tool_calls`` entry (spec 3.5)."""
    call = ToolCall(
        id=call_id,
        type="function",
        function=ToolCallFunction(
            name=request.name, arguments=json.dumps(request.arguments, ensure_ascii=False)
        ),
    )
    action = RequiredAction(
        type="submit_tool_outputs", submit_tool_outputs=SubmitToolOutputs(tool_calls=(call,))
    )
    chat = ctx.with_status("requires_action", required_action=action, usage=_ZERO)
    return [(at, ConversationChatRequiresAction(chat=chat))]


def speech_plan(
    sentences: tuple[Sentence, ...], start: float, loudness_rate: int = 0
) -> tuple[Planned, float]:
    """Agent audio from ``start`` between ``speech_started`` and ``speech_stopped``.

    Returns the plan and the audio's duration in seconds (an empty plan and 0 when the
    sentences carry no audio). ``loudness_rate`` (-50..100) scales the level by about
    -3..+6 dB (INFERRED scale).
    """
    parts = [resample(s.audio, s.rate, RATE) for s in sentences if s.audio.size]
    if not parts:
        return [], 0.0
    audio = np.concatenate(parts)
    if loudness_rate:
        gain = 10 ** (loudness_rate * 0.06 / 20)
        audio = np.clip(audio.astype(np.float32) * gain, -32768, 32767).astype(np.int16)
    duration = audio.size / RATE
    out: Planned = [(start, AudioAgentSpeechStarted())]
    step = round(CHUNK_S * RATE)
    for k, lo in enumerate(range(0, audio.size, step)):
        out.append((max(start, start + k * CHUNK_S - LEAD_S), PlayAudio(audio[lo : lo + step])))
    out.append((start + duration, AudioAgentSpeechStopped()))
    return out, duration


def answer_plan(
    ctx: ChatContext,
    reply: Reply,
    question: str,
    t0: float,
    timing: Timing,
    *,
    completed_at: int,
    loudness_rate: int = 0,
) -> tuple[Planned, float, float]:
    """The answer's deltas, audio and completion from ``t0`` (see the module docstring).

    Returns the plan and the audio's start and duration (duration 0 without audio).
    """
    msg_id = ctx.new_id()
    out: Planned = []
    t = t0
    first_end: float | None = None
    for sentence in reply.sentences:
        for chunk in text_chunks(sentence.text) if sentence.text else []:
            msg = ctx.message(
                id=msg_id, role="assistant", type="answer", content=chunk, content_type="text"
            )
            out.append((t, ConversationMessageDelta(message=msg)))
            t += timing.word_s
        if first_end is None:
            first_end = t
    start = (first_end if first_end is not None else t0) + timing.tts_s
    audio, duration = speech_plan(reply.sentences, start, loudness_rate)
    done = max(t, start) if duration else t
    msg = ctx.message(
        id=msg_id, role="assistant", type="answer", content=reply.text, content_type="text"
    )
    usage = usage_for(question, reply.text)
    chat = ctx.with_status("completed", completed_at=completed_at, usage=usage)
    out += audio
    out.append((done, ConversationMessageCompleted(message=msg)))
    out.append((done, ConversationChatCompleted(chat=chat)))
    out.sort(key=lambda item: item[0])  # stable: same-time items keep their order
    return out, start, duration
