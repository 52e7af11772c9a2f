"""Timed event sequences of a reply (spec 2.6.2, 2.6.3, 2.6.7, 2.6.8), built ahead of time.

A reply is planned the moment it starts: every event gets a due time, and the connection
queues them all. Cancelling a reply drops the events that are not yet due.

Order of a chat turn (spec 2.6.2, real traffic), with the emulator's timing:

=====================================  ==================================================
``conversation.chat.created``          ``start``
``conversation.chat.in_progress``      ``start``
``conversation.message.delta`` xN      one per word, the first after ``think_s``, then
                                       every ``word_s`` (the answer text streams ahead of
                                       its audio, as in real traffic)
``conversation.audio.sentence_start``  just before the first audio delta of its sentence
``conversation.audio.delta`` xM        paced by :mod:`.pacing`; a sentence's audio is never
                                       due before its text was streamed plus ``tts_s``
``conversation.message.completed``     answer, full text, with the last text delta
``conversation.message.completed``     verbose ``generate_answer_finish`` marker, right after
(remaining audio deltas)
``conversation.audio.completed``       with the last audio delta, ``content: ""``
``conversation.chat.completed``        same time, ``completed_at`` and non-zero ``usage``
=====================================  ==================================================

A tool-call turn (spec 2.6.7) stops after ``in_progress`` with a ``function_call`` message and
``conversation.chat.requires_action``; when the client submits the output, the same chat
resumes with ``in_progress`` and the answer sequence above (without ``chat.created``).

TTS-only output (``input_text.generate_audio``, the prologue) has the 2.6.8 shape: sentence
starts and audio deltas whose message ids are all ``"0"``, then ``conversation.audio.completed``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.events import (
    ConversationAudioCompleted,
    ConversationAudioDelta,
    ConversationAudioSentenceStart,
    ConversationChatCompleted,
    ConversationChatCreated,
    ConversationChatInProgress,
    ConversationChatRequiresAction,
    ConversationMessageCompleted,
    ConversationMessageDelta,
    ServerEvent,
)
from ..protocol.objects import (
    Chat,
    Message,
    RequiredAction,
    SubmitToolOutputs,
    ToolCall,
    ToolCallFunction,
    Usage,
)
from .bots import Reply, ToolRequest
from .outbound import Delta, OutputPlan
from .pacing import BURST_SPEED, schedule

__all__ = [
    "DEFAULT_TIMING",
    "FINISH_CONTENT",
    "ChatContext",
    "Timed",
    "Timing",
    "answer_events",
    "chat_start_events",
    "text_chunks",
    "tool_call_events",
    "tts_events",
    "usage_for",
]

#: ``content`` of the verbose end-of-generation message, exactly as real traffic has it.
FINISH_CONTENT = (
    '{"msg_type":"generate_answer_finish","data":"{\\"finish_reason\\":0,\\"FinData\\":\\"\\"}",'
    '"from_module":null,"from_unit":null}'
)

#: (due time, event) pairs, in sending order.
Timed = list[tuple[float, ServerEvent]]

_TOKEN = re.compile(r"\S+\s*")


@dataclass(frozen=True, slots=True)
class Timing:
    """Latencies of the emulated agent, in seconds."""

    #: From ``chat.in_progress`` to the first text delta.
    think_s: float = 0.2
    #: Between two text deltas.
    word_s: float = 0.03
    #: From a sentence's last text delta to its first audio delta.
    tts_s: float = 0.15
    #: How many times faster than real time audio is pushed (``math.inf``: all at once).
    burst_speed: float = BURST_SPEED


#: The latencies used unless a caller passes others.
DEFAULT_TIMING = Timing()


@dataclass(frozen=True, slots=True)
class ChatContext:
    """One chat's identity and the id source for its messages and events."""

    chat: Chat
    new_id: Callable[[], str]
    event_id: Callable[[], str]
    wall_s: Callable[[], int]

    def message(self, **fields: object) -> Message:
        c = self.chat
        base = Message(
            id="",
            conversation_id=c.conversation_id,
            bot_id=c.bot_id,
            chat_id=c.id,
            section_id=c.section_id,
        )
        return dataclasses.replace(base, **fields)  # type: ignore[arg-type]

    def with_status(self, status: str, **fields: object) -> Chat:
        return dataclasses.replace(self.chat, status=status, **fields)  # type: ignore[arg-type]


