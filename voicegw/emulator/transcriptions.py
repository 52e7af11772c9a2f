"""Sans-I/O core of one emulated ``/v1/audio/transcriptions`` connection (streaming ASR, spec 5).

:class:`TranscriptionConnection` has the interface of :class:`~.chat.ChatConnection`
(``receive``/``due``/``next_deadline``) and never reads a clock.

What it "hears" is exactly what the chat emulator's push-to-talk transcript hears
(:mod:`.asr`): the appended audio is decoded per ``input_audio`` (:class:`~.inbound.InputDecoder`)
and measured by the energy VAD, and the speech span runs from the first confirmed onset to the
end of the last voiced frame (:func:`~.vad.find_speech`'s rule, computed incrementally). The
text is ``"(2.35 s of speech)"``, or, with a ``script:`` bot, the script's transcripts, one per
request with speech, in order (cycling; every connection starts at the first; a request without
speech consumes none, as a silent push-to-talk turn on ``/v1/chat``), revealed word by word in the
interim hypotheses as in the chat's ``conversation.audio_transcript.update``.

Sequence (spec 5.2): ``transcriptions.created`` when the connection opens;
``transcriptions.updated`` (the effective ``input_audio``, all five fields) for each update;
while audio is appended, one ``transcriptions.message.update`` with the whole hypothesis each
:data:`~.asr.INTERIM_EVERY_S` of speech; at ``input_audio_buffer.complete``:
``input_audio_buffer.completed``, a last ``transcriptions.message.update`` with the final text,
and ``transcriptions.message.completed`` (no data, as the doc says).

Choices where the spec is silent (INFERRED, also in the README):

* defaults without ``transcriptions.update``: wav/pcm/24000/1/16 (so raw PCM must be
  announced); invalid values get error 4000 naming the field and change nothing; ``ogg`` is
  refused (the emulator has no Ogg demuxer); ``asr_config`` is validated but has no effect and
  ``transcriptions.updated`` echoes only ``input_audio`` (the doc's shape);
* raw bytes under the default ``format: "wav"``: no interim text, and ``complete`` gets the
  service's 4000 "should follow the format: wav" error instead of a result;
* a request with no speech: ``completed`` then ``transcriptions.message.completed`` alone (no
  ``update``, so the final text is empty);
* after a result the connection stays open and the next appends start a new request;
  ``input_audio_buffer.clear`` discards the request's audio (``input_audio_buffer.cleared``);
* a changed ``input_audio`` discards the audio of the request in progress.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable

from ..errors import CodecError, RemoteProtocolError
from ..protocol.asr import (
    ASR_CLIENT_EVENTS,
    TranscriptionsCreated,
    TranscriptionsMessageCompleted,
    TranscriptionsMessageUpdate,
    TranscriptionsUpdate,
    TranscriptionsUpdated,
    TranscriptionsUpdateData,
)
from ..protocol.events import (
    Detail,
    Error,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferComplete,
    InputAudioBufferCompleted,
    ServerEvent,
)
from ..protocol.objects import ASRConfig, ChatUpdateData, InputAudio
from ..protocol.schema import merge
from ..protocol.wire import decode_with, encode, unknown_fields
from .asr import INTERIM_EVERY_S, describe_speech, hypothesis
from .bots import Bot, ScriptBot
from .ids import IdFactory
from .inbound import InputDecoder
from .intake import take_frame
from .outbox import Outbox
from .settings import effective
from .vad import DEFAULT_THRESHOLD_DBFS, EnergyVad

__all__ = ["TranscriptionConnection"]

log = logging.getLogger(__name__)


class TranscriptionConnection:
    """One emulated ``/v1/audio/transcriptions`` connection.

    Args:
        bot: a ``script:`` bot supplies the transcripts; any other bot leaves them unscripted.
        now: monotonic time the connection opened; ``transcriptions.created`` is due then.
        wall_clock: Unix time, for ``respond_at`` and the logid only.
        rng: randomness for ids.
        vad_threshold_dbfs: the energy VAD's speech level (as for ``/v1/chat``).
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
        vad_threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
        history: int = 1000,
        logid: str | None = None,
    ) -> None:
        self._scripts = (
            tuple(t.transcript for t in bot.turns) if isinstance(bot, ScriptBot) else None
        )
        self.threshold_dbfs = vad_threshold_dbfs
        self._wall = wall_clock
        self._ids = IdFactory(rng or random.Random(), lambda: int(wall_clock() * 1000))
        self.logid = logid or self._ids.logid()
        self._client = InputAudio()
        self._asr: ASRConfig | None = None
        #: The effective ``input_audio`` (what ``transcriptions.updated`` echoes).
        self.input_audio = self._effective(self._client)
        self._outbox = Outbox()
        #: Results given so far, in order (for tests).
        self.results: list[str] = []
        self._turn = 0  # script turns consumed (a request without speech consumes none)
        #: Event types received and sent, newest last (bounded).
        self.received: deque[str] = deque(maxlen=history)
        self.sent: deque[str] = deque(maxlen=history)
        self._decoder = InputDecoder(self.input_audio)
        self._reset_request()
        self._push(now, TranscriptionsCreated(id=self._ids.event_id()))

    # ------------------------------------------------------------------ public interface

    def receive(self, frame: str | bytes, now: float) -> None:
        """Take one client frame that arrived at ``now``. Never raises for bad input."""
        got = take_frame(frame, lambda text: decode_with(text, ASR_CLIENT_EVENTS))
        origin, name, event = got.origin, got.name, got.event
        self.received.append(name)
        if event is None:
            self._error(now, got.error or "invalid frame", origin)
            return
        extra = unknown_fields(event)
        if extra:
            log.info("[%s] ignoring unknown fields in %s: %s", self.logid, name, ", ".join(extra))
        try:
            match event:
                case TranscriptionsUpdate():
                    self._on_update(event, now, origin)
                case InputAudioBufferAppend():
                    self._on_append(event.delta, now)
                case InputAudioBufferComplete():
                    self._on_complete(event, now, origin)
                case InputAudioBufferClear():
                    self._reset_request()
                    self._push(now, InputAudioBufferCleared(id=event.id or self._ids.event_id()))
                case _:
                    self._error(now, f"unknown event type: {name}", origin)
        except CodecError as exc:
            self._error(now, f"the parameter audio is invalid: {exc}", origin)

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

    def _push(self, t: float, event: ServerEvent, origin: str | None = None) -> None:
        self._outbox.push(t, event, None, origin)

    def _error(self, now: float, msg: str, origin: str | None, code: int = 4000) -> None:
        log.info("[%s] error %d: %s", self.logid, code, msg)
        self._push(now, Error(id=self._ids.event_id(), code=code, msg=msg), origin)

    @staticmethod
    def _effective(client: InputAudio) -> InputAudio:
        try:
            out = effective(ChatUpdateData(input_audio=client)).input_audio
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(
                exc.reason, event_type=TranscriptionsUpdate.event_type, path=exc.path
            ) from None
        assert out is not None
        return out

    def _on_update(self, ev: TranscriptionsUpdate, now: float, origin: str) -> None:
        candidate = merge(self._client, ev.config.input_audio or InputAudio())
        try:
            eff = self._effective(candidate)
            decoder = InputDecoder(eff)
        except RemoteProtocolError as exc:
            self._error(now, str(exc), origin)
            return
        if ev.config.asr_config is not None:
            self._asr = (
                merge(self._asr, ev.config.asr_config) if self._asr else ev.config.asr_config
            )
        self._client = candidate
        if eff != self.input_audio:
            self.input_audio = eff
            self._decoder = decoder
            self._reset_request()
        data = TranscriptionsUpdateData(input_audio=eff)
        self._push(now, TranscriptionsUpdated(id=ev.id or self._ids.event_id(), config=data))

    # ------------------------------------------------------------------ audio

    def _reset_request(self) -> None:
        self._vad = EnergyVad(
            self._decoder.rate, end_silence_ms=math.inf, threshold_dbfs=self.threshold_dbfs
        )
        self._banked_s = 0.0  # speech of earlier streams in this request (a new WAV header)
        self._interims = 0

    def _script(self) -> str | None:
        if self._scripts is None:
            return None
        return self._scripts[self._turn % len(self._scripts)]

    def _speech_s(self) -> float:
        return self._banked_s + self._vad.speech_samples / self._vad.rate

    def _on_append(self, data: bytes, now: float) -> None:
        samples = self._decoder.feed(data)
        if self._decoder.rate != self._vad.rate:
            self._banked_s = self._speech_s()
            self._vad = EnergyVad(
                self._decoder.rate, end_silence_ms=math.inf, threshold_dbfs=self.threshold_dbfs
            )
        self._vad.feed(samples)
        if self._decoder.invalid is not None:
            return  # the error comes at complete, like the chat's push-to-talk submit
        due = int(self._speech_s() / INTERIM_EVERY_S + 1e-9)
        while self._interims < due:
            self._interims += 1
            text = hypothesis(self._script(), self._interims * INTERIM_EVERY_S)
            self._push(now, TranscriptionsMessageUpdate(id=self._ids.event_id(), content=text))

    def _on_complete(self, ev: InputAudioBufferComplete, now: float, origin: str) -> None:
        invalid = self._decoder.invalid
        speech_s = self._speech_s()
        self._reset_request()
        if invalid is not None:
            self._error(now, invalid, origin)
            return
        self._push(now, InputAudioBufferCompleted(id=ev.id or self._ids.event_id()))
        if speech_s <= 0:
            text = ""
        else:
            script = self._script()
            text = script if script is not None else describe_speech(speech_s)
            self._turn += 1
            self._push(now, TranscriptionsMessageUpdate(id=self._ids.event_id(), content=text))
        self.results.append(text)
        self._push(now, TranscriptionsMessageCompleted(id=self._ids.event_id()))
