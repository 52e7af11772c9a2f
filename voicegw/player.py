"""The speaker side of a connection: playout buffer, the play task, local sounds and flushes.

Both gateways (``/v1/chat`` and Realtime) own one :class:`Player`. Reply audio arrives in
bursts (``conversation.audio.delta``) or as a steady RTC track; either way it goes into the
:class:`~voicegw.playout.PlayoutBuffer`, and one task, :meth:`Player.run`, owns the sink and
pulls 20 ms periods from the buffer on an absolute timeline (:class:`~voicegw.playout.Pacer`),
so jitter in the network never becomes jitter at the speaker.

A file-backed sink with no clock is written as fast as audio arrives instead (it never
starves, so a short buffer is not an underrun). A speaker error loses one period and is
counted; it never takes capture or the connection down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .audio import Samples
from .clock import Clock
from .errors import DeviceError
from .limits import LimitEnforcer
from .playout import Pacer, PlayoutBuffer
from .tools import DeviceState

__all__ = ["PLAY_PERIOD_S", "AudioSink", "Player"]

log = logging.getLogger(__name__)

#: One period of playback, s.
PLAY_PERIOD_S = 0.02


class AudioSink(Protocol):
    """A speaker: mono int16 at ``rate``."""

    rate: int

    def write(self, samples: Samples) -> None: ...


class Player:
    """Owns the sink: buffered, paced playback with flush, volume and mute.

    Args:
        sink: the speaker.
        clock: monotonic clock.
        state: volume and mute (shared with the tools the agent may call).
        realtime: pace a file-backed sink in real time.
        max_s, prefill_ms: playout buffer size and prefill.
        budget_ms: the device's playback memory (0 = unbounded): excess audio is trimmed.
        on_played: called with each period written (for latency marks).
    """

    def __init__(
        self,
        sink: AudioSink,
        clock: Clock,
        state: DeviceState,
        *,
        realtime: bool = True,
        max_s: float = 30.0,
        prefill_ms: int = 60,
        budget_ms: int = 0,
        on_played: Callable[[Samples], None] | None = None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.state = state
        self.realtime = realtime
        self.on_played = on_played
        self.buffer = PlayoutBuffer(sink.rate, max_s=max_s, prefill_ms=prefill_ms)
        self.limiter = LimitEnforcer(budget_ms, sink.rate) if budget_ms else None
        #: Periods lost to speaker errors, and the last such error.
        self.errors = 0
        self.last_error: DeviceError | None = None
        #: Flushes applied (barge-in, cancel, a dropped connection).
        self.flushes = 0
        self._ready = asyncio.Event()
        # The uplink is muted until then while a local sound (an earcon) plays.
        self.local_until = 0.0

    @property
    def idle(self) -> bool:
        """Nothing is playing or waiting to play."""
        return self.buffer.idle

    def write(self, samples: Samples) -> None:
        """Queue reply audio (speaker rate, mono)."""
        if not len(samples):
            return
        self.buffer.write(samples)
        if self.limiter is not None:
            excess = self.limiter.check(self.buffer.queued)
            if excess:
                self.buffer.trim(excess)
        self._ready.set()

    def end_of_reply(self) -> None:
        """No more audio is coming for this reply: play out what is buffered."""
        self.buffer.end_of_reply()
        self._ready.set()

    def play_local(self, samples: Samples) -> None:
        """Play a local sound (an earcon); :attr:`local_until` says when it ends."""
        if not len(samples):
            return
        now = self.clock.now()
        self.local_until = max(self.local_until, now) + len(samples) / self.sink.rate + 0.05
        self.buffer.write(samples)
        self.end_of_reply()

    def flush(self) -> None:
        """Drop everything queued (with a 10 ms fade), including the sound card's own ring."""
        self.flushes += 1
        self.buffer.flush(fade_ms=10)
        flush_device = getattr(self.sink, "flush", None)
        if callable(flush_device):
            flush_device()  # a sound card's own ring, so barge-in is heard at once
        self._ready.set()

    async def wait_idle(self) -> None:
        """Wait until everything queued has been played (call after :meth:`end_of_reply`)."""
        while not self.buffer.idle:
            await asyncio.sleep(PLAY_PERIOD_S)

    async def wait_below(self, seconds: float) -> None:
        """Wait until less than ``seconds`` of audio is queued (backpressure for a producer
        that runs faster than real time)."""
        limit = seconds * self.sink.rate
        while self.buffer.queued >= limit:
            await asyncio.sleep(PLAY_PERIOD_S)

    async def run(self) -> None:
        """The play task: runs until cancelled."""
        n = round(self.sink.rate * PLAY_PERIOD_S)
        # A sound card (it reports queued_ms) plays in real time whatever audio.realtime
        # says: writing a reply to it faster would overflow its small ring.
        if not self.realtime and not hasattr(self.sink, "queued_ms"):
            await self._run_unpaced(n)
            return
        pacer = Pacer(PLAY_PERIOD_S, self.clock.now())
        while True:
            if self.buffer.idle:
                self._ready.clear()
                await self._ready.wait()
                pacer.restart(self.clock.now())
            delay = pacer.next_deadline() - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            for _ in range(pacer.due(self.clock.now())):
                chunk = self.buffer.read(n)
                if chunk is None:
                    break
                self._played(chunk)

    async def _run_unpaced(self, n: int) -> None:
        pb = self.buffer
        while True:
            fading = not pb.idle and not pb.playing and pb.queued == 0
            ready = pb.playing and (pb.queued >= n or pb.reply_done)
            if not (fading or ready):
                self._ready.clear()
                await self._ready.wait()
                continue
            chunk = pb.read(n)
            if chunk is not None:
                self._played(chunk)
            await asyncio.sleep(0)

    def _played(self, chunk: Samples) -> None:
        state = self.state
        if state.muted:
            chunk = np.zeros_like(chunk)
        elif state.volume < 1.0:
            chunk = (chunk * state.volume).astype(np.int16)
        try:
            self.sink.write(chunk)
        except DeviceError as exc:
            # A speaker failure must not take capture (or the connection) down with it: the
            # period is lost and counted, and the next one tries the device again.
            self.errors += 1
            self.last_error = exc
            if self.errors == 1 or self.errors % 500 == 0:
                log.warning("speaker error (%d so far): %s", self.errors, exc)
            return
        if self.on_played is not None:
            self.on_played(chunk)