def text_chunks(text: str) -> list[str]:
    """Split an answer into streaming deltas: one per word; unspaced text in 4-character runs.

    ``"".join(text_chunks(t)) == t`` for text without leading whitespace.
    """
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if len(token) > 8 and " " not in token.strip():
            out.extend(token[i : i + 4] for i in range(0, len(token), 4))
        else:
            out.append(token)
    return out or [text]


def usage_for(question: str, answer: str, context_chars: int = 0) -> Usage:
    """Token counts of a finished chat: about four characters per token, never zero.

    ``context_chars`` (earlier messages of the section) count as input, so clearing the
    conversation visibly shrinks ``input_count``.
    """
    inp = max(1, math.ceil((len(question) + context_chars) / 4))
    out = max(1, math.ceil(len(answer) / 4))
    return Usage(token_count=inp + out, output_count=out, input_count=inp)


def chat_start_events(ctx: ChatContext, start: float) -> Timed:
    """``conversation.chat.created`` then ``conversation.chat.in_progress`` at ``start``."""
    zero = Usage(token_count=0, output_count=0, input_count=0)
    return [
        (
            start,
            ConversationChatCreated(id=ctx.event_id(), chat=ctx.with_status("created", usage=zero)),
        ),
        (
            start,
            ConversationChatInProgress(
                id=ctx.event_id(), chat=ctx.with_status("in_progress", usage=zero)
            ),
        ),
    ]


