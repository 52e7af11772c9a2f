"""Downlink playout: a bounded buffer with barge-in epochs, and a pacer on an absolute timeline.

Both are pure state machines: they never read a clock or touch a device. The gateway feeds them
decoded reply audio and the current monotonic time.

Policies (stated, and counted in :class:`PlayoutStats`):

* **bounded**: at most ``max_samples`` are held; audio that would overflow drops the *oldest*
  queued samples, because the service already sent them late and the newest audio is what the
  reply is up to.
* **prefill**: playback of a reply starts once ``prefill`` samples are queued, or at once when
  the reply is known to be complete (:meth:`PlayoutBuffer.end_of_reply`).
* **underrun**: once started, a read that finds too little audio is padded with silence and
  counted; playback stops (and prefill applies again) when a finished reply drains.
* **epochs**: :meth:`PlayoutBuffer.flush` empties the buffer at once and starts a new epoch;
  writes tagged with an older epoch are dropped, so late audio of a cancelled reply never plays.
* **fade on flush**: ``flush(fade_ms=10)`` (5-20 ms) keeps the first ``fade_ms`` of the audio
  that was at the head and the next :meth:`PlayoutBuffer.read` returns it under a raised-cosine
  fade-out, padded with silence: a barge-in stops without the click of a hard cut, and is
  still silent after one device period, because the fade is shortened to fit that read.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from .audio import Samples

__all__ = ["FADE_MS_RANGE", "Pacer", "PlayoutBuffer", "PlayoutStats"]

#: Allowed fade lengths for :meth:`PlayoutBuffer.flush`, ms (0 means a hard cut).
FADE_MS_RANGE: Final = (5.0, 20.0)


@lru_cache(maxsize=16)
def _fade_curve(n: int) -> NDArray[np.float32]:
    """Raised-cosine gains for an ``n``-sample fade-out, strictly decreasing inside (0, 1).

    ``g[i] = (1 + cos(pi * (i + 1) / (n + 1))) / 2``: the half Hann window without its end
    points, so the first sample is already attenuated and the last is not yet zero.
    """
    i = np.arange(1, n + 1, dtype=np.float64)
    curve = (0.5 + 0.5 * np.cos(np.pi * i / (n + 1))).astype(np.float32)
    curve.flags.writeable = False
    return curve


@dataclass(slots=True)
class PlayoutStats:
    """Counters, in samples unless noted.

    ``flushed`` counts samples dropped by :meth:`PlayoutBuffer.flush` (including the part of a
    fade that did not fit the read that played it); ``fades`` counts fade-outs played (events)
    and ``faded`` their samples; ``overflow_dropped`` includes :meth:`PlayoutBuffer.trim`.
    """

    written: int = 0
    played: int = 0
    underrun_samples: int = 0
    underruns: int = 0
    overflow_dropped: int = 0
    flushed: int = 0
    stale_dropped: int = 0
    fades: int = 0
    faded: int = 0


class PlayoutBuffer:
    """Bounded FIFO of mono int16 samples with prefill, underrun padding and epoch flushes."""

    def __init__(self, rate: int, *, max_s: float = 30.0, prefill_ms: float = 60.0) -> None:
        if rate <= 0 or max_s <= 0 or prefill_ms < 0:
            raise ValueError("rate and max_s must be positive, prefill_ms non-negative")
        self.rate = rate
        self.max_samples = int(max_s * rate)
        self.prefill = min(int(prefill_ms * rate / 1000), self.max_samples)
        self.epoch = 0
        self.stats = PlayoutStats()
        self._chunks: deque[Samples] = deque()
        self._queued = 0
        self._head = 0  # samples already consumed from _chunks[0]
        self._playing = False
        self._reply_done = False
        self._fade: Samples | None = None  # head audio kept by flush(fade_ms), not yet faded

    # ------------------------------------------------------------ state
    @property
    def queued(self) -> int:
        """Samples waiting to be played."""
        return self._queued

    @property
    def playing(self) -> bool:
        """Whether a reply is being played (prefill reached and not yet drained)."""
        return self._playing

    @property
    def reply_done(self) -> bool:
        """The current reply's last audio has been written (:meth:`end_of_reply`)."""
        return self._reply_done

    @property
    def idle(self) -> bool:
        """Nothing is queued, playing or fading out."""
        return not self._playing and self._queued == 0 and self._fade is None

    # ------------------------------------------------------------ producer side
    def write(self, samples: Samples, epoch: int | None = None) -> None:
        """Queue decoded reply audio; audio tagged with a stale ``epoch`` is dropped."""
        n = len(samples)
        if epoch is not None and epoch != self.epoch:
            self.stats.stale_dropped += n
            return
        if n == 0:
            return
        self._reply_done = False
        if n > self.max_samples:
            self.stats.overflow_dropped += n - self.max_samples
            samples = samples[-self.max_samples :]
            n = self.max_samples
        over = self._queued + n - self.max_samples
        if over > 0:
            self._drop_oldest(over)
            self.stats.overflow_dropped += over
        self._chunks.append(samples)
        self._queued += n
        self.stats.written += n
        if not self._playing and self._queued >= self.prefill:
            self._playing = True

    def end_of_reply(self) -> None:
        """The service sent all audio of the reply: start even below prefill, stop when drained."""
        self._reply_done = True
        if self._queued:
            self._playing = True

    def flush(self, fade_ms: float = 0.0) -> int:
        """Drop everything queued and start a new epoch.

        Args:
            fade_ms: 0 cuts dead. 5-20 ms keeps that much of the audio at the head, if a reply
                is playing, and the next :meth:`read` returns it faded out (raised cosine) and
                padded with silence; the fade is shortened to the read's length, so the speaker
                is silent after one device period. A new flush without a fade cancels a pending
                one; a flush with nothing queued leaves it.

        Returns:
            The samples dropped, not counting those kept for the fade.

        Raises:
            ValueError: ``fade_ms`` is neither 0 nor within :data:`FADE_MS_RANGE`.
        """
        lo, hi = FADE_MS_RANGE
        if fade_ms != 0 and not (math.isfinite(fade_ms) and lo <= fade_ms <= hi):
            raise ValueError(f"fade_ms must be 0 or {lo:g}-{hi:g} ms, got {fade_ms}")
        fade_n = max(1, round(fade_ms * self.rate / 1000)) if fade_ms else 0
        if not fade_n:
            self._fade = None
        elif self._playing and self._queued:
            head = np.empty(min(fade_n, self._queued), dtype=np.int16)
            self._take_into(head)
            self._fade = head
        dropped = self._queued
        self._chunks.clear()
        self._queued = 0
        self._head = 0
        self._playing = False
        self._reply_done = False
        self.epoch += 1
        self.stats.flushed += dropped
        return dropped

    # ------------------------------------------------------------ consumer side
    def read(self, n: int) -> Samples | None:
        """Take the next ``n`` samples for the speaker.

        Returns ``None`` while nothing should play (not started, or a finished reply drained),
        otherwise exactly ``n`` samples, padded with silence on underrun. After
        ``flush(fade_ms)`` the next read returns the fade-out (at most ``n`` samples of it)
        followed by silence; queued audio of a new reply starts on the read after that.
        """
        if self._fade is not None:
            return self._read_fade(n)
        if not self._playing:
            return None
        out = np.zeros(n, dtype=np.int16)
        got = self._take_into(out)
        self.stats.played += got
        if got < n:
            if self._reply_done:
                self._playing = False
                self._reply_done = False
                if got == 0:
                    return None
                return out[:got]
            self.stats.underruns += 1
            self.stats.underrun_samples += n - got
        return out

    def trim(self, count: int) -> int:
        """Drop up to ``count`` of the oldest queued samples (e.g. for a
        :class:`~voicegw.limits.LimitEnforcer`); counted in ``overflow_dropped``.

        Returns:
            The samples dropped.
        """
        count = max(0, min(count, self._queued))
        self._drop_oldest(count)
        self.stats.overflow_dropped += count
        return count

    def _read_fade(self, n: int) -> Samples:
        fade = self._fade
        assert fade is not None
        self._fade = None
        k = min(len(fade), n)
        out = np.zeros(n, dtype=np.int16)
        if k:
            out[:k] = np.rint(fade[:k] * _fade_curve(k))
        self.stats.flushed += len(fade) - k
        self.stats.fades += 1
        self.stats.faded += k
        return out

    def _take_into(self, out: Samples) -> int:
        pos = 0
        n = len(out)
        while pos < n and self._chunks:
            chunk = self._chunks[0]
            avail = len(chunk) - self._head
            k = min(avail, n - pos)
            out[pos : pos + k] = chunk[self._head : self._head + k]
            pos += k
            self._head += k
            if self._head == len(chunk):
                self._chunks.popleft()
                self._head = 0
        self._queued -= pos
        return pos

    def _drop_oldest(self, count: int) -> None:
        while count > 0 and self._chunks:
            chunk = self._chunks[0]
            avail = len(chunk) - self._head
            if avail <= count:
                self._chunks.popleft()
                self._head = 0
                self._queued -= avail
                count -= avail
            else:
                self._head += count
                self._queued -= count
                count = 0


class Pacer:
    """Deadlines on an absolute monotonic timeline: ``start + k * period``.

    Never chained sleeps: each deadline is computed from the start, so wake-up jitter does not
    accumulate. When the caller falls more than ``max_lag`` behind, the timeline is restarted at
    ``now`` instead of bursting to catch up (counted in :attr:`resyncs`).
    """

    def __init__(self, period_s: float, start: float, *, max_lag_s: float = 0.1) -> None:
        if period_s <= 0:
            raise ValueError("period must be positive")
        self.period = period_s
        self.max_lag = max_lag_s
        self._start = start
        self._k = 0
        self.resyncs = 0

    def next_deadline(self) -> float:
        """When the next period is due."""
        return self._start + self._k * self.period

    def due(self, now: float) -> int:
        """How many periods are due at ``now`` (0 or more); marks them consumed."""
        lag = now - self.next_deadline()
        if lag < 0:
            return 0
        if lag > self.max_lag:
            self.resyncs += 1
            self._start = now
            self._k = 1
            return 1
        n = int(lag // self.period) + 1
        self._k += n
        return n

    def restart(self, now: float) -> None:
        """Start a new timeline at ``now`` (e.g. when playback of a new reply begins)."""
        self._start = now
        self._k = 0
