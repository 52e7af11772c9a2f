"""Sans-I/O core of one emulated ``/v1/chat`` connection (spec 2.1-2.7).

:class:`ChatConnection` is fed client frames with the time they arrived and queues server
frames with the time they are due. It never reads a clock, sleeps or does I/O: pacing and VAD
decisions use the ``now`` passed in and the audio's own sample timeline. The only clock it is
given is a wall clock, used solely for the wall-time *fields* (``detail.respond_at``,
``created_at``, ``completed_at``, the logid's timestamp)::

    conn = ChatConnection(bot, now=t0)
    conn.receive(frame, now)             # any client frame
    for text in conn.due(now): ...       # frames whose time has come, in order
    conn.next_deadline()                 # when to call due() next, or None

Behaviour where the spec is silent (all INFERRED, also listed in the package README):

* ids: every server event gets a fresh UUID v4, except the direct acknowledgements of a client
  event that carried an ``id`` (``chat.updated``, ``input_audio_buffer.completed``/``cleared``,
  ``conversation.cleared``, and ``conversation.chat.canceled`` caused by a client cancel),
  which echo it (spec 1.7).
* errors: a malformed frame (bad JSON, wrong types, out-of-range values, a binary frame) gets
  ``error`` 4000 naming the field path, with ``detail.origin_message`` holding the frame text
  (up to 64 KiB); the connection stays open and the configuration is unchanged. An unknown
  event type gets 4000 ``"unknown event type: NAME"``. Unknown fields are ignored and logged.
* ``input_audio_buffer.complete``/``clear`` outside push-to-talk: error 4000 (spec 9.8).
* push-to-talk submit of audio that is not what ``format`` says (raw PCM under the default
  ``wav``): only the error 4000 with the service's text, no ``completed``; the buffer is
  dropped. In VAD modes the same error is sent at the utterance's onset, and the utterance is
  ignored (no ``speech_started``/``speech_stopped``).
* a push-to-talk buffer with no speech: ``input_audio_buffer.completed`` then
  ``conversation.audio_transcript.completed`` with ``content: ""``, and no chat (spec 2.6.3).
* a new user turn (``input_audio_buffer.complete`` or a user ``conversation.message.create``)
  while a reply is in flight cancels it with code 3 first; the spec documents code 3 for
  ``message.create`` only.
* ``conversation.chat.cancel`` with nothing in flight: error 4000 ``"no chat in progress"``;
  the session keeps working (spec 9.7). A cancel also stops TTS-only audio (prologue,
  ``input_text.generate_audio``) with ``canceled`` code 2.
* ``input_text.generate_audio`` during a chat reply sends ``conversation.chat.canceled``
  without ``data`` (the docs' example shape) so clients can close out that chat.
* server VAD with ``interrupt_config``: ``speech_started`` is still sent; a reply in flight is
  cancelled (code 1) only when an interim or final transcript matches a keyword
  (``keyword_contains``, the default, or ``keyword_prefix``). Unscripted transcripts never
  match. An utterance that ends while a reply is still in flight is transcribed
  (``speech_stopped``, ``transcript.completed``) but starts no chat.
* semantic VAD: end of turn after ``silence_threshold_ms`` if the judge says the utterance is
  finished, else after ``silence_threshold_ms + semantic_unfinished_wait_time_ms`` (see
  :mod:`.asr`).
* ``event_subscriptions``: when non-empty, only the listed types are sent, filtered when each
  frame is released; unknown names are ignored; ``error`` is always sent so protocol mistakes
  never go unnoticed.
* the prologue (``need_play_prologue``) plays once per connection, right after the first
  ``chat.updated`` that enables it, in the 2.6.8 shape.
* changing ``input_audio`` or ``turn_detection`` discards buffered, uncommitted input audio.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import CodecError, RemoteProtocolError
from ..protocol.events import (
    ChatCreated,
    ChatUpdate,
    ChatUpdated,
    ConversationAudioTranscriptCompleted,
    ConversationAudioTranscriptUpdate,
    ConversationChatCancel,
    ConversationChatCanceled,
    ConversationChatInProgress,
    ConversationChatSubmitToolOutputs,
    ConversationClear,
    ConversationCleared,
    ConversationMessageCompleted,
    ConversationMessageCreate,
    Detail,
    Error,
    Event,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferComplete,
    InputAudioBufferCompleted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputTextGenerateAudio,
    ServerEvent,
)
from ..protocol.objects import Chat, ChatUpdateData, OutputAudio, Usage
from ..protocol.schema import merge
from ..protocol.wire import decode_client, encode, unknown_fields
from .asr import INTERIM_EVERY_S, describe_speech, hypothesis, is_finished
from .bots import Bot, Reply, Sentence, UserTurn
from .ids import IdFactory
from .intake import MAX_ORIGIN_CHARS, take_frame
from .listener import Heard, Interim, Listener, Utterance
from .outbound import OutputPlan, encode_reply
from .outbox import Outbox, Stream
from .settings import effective
from .turns import (
    DEFAULT_TIMING,
    ChatContext,
    Timed,
    Timing,
    answer_events,
    chat_start_events,
    tool_call_events,
    tts_events,
)
from .vad import DEFAULT_THRESHOLD_DBFS

__all__ = ["CANCEL_MESSAGES", "DEFAULT_PROLOGUE", "MAX_ORIGIN_CHARS", "ChatConnection"]

log = logging.getLogger(__name__)

#: ``conversation.chat.canceled`` messages by code (spec 2.4 D16; the service's texts are unknown).
CANCEL_MESSAGES = {
    1: "interrupted by user speech",
    2: "canceled by conversation.chat.cancel",
    3: "interrupted by a new user message",
}
#: What the prologue says when ``prologue_content`` is not set.
DEFAULT_PROLOGUE = "Hello! This is the voicegw emulator. How can I help you?"


class _ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every line with the connection's logid (never with payloads)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['logid'] if self.extra else '-'}] {msg}", kwargs


@dataclass(slots=True)
class _Utt:
    """The VAD utterance in progress."""

    script: str | None
    failed: bool = False
    barged: bool = False


class ChatConnection:
    """One emulated ``/v1/chat`` session.

    Args:
        bot: the agent stand-in (see :mod:`.bots`); one per connection.
        now: monotonic time the connection opened; ``chat.created`` is due then.
        bot_id: the ``bot_id`` query parameter, echoed in chats and messages.
        wall_clock: Unix time in seconds, for wall-time fields only.
        rng: randomness for ids (seed it for reproducible ids).
        timing: the emulated agent's latencies.
        vad_threshold_dbfs: the energy VAD's speech level.
        history: how many event types :attr:`received` and :attr:`sent` keep.
        logid: the connection's logid (the server makes it at the handshake), else a new one.
    """

    def __init__(
        self,
        bot: Bot,
        *,
        now: float,
        bot_id: str = "7000000000000000001",
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        timing: Timing = DEFAULT_TIMING,
        vad_threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
        history: int = 1000,
        logid: str | None = None,
    ) -> None:
        self.bot = bot
        self.bot_id = bot_id
        self.timing = timing
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self._wall = wall_clock
        self._ids = IdFactory(rng or random.Random(), lambda: int(wall_clock() * 1000))
        #: The connection's single ``detail.logid``.
        self.logid = logid or self._ids.logid()
        self.log = _ConnectionLog(log, {"logid": self.logid})
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._client = ChatUpdateData()
        #: The effective configuration (what ``chat.updated`` echoes).
        self.config = effective(self._client)
        self._plan = OutputPlan.from_config(self._out())
        self._own_conversation = self._ids.numeric()
        self.section_id = self._own_conversation
        self._context: deque[str] = deque(maxlen=200)
        self._outbox = Outbox()
        self._prologue_played = False
        self._utt: _Utt | None = None
        self._listener = self._make_listener()
        #: Event types received and sent, newest last (bounded).
        self.received: deque[str] = deque(maxlen=history)
        self.sent: deque[str] = deque(maxlen=history)
        self._handlers: dict[type[Event], Callable[[Any, float, str], None]] = {
            ChatUpdate: self._on_update,
            InputAudioBufferAppend: self._on_append,
            InputAudioBufferComplete: self._on_complete,
            InputAudioBufferClear: self._on_clear,
            ConversationMessageCreate: self._on_message,
            ConversationClear: self._on_clear_conversation,
            ConversationChatSubmitToolOutputs: self._on_tool_outputs,
            ConversationChatCancel: self._on_cancel,
            InputTextGenerateAudio: self._on_generate_audio,
        }
        self._push(now, ChatCreated(id=self._ids.event_id()))

    # ------------------------------------------------------------------ public interface

    @property
    def conversation_id(self) -> str:
        """``chat_config.conversation_id`` if the client set one, else the connection's own."""
        cc = self.config.chat_config
        return (cc.conversation_id if cc else None) or self._own_conversation

    def receive(self, frame: str | bytes, now: float) -> None:
        """Take one client frame that arrived at ``now``. Never raises for bad input."""
        got = take_frame(frame, decode_client)
        origin, name, event = got.origin, got.name, got.event
        self.received.append(name)
        if event is None:
            if got.exc is not None and name == ConversationChatSubmitToolOutputs.event_type:
                self.log.info("bad tool outputs: %s", got.exc)
                self._error(now, "invalid message", origin)  # the service's own words
            else:
                self._error(now, got.error or "invalid frame", origin)
            return
        if self._debug:
            self.log.debug("> %s", name)
        handler = self._handlers.get(type(event))
        if handler is None:
            self._error(now, f"unknown event type: {name}", origin)
            return
        extra = unknown_fields(event)
        if extra:
            self.log.info("ignoring unknown fields in %s: %s", name, ", ".join(extra))
        try:
            handler(event, now, origin)
        except CodecError as exc:
            self._error(now, f"the parameter audio is invalid: {exc}", origin)

    def due(self, now: float) -> list[str]:
        """Frames due at or before ``now``, in order, each stamped with ``detail``."""
        out: list[str] = []
        subs = self.config.event_subscriptions
        for item in self._outbox.pop_due(now):
            kind = item.event.event_type
            if subs and kind != "error" and kind not in subs:
                continue
            detail = Detail(
                logid=self.logid,
                respond_at=str(int(self._wall() * 1000)),
                origin_message=item.origin,
            )
            out.append(encode(dataclasses.replace(item.event, detail=detail)))
            self.sent.append(kind)
            if self._debug:
                self.log.debug("< %s", kind)
        return out

    def next_deadline(self) -> float | None:
        """When the next queued frame is due, or ``None`` when nothing is queued."""
        return self._outbox.next_deadline()

    # ------------------------------------------------------------------ outbox

    def _push(
        self, t: float, event: ServerEvent, tag: str | None = None, origin: str | None = None
    ) -> None:
        self._outbox.push(t, event, tag, origin)

    def _error(self, now: float, msg: str, origin: str | None, code: int = 4000) -> None:
        self.log.info("error %d: %s", code, msg)
        self._push(now, Error(id=self._ids.event_id(), code=code, msg=msg), origin=origin)

    def _interrupt(
        self, now: float, code: int | None, ack_id: str | None = None, *, chats_only: bool = False
    ) -> bool:
        """Stop everything in flight; send ``canceled``. Returns whether anything was."""
        active = self._outbox.in_flight(now)
        if not active:
            return False
        self._outbox.stop(active, now)
        if chats_only and not any(s.kind == "chat" for s in active):
            return True
        msg = CANCEL_MESSAGES.get(code) if code is not None else None
        self._push(
            now, ConversationChatCanceled(id=ack_id or self._ids.event_id(), code=code, msg=msg)
        )
        return True

    # ------------------------------------------------------------------ configuration

    def _out(self) -> OutputAudio:
        assert self.config.output_audio is not None
        return self.config.output_audio

    def _make_listener(self) -> Listener:
        td = self.config.turn_detection
        assert td is not None and self.config.input_audio is not None
        return Listener(
            self.config.input_audio,
            vad=td.type != "client_interrupt",
            prefix_padding_ms=float(td.prefix_padding_ms or 0),
            end_silence_ms=self._end_silence_ms,
            threshold_dbfs=self.vad_threshold_dbfs,
        )

    def _end_silence_ms(self) -> float:
        td = self.config.turn_detection
        assert td is not None
        sv = td.semantic_vad_config
        if td.type == "semantic_vad" and sv is not None:
            base = float(sv.silence_threshold_ms or 300)
            if is_finished(self.bot.scripted_transcript()):
                return base
            return base + float(sv.semantic_unfinished_wait_time_ms or 500)
        return float(td.silence_duration_ms or 500)

    def _on_update(self, ev: ChatUpdate, now: float, origin: str) -> None:
        candidate = merge(self._client, ev.config)
        try:
            eff = effective(candidate)
        except RemoteProtocolError as exc:
            self._error(now, str(exc), origin)
            return
        old = (self.config.input_audio, self.config.turn_detection)
        self._client, self.config = candidate, eff
        self._plan = OutputPlan.from_config(self._out())
        if (eff.input_audio, eff.turn_detection) != old:
            self._listener = self._make_listener()
            self._utt = None
        self._push(now, ChatUpdated(id=ev.id or self._ids.event_id(), config=eff))
        if eff.need_play_prologue and not self._prologue_played:
            self._prologue_played = True
            self._speak(eff.prologue_content or DEFAULT_PROLOGUE, now)

    # ------------------------------------------------------------------ input audio

    def _vad_mode(self) -> str | None:
        td = self.config.turn_detection
        kind = td.type if td is not None else None
        return None if kind == "client_interrupt" else kind

    def _on_append(self, ev: InputAudioBufferAppend, now: float, origin: str) -> None:
        for result in self._listener.append(ev.delta):
            if isinstance(result, Heard):
                self._on_heard(result, now)
            elif isinstance(result, Interim):
                self._on_interim(result.speech_s, now)
            else:
                self._on_utterance(result, now)

    def _keyword_mode(self) -> bool:
        td = self.config.turn_detection
        return td is not None and td.interrupt_config is not None

    def _keyword_hit(self, text: str) -> bool:
        td = self.config.turn_detection
        ic = td.interrupt_config if td is not None else None
        if ic is None or self._utt is None or self._utt.script is None:
            return False
        if ic.mode == "keyword_prefix":
            return any(text.lstrip().startswith(k) for k in ic.keywords or ())
        return any(k in text for k in ic.keywords or ())

    def _on_heard(self, heard: Heard, now: float) -> None:
        self._utt = _Utt(self.bot.scripted_transcript())
        if heard.invalid is not None:
            self._utt.failed = True
            self._error(now, heard.invalid, None)
            return
        self._push(now, InputAudioBufferSpeechStarted(id=self._ids.event_id()))
        if not self._keyword_mode():
            self._utt.barged = self._interrupt(now, 1)

    def _transcript_step(self, text: str, now: float) -> None:
        if self._utt is not None and not self._utt.barged and self._keyword_hit(text):
            self._utt.barged = self._interrupt(now, 1)

    def _on_interim(self, speech_s: float, now: float) -> None:
        if self._utt is None or self._utt.failed:
            return
        text = hypothesis(self._utt.script, speech_s)
        self._push(now, ConversationAudioTranscriptUpdate(id=self._ids.event_id(), content=text))
        self._transcript_step(text, now)

    def _on_utterance(self, utt: Utterance, now: float) -> None:
        state, self._utt = self._utt, None
        if state is None or state.failed:
            return
        self._utt = state  # keyword checks below still need the script
        self._push(now, InputAudioBufferSpeechStopped(id=self._ids.event_id()))
        final = state.script if state.script is not None else describe_speech(utt.speech_s)
        self._transcript_step(final, now)
        self._utt = None
        self._push(
            now, ConversationAudioTranscriptCompleted(id=self._ids.event_id(), content=final)
        )
        if self._outbox.in_flight(now):
            self.log.info("utterance heard during an uninterrupted reply: no chat")
            return
        self._start_turn(now, final, "text", self._voice_turn(final, utt))

    def _voice_turn(self, text: str, utt: Utterance) -> UserTurn:
        return UserTurn(text, utt.audio, utt.rate, utt.speech_s, typed=False)

    def _on_complete(self, ev: InputAudioBufferComplete, now: float, origin: str) -> None:
        mode = self._vad_mode()
        if mode is not None:
            self._error(
                now,
                f"input_audio_buffer.complete is not allowed when turn_detection.type is {mode}",
                origin,
            )
            return
        utt = self._listener.commit()
        if utt.invalid is not None:
            self._error(now, utt.invalid, origin)
            return
        self._interrupt(now, 3)
        self._push(now, InputAudioBufferCompleted(id=ev.id or self._ids.event_id()))
        if utt.speech_s <= 0:
            self._push(
                now, ConversationAudioTranscriptCompleted(id=self._ids.event_id(), content="")
            )
            return
        script = self.bot.scripted_transcript()
        for k in range(1, int(utt.speech_s / INTERIM_EVERY_S + 1e-9) + 1):
            text = hypothesis(script, k * INTERIM_EVERY_S)
            self._push(
                now, ConversationAudioTranscriptUpdate(id=self._ids.event_id(), content=text)
            )
        final = script if script is not None else describe_speech(utt.speech_s)
        self._push(
            now, ConversationAudioTranscriptCompleted(id=self._ids.event_id(), content=final)
        )
        self._start_turn(now, final, "text", self._voice_turn(final, utt))

    def _on_clear(self, ev: InputAudioBufferClear, now: float, origin: str) -> None:
        mode = self._vad_mode()
        if mode is not None:
            self._error(
                now,
                f"input_audio_buffer.clear is not allowed when turn_detection.type is {mode}",
                origin,
            )
            return
        self._listener.clear()
        self._push(now, InputAudioBufferCleared(id=ev.id or self._ids.event_id()))

    # ------------------------------------------------------------------ turns

    def _on_message(self, ev: ConversationMessageCreate, now: float, origin: str) -> None:
        text = ev.content
        if ev.content_type == "object_string":
            try:
                parts = json.loads(ev.content)
                if not isinstance(parts, list):
                    raise ValueError
                text = " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
            except ValueError:
                self._error(
                    now,
                    "conversation.message.create data.content: object_string "
                    "content must be a JSON array of parts",
                    origin,
                )
                return
        if ev.role == "assistant":
            self._context.append(text)
            return
        self._interrupt(now, 3)
        self._start_turn(now, ev.content, ev.content_type, UserTurn(text, typed=True))

    def _context_for(self, chat: Chat) -> ChatContext:
        return ChatContext(chat, self._ids.numeric, self._ids.event_id, lambda: int(self._wall()))

    def _start_turn(self, now: float, content: str, content_type: str, turn: UserTurn) -> None:
        chat = Chat(
            id=self._ids.numeric(),
            conversation_id=self.conversation_id,
            bot_id=self.bot_id,
            created_at=int(self._wall()),
            section_id=self.section_id,
        )
        ctx = self._context_for(chat)
        question = ctx.message(
            id=self._ids.numeric(),
            role="user",
            type="question",
            content=content,
            content_type=content_type,
        )
        self._push(now, ConversationMessageCompleted(id=self._ids.event_id(), message=question))
        reply = self.bot.reply(turn)
        stream = Stream(chat.id, "chat", ctx, question=turn.transcript)
        timed = chat_start_events(ctx, now)
        if reply.tool_call is not None:
            events, call = tool_call_events(
                ctx, reply.tool_call, self._ids.opaque(), now + self.timing.think_s
            )
            timed += events
            stream.awaiting, stream.request = call, reply.tool_call
        else:
            timed += self._answer(ctx, reply.sentences, now, turn.transcript)
        self._context.append(turn.transcript)
        self._outbox.add_stream(stream, timed)

    def _answer(
        self, ctx: ChatContext, sentences: Sequence[Sentence], start: float, question: str
    ) -> Timed:
        reply = Reply(tuple(sentences))
        deltas = encode_reply(reply.sentences, self._plan)
        context_chars = sum(len(c) for c in self._context)
        self._context.append(reply.text)
        return answer_events(
            ctx, reply, deltas, self._plan, start, question, self.timing, context_chars
        )

    def _on_tool_outputs(self, ev: ConversationChatSubmitToolOutputs, now: float, o: str) -> None:
        stream = self._outbox.streams.get(ev.chat_id)
        ids = {out.tool_call_id for out in ev.tool_outputs}
        if stream is None or stream.awaiting is None or ids != {stream.awaiting.id}:
            self.log.info("tool outputs for an unknown chat or tool call")
            self._error(now, "invalid message", o)
            return
        assert stream.request is not None
        reply = self.bot.tool_reply(stream.request, ev.tool_outputs[0].output)
        stream.awaiting = None
        zero = Usage(token_count=0, output_count=0, input_count=0)
        resumed = ConversationChatInProgress(
            id=self._ids.event_id(), chat=stream.ctx.with_status("in_progress", usage=zero)
        )
        timed: Timed = [(now, resumed)]
        timed += self._answer(stream.ctx, reply.sentences, now, stream.question)
        self._outbox.add_stream(stream, timed)

    def _on_cancel(self, ev: ConversationChatCancel, now: float, origin: str) -> None:
        if not self._interrupt(now, 2, ev.id):
            self._error(now, "no chat in progress", origin)

    def _on_clear_conversation(self, ev: ConversationClear, now: float, origin: str) -> None:
        self.section_id = self._ids.numeric()
        self._context.clear()
        self._push(now, ConversationCleared(id=ev.id or self._ids.event_id()))

    def _on_generate_audio(self, ev: InputTextGenerateAudio, now: float, origin: str) -> None:
        self._interrupt(now, None, chats_only=True)
        self._speak(ev.text, now)

    def _speak(self, text: str, now: float) -> None:
        sentences = self.bot.speak(text)
        deltas = encode_reply(sentences, self._plan)
        tag = f"tts-{self._ids.numeric()}"
        ctx = self._context_for(Chat(id="0"))
        texts = [s.text for s in sentences]
        timed = tts_events(ctx, texts, deltas, self._plan, now + self.timing.tts_s, self.timing)
        self._outbox.add_stream(Stream(tag, "tts", ctx), timed)