def tool_call_events(
    ctx: ChatContext, request: ToolRequest, call_id: str, at: float
) -> tuple[Timed, ToolCall]:
    """The ``function_call`` message and ``requires_action`` (spec 2.6.7) at ``at``."""
    args = json.dumps(request.arguments, ensure_ascii=False, separators=(",", ":"))
    content = json.dumps(
        {"name": request.name, "arguments": request.arguments},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    msg = ctx.message(
        id=ctx.new_id(),
        role="assistant",
        type="function_call",
        content=content,
        content_type="text",
    )
    call = ToolCall(
        id=call_id, type="function", function=ToolCallFunction(name=request.name, arguments=args)
    )
    action = RequiredAction(
        type="submit_tool_outputs", submit_tool_outputs=SubmitToolOutputs(tool_calls=(call,))
    )
    usage = Usage(token_count=0, output_count=0, input_count=0)
    chat = ctx.with_status("requires_action", required_action=action, usage=usage)
    return [
        (at, ConversationMessageCompleted(id=ctx.event_id(), message=msg)),
        (at, ConversationChatRequiresAction(id=ctx.event_id(), chat=chat)),
    ], call


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def answer_events(
    ctx: ChatContext,
    reply: Reply,
    deltas: list[list[Delta]],
    plan: OutputPlan,
    start: float,
    question: str,
    timing: Timing | None = None,
    context_chars: int = 0,
) -> Timed:
    """The answer part of a chat, from the first text delta to ``conversation.chat.completed``.

    Args:
        ctx: the chat.
        reply: what the bot answered (its sentences give the text).
        deltas: encoded audio, one list per sentence (from :func:`.outbound.encode_reply`).
        plan: output settings (pacing).
        start: when the chat started (``in_progress``).
        question: the user's text, for ``usage``.
        timing: emulated latencies.
        context_chars: length of the earlier conversation, for ``usage``.
    """
    timing = timing or DEFAULT_TIMING
    answer_id = ctx.new_id()
    texts = [s.text for s in reply.sentences]
    full = " ".join(texts)
    text_ev: Timed = []
    ready: list[float] = []
    t = start + timing.think_s
    for k, sentence in enumerate(texts):
        chunks = text_chunks(sentence + (" " if k < len(texts) - 1 else ""))
        for chunk in chunks:
            msg = ctx.message(
                id=answer_id, role="assistant", type="answer", content=chunk, content_type="text"
            )
            text_ev.append((t, ConversationMessageDelta(id=ctx.event_id(), message=msg)))
            t += timing.word_s
        ready.append(t - timing.word_s + timing.tts_s)
    text_done = text_ev[-1][0] if text_ev else start
    answer = ctx.message(
        id=answer_id, role="assistant", type="answer", content=full, content_type="text"
    )
    verbose = ctx.message(
        id=ctx.new_id(),
        role="assistant",
        type="verbose",
        content=FINISH_CONTENT,
        content_type="text",
    )
    text_ev.append((text_done, ConversationMessageCompleted(id=ctx.event_id(), message=answer)))
    text_ev.append((text_done, ConversationMessageCompleted(id=ctx.event_id(), message=verbose)))

    audio_ev = _audio_events(ctx, texts, deltas, plan, ready, answer_id, timing.burst_speed)
    end = max(text_done, audio_ev[-1][0] if audio_ev else text_done)
    done = ctx.message(
        id=answer_id, role="assistant", type="answer", content="", content_type="audio"
    )
    final = ctx.with_status(
        "completed", completed_at=ctx.wall_s(), usage=usage_for(question, full, context_chars)
    )
    tail: Timed = [
        (end, ConversationAudioCompleted(id=ctx.event_id(), message=done)),
        (end, ConversationChatCompleted(id=ctx.event_id(), chat=final)),
    ]
    return _merge(text_ev, audio_ev) + tail


def _audio_events(
    ctx: ChatContext,
    texts: list[str],
    deltas: list[list[Delta]],
    plan: OutputPlan,
    ready: list[float],
    message_id: str,
    speed: float,
) -> Timed:
    flat = [(k, d) for k, sentence in enumerate(deltas) for d in sentence]
    times = schedule(
        [d.duration_s for _, d in flat],
        min(ready, default=0.0),
        speed=speed,
        limit=plan.limit,
        ready=[ready[k] for k, _ in flat],
    )
    out: Timed = []
    started: set[int] = set()
    for (k, d), due in zip(flat, times, strict=True):
        if k not in started:
            started.add(k)
            out.append((due, ConversationAudioSentenceStart(id=ctx.event_id(), text=texts[k])))
        msg = _audio_message(ctx, message_id, _b64(d.data))
        out.append((due, ConversationAudioDelta(id=ctx.event_id(), message=msg)))
    return out


def _audio_message(ctx: ChatContext, message_id: str, content: str) -> Message:
    if message_id == "0":
        return Message(
            id="0",
            conversation_id="0",
            bot_id="0",
            role="assistant",
            type="answer",
            content=content,
            content_type="audio",
            chat_id="0",
            section_id="0",
        )
    return ctx.message(
        id=message_id, role="assistant", type="answer", content=content, content_type="audio"
    )


def _merge(a: Timed, b: Timed) -> Timed:
    """Merge two sequences by time; on ties ``a`` (text) goes first. Both must be sorted."""
    out: Timed = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and a[i][0] <= b[j][0]):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def tts_events(
    ctx: ChatContext,
    texts: list[str],
    deltas: list[list[Delta]],
    plan: OutputPlan,
    start: float,
    timing: Timing | None = None,
) -> Timed:
    """The 2.6.8 shape: sentence starts, ``"0"``-id audio deltas, ``audio.completed``."""
    ready = [start] * len(texts)
    speed = (timing or DEFAULT_TIMING).burst_speed
    audio = _audio_events(ctx, texts, deltas, plan, ready, "0", speed)
    end = audio[-1][0] if audio else start
    done = _audio_message(ctx, "0", "")
    return [*audio, (end, ConversationAudioCompleted(id=ctx.event_id(), message=done))]
