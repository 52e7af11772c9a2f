"""Barge-in rows of ``voicegw bench``: how fast a ``speech_started`` silences the speaker.

Each turn drives a :class:`~voicegw.protocol.session.Session` in ``server_vad`` mode through the
frames the service sends (built with :func:`~voicegw.protocol.wire.encode`): ``speech_stopped``,
``conversation.chat.created``, ``in_progress`` and 2 s of reply audio as 250 ms PCM deltas,
decoded by a :class:`~voicegw.chains.Downlink` into a :class:`~voicegw.playout.PlayoutBuffer`
that has started playing. Then ``input_audio_buffer.speech_started`` arrives, and the events are
acted on as the gateway does (``FlushPlayback`` -> ``flush(fade_ms=10)`` and
``Downlink.reset``), followed by two late deltas of the interrupted chat and its
``conversation.chat.canceled``, as the service sends them.

Measured per turn:

* wall time from :meth:`~voicegw.protocol.session.Session.receive_text` of ``speech_started``
  until the flush has been applied to the playout buffer (GC disabled);
* device time: the audio that still leaves the buffer afterwards, read in 20 ms periods until a
  read is silent or ``None``, up to and including its last non-zero sample, in ms.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Final

import numpy as np
import orjson

from .bench_paths import delta_frame
from .bench_signal import Signal
from .bench_timing import Context, Probe, Recorder, RowSpec, Target, constant
from .chains import Downlink
from .playout import PlayoutBuffer
from .protocol import events as ev
from .protocol.objects import (
    DEFAULTS,
    Chat,
    ChatUpdateData,
    InputAudio,
    OutputAudio,
    PCMConfig,
    TurnDetection,
)
from .protocol.schema import merge
from .protocol.session import FlushPlayback, Received, Session
from .protocol.wire import encode

__all__ = ["FADE_MS", "build_bargein"]

#: The fade the gateway applies on ``FlushPlayback``, ms.
FADE_MS: Final = 10.0
DEVICE_RATE: Final = 48000
PERIOD: Final = 960  # 20 ms at 48 kHz
WALL_TARGET: Final = Target("<=", 1000.0, "median", "<= 1000 us (5% of a period)")
AUDIO_TARGET: Final = Target("<=", 20.0, "median", "<= 20 ms (one period)")
_DELTAS: Final = 8  # 2 s of reply audio
_LATE: Final = 2


def _config() -> ChatUpdateData:
    return ChatUpdateData(
        input_audio=InputAudio(format="pcm", codec="pcm", sample_rate=16000, channel=1),
        output_audio=OutputAudio(codec="pcm", pcm_config=PCMConfig(sample_rate=24000)),
        turn_detection=TurnDetection(type="server_vad"),
    )


def _created(cid: str) -> str:
    chat = Chat(id=cid, conversation_id="conv-1", bot_id="bot-1", status="created")
    return encode(ev.ConversationChatCreated(id=f"srv-{cid}-created", chat=chat))


def _in_progress(cid: str) -> str:
    chat = Chat(id=cid, conversation_id="conv-1", bot_id="bot-1", status="in_progress")
    return encode(ev.ConversationChatInProgress(id=f"srv-{cid}-in-progress", chat=chat))


class _Turns:
    """A session plus the gateway's reactions, replaying one interrupted turn per call."""

    def __init__(self, signal: Signal) -> None:
        cfg = _config()
        self.session = Session(cfg)
        self.downlink = Downlink(codec="pcm", rate=24000, sink_rate=DEVICE_RATE)
        self.playout = PlayoutBuffer(DEVICE_RATE)
        pcm = signal.at(24000)
        start = min(len(pcm) // 4, max(0, len(pcm) - _DELTAS * 6000))
        self.payloads = [
            pcm[start + i * 6000 : start + (i + 1) * 6000].tobytes() for i in range(_DELTAS)
        ]
        self.started = encode(ev.InputAudioBufferSpeechStarted(id="srv-started"))
        self.stopped = encode(ev.InputAudioBufferSpeechStopped(id="srv-stopped"))
        self.canceled = encode(ev.ConversationChatCanceled(id="srv-canceled", code=1, msg="user"))
        self.leaked_deltas = 0
        self.flushes = 0
        self._n = 0
        self._feed(encode(ev.ChatCreated(id="srv-created")))
        self._feed(encode(ev.ChatUpdated(id="srv-updated", config=merge(DEFAULTS, cfg))))

    def _feed(self, frame: str) -> int:
        """Feed a frame and act on the events like the gateway; returns reply deltas played."""
        self.session.receive_text(frame, 0.0)
        self.session.data_to_send()
        deltas = 0
        for event in self.session.events_received():
            if isinstance(event, FlushPlayback):
                self.flushes += 1
                self.playout.flush(fade_ms=FADE_MS)
                self.downlink.reset()
            elif isinstance(event, Received) and isinstance(event.event, ev.ConversationAudioDelta):
                deltas += 1
                samples = self.downlink.decode(event.event.audio)
                if len(samples):
                    self.playout.write(samples)
        return deltas

    def turn(self) -> tuple[int, float]:
        """One interrupted reply: (wall ns of the flush, device ms of audio after it)."""
        self._n += 1
        cid = f"chat-{self._n}"
        self._feed(self.stopped)
        self._feed(_created(cid))
        self._feed(_in_progress(cid))
        for i, payload in enumerate(self.payloads):
            self._feed(delta_frame(payload, cid, i))
        for _ in range(2):
            if self.playout.read(PERIOD) is None:
                raise RuntimeError("barge-in bench: the reply did not start playing")
        late = [delta_frame(p, cid, 100 + i) for i, p in enumerate(self.payloads[:_LATE])]
        flushes = self.flushes
        session, playout = self.session, self.playout
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            session.receive_text(self.started, 0.0)
            for event in session.events_received():
                if isinstance(event, FlushPlayback):
                    self.flushes += 1
                    playout.flush(fade_ms=FADE_MS)
            t1 = time.perf_counter_ns()
        finally:
            gc.enable()
        self.downlink.reset()
        if self.flushes != flushes + 1:
            raise RuntimeError("barge-in bench: speech_started did not flush playback")
        for frame in late:
            self.leaked_deltas += self._feed(frame)
        self._feed(self.canceled)
        return t1 - t0, self._audible_ms()

    def _audible_ms(self) -> float:
        heard = 0
        read = 0
        for _ in range(100):
            chunk = self.playout.read(PERIOD)
            if chunk is None:
                break
            loud = np.flatnonzero(chunk)
            if not len(loud):
                break
            heard = read + int(loud[-1]) + 1
            read += len(chunk)
        return heard * 1000.0 / DEVICE_RATE


def build_bargein(signal: Signal, ctx: Context) -> tuple[list[Callable[[], None]], list[RowSpec]]:
    """Barge-in recorders, their floor probes, and the two rows."""
    turns = _Turns(signal)
    wall = Recorder("barge-in wall")
    audio = Recorder("barge-in audio")

    def round_() -> None:
        for _ in range(ctx.bargein_turns):
            ns, ms = turns.turn()
            wall.add(ns / 1000)
            audio.add(ms)

    head = np.zeros(round(FADE_MS * DEVICE_RATE / 1000), dtype=np.int16)
    parse = Probe("orjson.loads", orjson.loads, [turns.started])
    copy = Probe("fade head copy", np.copy, [head])

    def leaked() -> str:
        return (
            f"late deltas of the cancelled chat that reached the buffer: {turns.leaked_deltas}"
            f" of {_LATE * len(wall.values)}; fade {FADE_MS:g} ms"
        )

    rows = [
        RowSpec(
            section="barge-in",
            key="barge-in.wall",
            name="speech_started -> flush applied",
            unit="us",
            measure=wall.stats,
            baseline_name="floor: sum of building blocks",
            baseline={
                "orjson.loads(frame)": ctx.cost(parse),
                "copy of the 10 ms fade head": ctx.cost(copy),
            },
            target=WALL_TARGET,
            note="Session.receive_text + events_received + PlayoutBuffer.flush(fade_ms=10)",
        ),
        RowSpec(
            section="barge-in",
            key="barge-in.audio",
            name="audio played after the flush",
            unit="ms",
            measure=audio.stats,
            baseline_name="configured fade",
            baseline={"fade_ms": constant(FADE_MS)},
            target=AUDIO_TARGET,
            note="device time; late deltas fed before the reads",
            detail=leaked,
        ),
    ]
    return [round_, ctx.per_call(parse), ctx.per_call(copy)], rows
