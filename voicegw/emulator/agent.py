"""Sans-I/O core of the emulated Realtime agent in one room (spec 3.4-3.7).

:class:`RealtimeAgent` is what a Coze agent does in an RTC room, without the RTC: it is fed
the user's events (JSON texts from the data channel) and the user's audio (mono int16 at
48 kHz, as decoded from the RTC track), each with the time it arrived, and it queues timed
outputs: event texts to send, agent audio to play, "stop the audio now", and "close the
room". It never reads a clock; the I/O side (:mod:`.room`) passes ``now`` and sleeps until
:meth:`RealtimeAgent.next_deadline`::

    agent = RealtimeAgent(bot, setup, now=t0, ids=ids)
    agent.join(now)                      # the user joined: session.created
    agent.receive_text(text, now)        # a JSON event from the user
    agent.receive_audio(pcm, now)        # 48 kHz mono int16 from the user's track
    for out in agent.due(now): ...       # SendText | PlayAudio | StopAudio | CloseRoom

Sequences (spec 3.6; the free-talk order is INFERRED there and followed here):

* join: ``session.created {voice_id, log_id}``; each ``session.update`` is validated,
  merged into the effective configuration and echoed whole in ``session.updated``; the first
  one is followed by ``conversation.created {conversation_id, prologue}``. A client that
  sends no ``session.update`` gets ``conversation.created`` :data:`CONFIG_GRACE_S` after
  ``session.created`` (INFERRED). A non-empty prologue is spoken
  ``prologue_delay_duration_ms`` later (``audio.agent.speech_started``/``stopped`` around it).
* server_vad / semantic_vad: the chat emulator's :class:`~.listener.Listener` (energy VAD,
  ``prefix_padding_ms``, ``silence_duration_ms``, the semantic judge) runs on the received
  audio: ``audio.user.speech_started``, ``conversation.audio_transcript.delta`` (the whole
  hypothesis so far, every 0.5 s of speech and once more with the final text),
  ``audio.user.speech_stopped``, the user's ``conversation.message.completed``, then the chat.
* client_vad: ``client.vad {vad: true}`` opens the turn (``audio.user.speech_started``),
  ``{vad: false}`` closes it; repeated values are ignored.
* client_interrupt (PTT rooms): ``input_audio_buffer.start`` -> ``started``, audio is kept
  until ``complete`` -> ``completed``, then the turn proceeds (no ``audio.user.*`` events,
  INFERRED). Duplicates are ignored without a reply (spec 3.4). Audio outside a press is
  ignored. The room's turn type wins over ``session.update`` (``turn_detection.type`` is
  echoed as ``client_interrupt``).
* a chat: ``conversation.chat.created``, ``in_progress``, ``conversation.message.delta`` per
  word, ``audio.agent.speech_started``, the answer's ``conversation.message.completed`` and
  ``conversation.chat.completed``, and ``audio.agent.speech_stopped`` when the audio has
  played out (timeline in :mod:`.agent_plan`). A new user turn (spoken or typed) while a
  reply is in flight interrupts that reply first.
* barge-in: with ``allow_voice_interrupt`` (default) and no ``interrupt_config`` keywords,
  the user starting to speak (VAD onset, ``client.vad`` true, PTT start) while the agent's
  reply is in flight sends ``audio.user.speech_started`` then ``audio.agent.speech_stopped``
  and stops the audio; with keywords, only a scripted transcript matching one interrupts.
  Speech that ends while an uninterrupted reply is in flight starts no chat.
* ``conversation.chat.cancel``: drops the reply (or TTS speech) in flight and, if its audio
  had started, sends ``audio.agent.speech_stopped``; with nothing in flight it is ignored.
* ``conversation.message.create`` (``role: user``): a typed turn (``/tool NAME {args}``
  requests a client tool: ``conversation.chat.requires_action`` with ``tool_calls``;
  ``submit_tool_outputs`` resumes the chat). ``role: assistant`` only adds context.
* ``input_text.generate_audio``: speaks the text (``(0, 1024)`` bytes, else error 4000).
* ``session.pre_answer.update``/``mode.update``: echoed as ``...updated``.
* silence: no user speech (VAD onset or end, ``client.vad``, PTT, typed turns) for
  ``longest_silence_ms`` -- counted from the later of that and the end of the agent's own
  speech, and never while the user is mid-utterance -- sends ``error`` 4029 and closes the
  room (:class:`CloseRoom`); it is never reopened.
* errors (``error {code, msg, detail{logid}}``, INFERRED): anything
  :func:`~voicegw.realtime.events.decode_realtime_client` refuses (malformed JSON, wrong
  types, out-of-range values; the message names the field), unknown event types, a PTT event
  in a room not created with ``client_interrupt``, ``client.vad`` outside ``client_vad``, and
  tool outputs for the wrong chat or call give code 4000; the room stays open.

Events are the classes of :mod:`voicegw.realtime.events`, written with
:func:`~voicegw.realtime.events.encode_realtime` (``data`` always present, as in the
Realtime docs). They carry a fresh UUID v4 ``id`` except ``session.updated``, which echoes
the client's id when it had one, and have no envelope ``detail`` (spec 3.3).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..audio import Samples
from ..errors import RemoteProtocolError
from ..protocol.events import Event, ServerEvent
from ..protocol.objects import (
    Chat,
    InputAudio,
    Usage,
)
from ..protocol.schema import merge
from ..realtime.events import (
    AudioAgentSpeechStopped,
    AudioUserSpeechStarted,
    AudioUserSpeechStopped,
    ClientVad,
    ConversationAudioTranscriptDelta,
    ConversationChatCancel,
    ConversationChatInProgress,
    ConversationChatSubmitToolOutputs,
    ConversationCreated,
    ConversationMessageCreate,
    InputAudioBufferComplete,
    InputAudioBufferCompleted,
    InputAudioBufferStart,
    InputAudioBufferStarted,
    InputTextGenerateAudio,
    ModeUpdate,
    ModeUpdated,
    RealtimeError,
    SessionCreated,
    SessionPreAnswerUpdate,
    SessionPreAnswerUpdated,
    SessionUpdate,
    SessionUpdated,
    UnknownEvent,
    decode_realtime_client,
    encode_realtime,
)
from ..realtime.objects import (
    REALTIME_DEFAULTS,
    RealtimeErrorDetail,
    RealtimeTurnDetection,
    SessionUpdateData,
)
from .agent_plan import (
    CHUNK_S,
    DEFAULT_VOICE_ID,
    LEAD_S,
    RATE,
    TURN_TYPES,
    AgentOutput,
    CloseRoom,
    Planned,
    PlayAudio,
    RoomSetup,
    SendText,
    StopAudio,
    answer_plan,
    chat_opening,
    speech_plan,
    tool_request_plan,
)
from .asr import describe_speech, hypothesis, is_finished
from .bots import Bot, Reply, Sentence, ToolRequest, UserTurn
from .ids import IdFactory
from .listener import Heard, Interim, Listener, Utterance
from .turns import DEFAULT_TIMING, ChatContext, Timing
from .vad import DEFAULT_THRESHOLD_DBFS

__all__ = [
    "CHUNK_S",
    "CONFIG_GRACE_S",
    "DEFAULT_VOICE_ID",
    "LEAD_S",
    "RATE",
    "SILENCE_MSG",
    "TURN_TYPES",
    "AgentOutput",
    "CloseRoom",
    "PlayAudio",
    "RealtimeAgent",
    "RoomSetup",
    "SendText",
    "StopAudio",
]

#: Seconds after ``session.created`` before ``conversation.created`` without a session.update.
CONFIG_GRACE_S = 1.0
#: Error 4029's text (spec 3.7, verbatim).
SILENCE_MSG = (
    "The connection was closed due to prolonged user inactivity. Please retry your request."
)

_ZERO = Usage(token_count=0, output_count=0, input_count=0)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Speech:
    """One reply or TTS utterance in flight: its queued items share ``tag``."""

    tag: int
    audio_start: float = math.inf
    audio_end: float = -math.inf


@dataclass(slots=True)
class _PendingTool:
    ctx: ChatContext
    request: ToolRequest
    call_id: str
    question: str


@dataclass(slots=True)
class _Utt:
    script: str | None
    barged: bool = False


class RealtimeAgent:
    """The simulated agent of one room.

    Args:
        bot: the emulator bot answering turns (see :mod:`.bots`).
        setup: the room's creation parameters.
        now: the loop time the room was created at.
        ids: id source.
        timing: the agent's latencies (see :class:`~.turns.Timing`; ``burst_speed`` unused:
            RTC audio is real time).
        vad_threshold_dbfs: the server VAD's speech level.
        wall_clock: Unix time, for ``created_at``-style fields only.
    """

    def __init__(
        self,
        bot: Bot,
        setup: RoomSetup,
        *,
        now: float,
        ids: IdFactory,
        timing: Timing = DEFAULT_TIMING,
        vad_threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot = bot
        self.setup = setup
        self.timing = timing
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self._ids = ids
        self._wall = wall_clock
        self.logid = setup.logid or ids.logid()
        initial = SessionUpdateData(
            voice_id=setup.voice_id, turn_detection=RealtimeTurnDetection(type=setup.turn_type)
        )
        self.config = merge(REALTIME_DEFAULTS, initial)
        #: Event types received and sent, oldest first (bounded), for tests and logs.
        self.received: deque[str] = deque(maxlen=1000)
        self.sent: deque[str] = deque(maxlen=1000)
        self.joined = False
        self.ready = False
        self.closed = False
        self._queue: list[tuple[float, int, int, AgentOutput]] = []  # (due, seq, tag, out)
        self._seq = 0
        self._tag = 0
        self._speech: _Speech | None = None
        self._tool: _PendingTool | None = None
        self._utt: _Utt | None = None
        self._ptt_open = False
        self._client_vad = False
        self._activity = now
        self._grace: float | None = None
        self._listener = self._make_listener()

    # ------------------------------------------------------------------ driving

    @property
    def turn_type(self) -> str:
        """The effective turn detection type."""
        td = self.config.turn_detection
        return (td.type if td is not None else None) or "server_vad"

    def join(self, now: float) -> None:
        """The user joined the room: the session starts."""
        if self.joined or self.closed:
            return
        self.joined = True
        self._activity = now
        self._grace = now + CONFIG_GRACE_S
        self._send(now, SessionCreated(voice_id=self.config.voice_id, log_id=self.logid))

    def due(self, now: float) -> list[AgentOutput]:
        """The outputs whose time has come, in order."""
        if not self.closed:
            if self._grace is not None and now >= self._grace:
                self._conversation_created(self._grace)
            if self.joined and now >= self._silence_deadline():
                self._close_silent(now)
        n = 0
        while n < len(self._queue) and self._queue[n][0] <= now:
            n += 1
        out = [item[3] for item in self._queue[:n]]
        del self._queue[:n]
        self.sent.extend(o.event.event_type for o in out if isinstance(o, SendText))
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`due` should next be called (``None``: only on input)."""
        times = [self._queue[0][0]] if self._queue else []
        if not self.closed and self.joined:
            times.append(self._silence_deadline())
            if self._grace is not None:
                times.append(self._grace)
        return min(times) if times else None

    def receive_text(self, text: str, now: float) -> None:
        """One JSON event from the user."""
        if self.closed:
            return
        try:
            ev = decode_realtime_client(text)
        except RemoteProtocolError as exc:
            self.received.append(exc.event_type or "?")
            self._error(now, str(exc))
            return
        if isinstance(ev, UnknownEvent):
            self.received.append(ev.unknown_type)
            self._error(now, f"unknown event type: {ev.unknown_type}")
            return
        self.received.append(ev.event_type)
        handler = _HANDLERS.get(type(ev))
        if handler is None:  # a /v1/chat-only event the Realtime table lacks
            self._error(now, f"unknown event type: {ev.event_type}")
            return
        handler(self, ev, now)

    def receive_audio(self, pcm: Samples, now: float) -> None:
        """Mono int16 user audio at :data:`RATE`, as it arrived."""
        if self.closed or not self.joined or pcm.size == 0:
            return
        mode = self.turn_type
        if (mode == "client_interrupt" and not self._ptt_open) or (
            mode == "client_vad" and not self._client_vad
        ):
            return
        for result in self._listener.append(pcm.astype("<i2", copy=False).tobytes()):
            if isinstance(result, Heard):
                self._user_started(now, vad_events=True)
            elif isinstance(result, Interim):
                self._on_interim(result.speech_s, now)
            else:
                self._on_utterance(result, now)

    # ------------------------------------------------------------------ queue

    def _push(self, at: float, out: AgentOutput, tag: int = 0) -> None:
        self._seq += 1
        bisect.insort(self._queue, (at, self._seq, tag, out), key=lambda x: (x[0], x[1]))

    def _send(self, at: float, event: ServerEvent, tag: int = 0) -> None:
        if event.id is None:
            event = dataclasses.replace(event, id=self._ids.event_id())
        self._push(at, SendText(encode_realtime(event), event), tag)

    def _error(self, now: float, msg: str, code: int = 4000) -> None:
        log.info("room %s: error %d: %s", self.setup.room_id, code, msg)
        detail = RealtimeErrorDetail(logid=self.logid)
        self._send(now, RealtimeError(code=code, msg=msg, error_detail=detail))

    def _silence_deadline(self) -> float:
        if self._utt is not None:
            # the user is speaking: an utterance longer than the limit is not silence
            return math.inf
        speech_end = self._speech.audio_end if self._speech is not None else -math.inf
        longest = self.config.longest_silence_ms or 180000
        return max(self._activity, speech_end) + longest / 1000

    def _close_silent(self, now: float) -> None:
        self._queue = [q for q in self._queue if q[0] <= now]
        self._error(now, SILENCE_MSG, 4029)
        self._push(now, StopAudio())
        self._push(now, CloseRoom(4029, SILENCE_MSG))
        self.closed = True
        self._speech = None

    # ------------------------------------------------------------------ session

    def _pin_turn_type(self, cfg: SessionUpdateData) -> SessionUpdateData:
        """A room created with client_interrupt stays push-to-talk whatever session.update says."""
        if self.setup.turn_type != "client_interrupt":
            return cfg
        td = cfg.turn_detection or RealtimeTurnDetection()
        return dataclasses.replace(
            cfg, turn_detection=dataclasses.replace(td, type="client_interrupt")
        )

    def _conversation_created(self, now: float) -> None:
        self._grace = None
        if self.ready:
            return
        self.ready = True
        self._send(
            now,
            ConversationCreated(
                conversation_id=self.setup.conversation_id, prologue=self.setup.prologue
            ),
        )
        if self.setup.prologue:
            self._say(
                self.bot.speak(self.setup.prologue), now + self.setup.prologue_delay_ms / 1000
            )

    def _on_session_update(self, ev: SessionUpdate, now: float) -> None:
        old = self.config.turn_detection
        cfg = self._pin_turn_type(merge(self.config, ev.config))
        self.config = cfg
        if cfg.turn_detection != old:
            self._listener = self._make_listener()
            self._utt = None
            self._client_vad = False
        self._send(now, SessionUpdated(id=ev.id, config=cfg))
        if not self.ready:
            self._conversation_created(now)

    def _make_listener(self) -> Listener:
        td = self.config.turn_detection
        prefix = td.prefix_padding_ms if td is not None else None
        return Listener(
            InputAudio(format="pcm", codec="pcm", sample_rate=RATE, channel=1, bit_depth=16),
            vad=self.turn_type in ("server_vad", "semantic_vad"),
            prefix_padding_ms=float(600 if prefix is None else prefix),
            end_silence_ms=self._end_silence_ms,
            threshold_dbfs=self.vad_threshold_dbfs,
        )

    def _end_silence_ms(self) -> float:
        td = self.config.turn_detection or RealtimeTurnDetection()
        if self.turn_type == "semantic_vad":
            sv = td.semantic_vad_config
            base = float((sv.silence_threshold_ms if sv else None) or 300)
            if is_finished(self.bot.scripted_transcript()):
                return base
            return base + float((sv.semantic_unfinished_wait_time_ms if sv else None) or 500)
        return float(td.silence_duration_ms or 500)

    # ------------------------------------------------------------------ user speech

    def _keywords(self) -> tuple[str, tuple[str, ...]] | None:
        cc = self.config.chat_config
        ic = cc.interrupt_config if cc is not None else None
        if ic is None or (ic.mode or "all") == "all" or not ic.effective_keywords():
            return None
        return str(ic.mode), ic.effective_keywords()

    def _voice_interrupt_allowed(self) -> bool:
        cc = self.config.chat_config
        return cc is None or cc.allow_voice_interrupt is not False

    def _user_started(self, now: float, *, vad_events: bool) -> None:
        self._activity = now
        self._utt = _Utt(self.bot.scripted_transcript())
        if vad_events:
            self._send(now, AudioUserSpeechStarted())
        if self._voice_interrupt_allowed() and self._keywords() is None:
            self._utt.barged = self._interrupt(now)

    def _keyword_step(self, text: str, now: float) -> None:
        kw = self._keywords()
        utt = self._utt
        if kw is None or utt is None or utt.barged or utt.script is None:
            return
        mode, words = kw
        if not self._voice_interrupt_allowed():
            return
        if any(
            text.lstrip().startswith(k) if mode == "keyword_prefix" else k in text for k in words
        ):
            utt.barged = self._interrupt(now)

    def _on_interim(self, speech_s: float, now: float) -> None:
        if self._utt is None:
            return
        text = hypothesis(self._utt.script, speech_s)
        self._send(now, ConversationAudioTranscriptDelta(content=text))
        self._keyword_step(text, now)

    def _on_utterance(self, utt: Utterance, now: float, *, vad_events: bool = True) -> None:
        state = self._utt
        self._activity = now
        if state is None:
            return
        final = state.script if state.script is not None else describe_speech(utt.speech_s)
        self._keyword_step(final, now)
        self._utt = None
        if utt.speech_s <= 0 and state.script is None:  # nothing was said
            if vad_events:
                self._send(now, AudioUserSpeechStopped())
            return
        self._send(now, ConversationAudioTranscriptDelta(content=final))
        if vad_events:
            self._send(now, AudioUserSpeechStopped())
        if self._in_flight(now):
            log.info("room %s: speech during an uninterrupted reply: no chat", self.setup.room_id)
            return
        self._start_chat(now, final, UserTurn(final, utt.audio, utt.rate, utt.speech_s))

    def _on_client_vad(self, ev: ClientVad, now: float) -> None:
        if self.turn_type != "client_vad":
            self._error(now, "client.vad: only with turn_detection.type client_vad")
            return
        if ev.vad == self._client_vad:
            return  # not a change: ignored
        self._client_vad = ev.vad
        if ev.vad:
            self._listener.clear()
            self._user_started(now, vad_events=True)
        else:
            self._on_utterance(self._listener.commit(), now)

    def _on_ptt(self, ev: InputAudioBufferStart | InputAudioBufferComplete, now: float) -> None:
        start = isinstance(ev, InputAudioBufferStart)
        if self.setup.turn_type != "client_interrupt":
            self._error(now, f"{ev.event_type}: only in a room created with client_interrupt")
            return
        if start == self._ptt_open:
            return  # duplicate: ignored, no reply (spec 3.4)
        self._ptt_open = start
        if start:
            self._listener.clear()
            self._send(now, InputAudioBufferStarted())
            self._user_started(now, vad_events=False)
        else:
            self._send(now, InputAudioBufferCompleted())
            self._on_utterance(self._listener.commit(), now, vad_events=False)

    # ------------------------------------------------------------------ replies

    def _in_flight(self, now: float) -> bool:
        s = self._speech
        if s is None:
            return self._tool is not None
        return s.audio_end > now or any(q[2] == s.tag and q[0] > now for q in self._queue)

    def _interrupt(self, now: float) -> bool:
        """Stop the reply (or tool wait, or TTS speech) in flight; True if there was one."""
        busy = self._in_flight(now)
        s, self._speech, self._tool = self._speech, None, None
        if not busy or s is None:
            return busy
        # Items already due are still sent (the next due() releases them); the rest go.
        self._queue = [q for q in self._queue if q[2] != s.tag or q[0] <= now]
        if s.audio_start <= now < s.audio_end:
            self._send(now, AudioAgentSpeechStopped())
            self._push(now, StopAudio())
        return True

    def _new_context(self) -> ChatContext:
        chat = Chat(
            id=self._ids.numeric(),
            conversation_id=self.setup.conversation_id,
            bot_id=self.setup.bot_id,
            created_at=int(self._wall()),
            section_id=self.setup.conversation_id,
        )
        return ChatContext(chat, self._ids.numeric, self._ids.event_id, lambda: int(self._wall()))

    def _new_speech(self) -> int:
        self._tag += 1
        self._speech = _Speech(self._tag)
        return self._tag

    def _queue_plan(self, plan: Planned, tag: int) -> None:
        for at, item in plan:
            if isinstance(item, PlayAudio):
                self._push(at, item, tag)
            else:
                self._send(at, item, tag)

    def _start_chat(self, now: float, question: str, turn: UserTurn) -> None:
        self._interrupt(now)
        ctx = self._new_context()
        tag = self._new_speech()
        self._queue_plan(chat_opening(ctx, now, question, spoken=not turn.typed), tag)
        reply = self.bot.reply(turn)
        if reply.tool_call is None:
            self._answer(ctx, reply, question, now + self.timing.think_s, tag)
            return
        call_id = self._ids.opaque()
        self._queue_plan(
            tool_request_plan(ctx, reply.tool_call, call_id, now + self.timing.think_s), tag
        )
        self._speech = None
        self._tool = _PendingTool(ctx, reply.tool_call, call_id, question)

    def _on_tool_outputs(self, ev: ConversationChatSubmitToolOutputs, now: float) -> None:
        pending = self._tool
        match = [o for o in ev.tool_outputs if pending and o.tool_call_id == pending.call_id]
        if pending is None or ev.chat_id != pending.ctx.chat.id or not match:
            self._error(now, "invalid message")
            return
        self._tool = None
        self._activity = now
        tag = self._new_speech()
        in_progress = pending.ctx.with_status("in_progress", usage=_ZERO)
        self._send(now, ConversationChatInProgress(chat=in_progress), tag)
        reply = self.bot.tool_reply(pending.request, match[0].output)
        self._answer(pending.ctx, reply, pending.question, now + self.timing.think_s, tag)

    def _answer(self, ctx: ChatContext, reply: Reply, question: str, t0: float, tag: int) -> None:
        plan, start, duration = answer_plan(
            ctx,
            reply,
            question,
            t0,
            self.timing,
            completed_at=int(self._wall()),
            loudness_rate=self.config.loudness_rate or 0,
        )
        self._queue_plan(plan, tag)
        if duration and self._speech is not None:
            self._speech.audio_start, self._speech.audio_end = start, start + duration

    def _say(self, sentences: tuple[Sentence, ...], at: float) -> None:
        """TTS-only speech (prologue, input_text.generate_audio) starting at ``at``."""
        tag = self._new_speech()
        plan, duration = speech_plan(sentences, at, self.config.loudness_rate or 0)
        self._queue_plan(plan, tag)
        if duration and self._speech is not None:
            self._speech.audio_start, self._speech.audio_end = at, at + duration

    # ------------------------------------------------------------------ typed input

    def _on_message(self, ev: ConversationMessageCreate, now: float) -> None:
        if ev.role == "assistant":
            return  # context only
        text = ev.content
        if ev.content_type == "object_string":
            try:
                items = json.loads(text)
                text = " ".join(str(i.get("text", "")) for i in items if isinstance(i, dict))
            except (ValueError, TypeError, AttributeError):
                self._error(now, "conversation.message.create content: invalid object_string")
                return
        self._activity = now
        self._start_chat(now, text.strip(), UserTurn(text.strip(), typed=True))

    def _on_generate_audio(self, ev: InputTextGenerateAudio, now: float) -> None:
        self._interrupt(now)
        self._activity = now
        self._say(self.bot.speak(ev.text), now + self.timing.tts_s)

    def _on_cancel(self, ev: ConversationChatCancel, now: float) -> None:
        self._interrupt(now)

    def _on_pre_answer(self, ev: SessionPreAnswerUpdate, now: float) -> None:
        self._send(now, SessionPreAnswerUpdated(config=ev.config))

    def _on_mode(self, ev: ModeUpdate, now: float) -> None:
        self._send(now, ModeUpdated(config=ev.config))


_HANDLERS: dict[type[Event], Callable[[RealtimeAgent, Any, float], None]] = {
    SessionUpdate: RealtimeAgent._on_session_update,
    ConversationMessageCreate: RealtimeAgent._on_message,
    ConversationChatSubmitToolOutputs: RealtimeAgent._on_tool_outputs,
    ConversationChatCancel: RealtimeAgent._on_cancel,
    ClientVad: RealtimeAgent._on_client_vad,
    SessionPreAnswerUpdate: RealtimeAgent._on_pre_answer,
    ModeUpdate: RealtimeAgent._on_mode,
    InputTextGenerateAudio: RealtimeAgent._on_generate_audio,
    InputAudioBufferStart: RealtimeAgent._on_ptt,
    InputAudioBufferComplete: RealtimeAgent._on_ptt,
}
