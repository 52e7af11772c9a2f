"""Sans-I/O core of one emulated ``/v1/audio/speech`` connection (streaming TTS, spec 4).

:class:`SpeechConnection` has the interface of :class:`~.chat.ChatConnection`: feed it client
frames with :meth:`~SpeechConnection.receive`, take due frames with
:meth:`~SpeechConnection.due`, sleep until :meth:`~SpeechConnection.next_deadline`. It never
reads a clock; a wall clock is used only for ``detail.respond_at`` and the logid.

Sequence (spec 4.2, real traffic): ``speech.created`` when the connection opens; then, per
request, ``input_text_buffer.completed`` at the ``complete``, and after ``Timing.tts_s`` one
``conversation.audio.sentence_start`` before the audio of each sentence, the
``speech.audio.update`` deltas, and ``speech.audio.completed`` with the last delta. Audio is
encoded and paced exactly like the chat emulator's replies (:mod:`.outbound`, :mod:`.pacing`):
250 ms deltas at 6x real time, or ``frame_size_ms`` deltas under ``limit_config``. The voice is
the bot's (:meth:`~.bots.Bot.speak`: espeak-ng for ``espeak`` and ``script:`` bots, tones for
``echo`` and ``tone``), as for ``input_text.generate_audio`` on ``/v1/chat``.

Choices where the spec is silent (INFERRED, also in the README):

* defaults without ``speech.update``: pcm at 24000 Hz, ``speech_rate`` 0, the docs' example
  ``voice_id``; ``speech.updated`` echoes the full effective ``output_audio`` and the id of the
  ``speech.update`` when it carried one;
* codecs: ``pcm`` and ``opus`` (the documented two) and ``g711a``/``g711u`` (the SDKs share the
  chat ``OutputAudio``); ``mp3`` is refused with error 4000 naming ``output_audio.codec``.
  Invalid values get error 4000 naming the field; the configuration is unchanged;
* ``context_texts`` must be a list of strings; it, ``voice_id`` and ``emotion_config`` are
  validated and echoed but do not change the emulated voice;
* the 1024-byte limit is per request: the append that takes the buffered text past 1024 UTF-8
  bytes gets error 3010 and the buffered text is discarded; ``complete`` with nothing buffered
  gets error 4000;
* several requests per connection are served one after another (a request's audio starts only
  after the previous request's ``speech.audio.completed``); the connection stays open.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Callable

from ..errors import CodecError, RemoteProtocolError
from ..protocol.events import ConversationAudioSentenceStart, Detail, Error, ServerEvent
from ..protocol.objects import ChatUpdateData, OutputAudio
from ..protocol.schema import merge
from ..protocol.tts import (
    MAX_TEXT_BYTES,
    TTS_CLIENT_EVENTS,
    InputTextBufferAppend,
    InputTextBufferComplete,
    InputTextBufferCompleted,
    SpeechAudioCompleted,
    SpeechAudioUpdate,
    SpeechCreated,
    SpeechUpdate,
    SpeechUpdated,
    SpeechUpdateData,
    utf8_len,
)
from ..protocol.wire import decode_with, encode, unknown_fields
from .bots import Bot
from .ids import IdFactory
from .intake import take_frame
from .outbound import OutputPlan, encode_reply
from .outbox import Outbox
from .pacing import schedule
from .settings import effective
from .turns import DEFAULT_TIMING, Timing

__all__ = ["TEXT_TOO_LONG", "TTS_CODECS", "SpeechConnection"]

log = logging.getLogger(__name__)

#: Error code for a request's text over 1024 bytes (spec 4, 6).
TEXT_TOO_LONG = 3010
#: Output codecs the emulated TTS accepts.
TTS_CODECS = ("pcm", "opus", "g711a", "g711u")


class SpeechConnection:
    """One emulated ``/v1/audio/speech`` connection.

    Args:
        bot: its :meth:`~.bots.Bot.speak` is the voice.
        now: monotonic time the connection opened; ``speech.created`` is due then.
        wall_clock: Unix time, for ``respond_at`` and the logid only.
        rng: randomness for ids.
        timing: ``tts_s`` (latency before the first audio) and ``burst_speed``.
        history: how many event types :attr:`received` and :attr:`sent` keep.
        logid: the connection's logid (the server makes it at the handshake).
    """

    def __init__(
        self,
        bot: Bot,
        *,
        now: float,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        timing: Timing = DEFAULT_TIMING,
        history: int = 1000,
        logid: str | None = None,
    ) -> None:
        self.bot = bot
        self.timing = timing
        self._wall = wall_clock
        self._ids = IdFactory(rng or random.Random(), lambda: int(wall_clock() * 1000))
        self.logid = logid or self._ids.logid()
        self._client = OutputAudio()
        #: The effective ``output_audio`` (what ``speech.updated`` echoes).
        self.output_audio = self._effective(self._client)
        self._buffer: list[str] = []
        self._busy_until = now
        self._outbox = Outbox()
        #: Event types received and sent, newest last (bounded).
        self.received: deque[str] = deque(maxlen=history)
        self.sent: deque[str] = deque(maxlen=history)
        #: Texts synthesised, in order (for tests).
        self.requests: list[str] = []
        self._outbox.push(now, SpeechCreated(id=self._ids.event_id()))

    # ------------------------------------------------------------------ public interface

    def receive(self, frame: str | bytes, now: float) -> None:
        """Take one client frame that arrived at ``now``. Never raises for bad input."""
        got = take_frame(frame, lambda text: decode_with(text, TTS_CLIENT_EVENTS))
        origin, name, event = got.origin, got.name, got.event
        self.received.append(name)
        if event is None:
            self._error(now, got.error or "invalid frame", origin)
            return
        extra = unknown_fields(event)
        if extra:
            log.info("[%s] ignoring unknown fields in %s: %s", self.logid, name, ", ".join(extra))
        match event:
            case SpeechUpdate():
                self._on_update(event, now, origin)
            case InputTextBufferAppend():
                self._on_append(event, now, origin)
            case InputTextBufferComplete():
                self._on_complete(event, now, origin)
            case _:
                self._error(now, f"unknown event type: {name}", origin)

    def due(self, now: float) -> list[str]:
        """Frames due at or before ``now``, in order, each stamped with ``detail``."""
        out: list[str] = []
        for item in self._outbox.pop_due(now):
            detail = Detail(
                logid=self.logid,
                respond_at=str(int(self._wall() * 1000)),
                origin_message=item.origin,
            )
            out.append(encode(dataclasses.replace(item.event, detail=detail)))
            self.sent.append(item.event.event_type)
        return out

    def next_deadline(self) -> float | None:
        """When the next queued frame is due, or ``None``."""
        return self._outbox.next_deadline()

    # ------------------------------------------------------------------ handlers

    def _error(self, now: float, msg: str, origin: str | None, code: int = 4000) -> None:
        log.info("[%s] error %d: %s", self.logid, code, msg)
        self._push(now, Error(id=self._ids.event_id(), code=code, msg=msg), origin)

    def _push(self, t: float, event: ServerEvent, origin: str | None = None) -> None:
        self._outbox.push(t, event, None, origin)

    @staticmethod
    def _effective(client: OutputAudio) -> OutputAudio:
        try:
            out = effective(ChatUpdateData(output_audio=client)).output_audio
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(
                exc.reason, event_type=SpeechUpdate.event_type, path=exc.path
            ) from None
        assert out is not None
        if out.codec not in TTS_CODECS:
            raise RemoteProtocolError(
                f"{out.codec!r} is not supported for speech synthesis; use pcm or opus",
                event_type=SpeechUpdate.event_type,
                path="data.output_audio.codec",
            )
        return out

    def _on_update(self, ev: SpeechUpdate, now: float, origin: str) -> None:
        sent = ev.config.output_audio or OutputAudio()
        candidate = merge(self._client, sent)
        try:
            eff = self._effective(candidate)
        except RemoteProtocolError as exc:
            self._error(now, str(exc), origin)
            return
        self._client, self.output_audio = candidate, eff
        ack = SpeechUpdated(
            id=ev.id or self._ids.event_id(), config=SpeechUpdateData(output_audio=eff)
        )
        self._push(now, ack)

    def _on_append(self, ev: InputTextBufferAppend, now: float, origin: str) -> None:
        size = sum(utf8_len(t) for t in self._buffer) + utf8_len(ev.delta)
        if size > MAX_TEXT_BYTES:
            self._buffer.clear()
            self._error(
                now,
                f"text is too long: {size} bytes in this request, at most {MAX_TEXT_BYTES} "
                "UTF-8 bytes; the buffered text was discarded",
                origin,
                TEXT_TOO_LONG,
            )
            return
        self._buffer.append(ev.delta)

    def _on_complete(self, ev: InputTextBufferComplete, now: float, origin: str) -> None:
        text = "".join(self._buffer).strip()
        self._buffer.clear()
        if not text:
            self._error(now, "input_text_buffer.complete with no text: append text first", origin)
            return
        self._push(now, InputTextBufferCompleted(id=ev.id or self._ids.event_id()))
        self.requests.append(text)
        try:
            self._synthesise(text, max(now, self._busy_until) + self.timing.tts_s)
        except CodecError as exc:
            self._error(now, f"synthesis failed: {exc}", origin, 1)

    def _synthesise(self, text: str, start: float) -> None:
        plan = OutputPlan.from_config(self.output_audio)
        sentences = self.bot.speak(text)
        deltas = encode_reply(sentences, plan)
        flat = [(k, d) for k, sentence in enumerate(deltas) for d in sentence]
        times = schedule(
            [d.duration_s for _, d in flat], start, speed=self.timing.burst_speed, limit=plan.limit
        )
        started: set[int] = set()
        end = start
        for (k, d), due in zip(flat, times, strict=True):
            if k not in started:
                started.add(k)
                sub = ConversationAudioSentenceStart(
                    id=self._ids.event_id(), text=sentences[k].text
                )
                self._push(due, sub)
            self._push(due, SpeechAudioUpdate(id=self._ids.event_id(), delta=d.data))
            end = due
        self._push(end, SpeechAudioCompleted(id=self._ids.event_id()))
        self._busy_until = end
