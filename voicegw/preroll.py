"""A bounded pre-roll ring: the last ``preroll_ms`` of microphone audio, kept while idle.

When a push-to-talk press or a local VAD trigger starts a turn, the audio that came just
before the trigger (the first syllable, which a VAD only recognises after a few frames) is
already gone from the live stream. :class:`PreRoll` keeps it: every device frame is pushed,
and :meth:`PreRoll.take` hands back the newest samples, oldest first, so the caller can send
them ahead of the live frames without a gap or a duplicate.

Bounded, with a stated policy (house style 7): the ring holds at most ``capacity`` samples
per channel; older audio is overwritten and counted in :attr:`PreRoll.dropped`.

Cost: :meth:`PreRoll.push` is one or two numpy slice copies per frame, independent of the
ring size (no per-sample Python); :meth:`PreRoll.take` copies the samples it returns.
"""

from __future__ import annotations

import numpy as np

from .audio import Samples, ms_to_samples
from .errors import ConfigError

__all__ = ["PreRoll"]


class PreRoll:
    """Ring buffer of the newest int16 samples, for one stream of a fixed shape.

    Args:
        rate: sample rate of the pushed audio, Hz (used to convert ``preroll_ms``).
        preroll_ms: how much audio to keep, ms (0 keeps nothing).
        channels: 1 for frames of shape ``(n,)``; more for interleaved ``(n, channels)``.

    Raises:
        ConfigError: ``rate`` or ``channels`` is not positive, or ``preroll_ms`` is negative.
    """

    def __init__(self, rate: int, preroll_ms: float, *, channels: int = 1) -> None:
        if rate <= 0:
            raise ConfigError(f"must be a positive rate in Hz, got {rate}", key="rate")
        if channels < 1:
            raise ConfigError(f"must be at least 1, got {channels}", key="channels")
        if not preroll_ms >= 0:
            raise ConfigError(f"must be >= 0 ms, got {preroll_ms}", key="preroll_ms")
        self.rate = rate
        self.channels = channels
        #: Samples per channel the ring holds at most.
        self.capacity = ms_to_samples(preroll_ms, rate)
        #: Samples (per channel) that left the ring without being taken: overwritten by newer
        #: audio, older than what :meth:`take` asked for, or discarded by :meth:`clear`.
        self.dropped = 0
        shape = (self.capacity,) if channels == 1 else (self.capacity, channels)
        self._buf: Samples = np.zeros(shape, dtype=np.int16)
        self._write = 0  # index of the next sample to write
        self._len = 0  # samples currently held

    def __len__(self) -> int:
        """Samples per channel currently held."""
        return self._len

    @property
    def duration_ms(self) -> float:
        """Milliseconds of audio currently held."""
        return self._len * 1000.0 / self.rate

    def push(self, frame: Samples) -> None:
        """Append ``frame``; when the ring is full the oldest samples are overwritten.

        A frame longer than the whole ring keeps only its newest ``capacity`` samples.

        Args:
            frame: int16, shape ``(n,)`` for a mono ring, ``(n, channels)`` otherwise.

        Raises:
            TypeError: ``frame`` is not an int16 array.
            ValueError: its shape does not match ``channels``.
        """
        self._check(frame)
        n = frame.shape[0]
        cap = self.capacity
        if n >= cap:
            self.dropped += self._len + n - cap
            if cap:
                self._buf[:] = frame[n - cap :]
            self._write = 0
            self._len = cap
            return
        w = self._write
        end = w + n
        if end <= cap:
            self._buf[w:end] = frame
        else:
            split = cap - w
            self._buf[w:] = frame[:split]
            self._buf[: n - split] = frame[split:]
        self._write = end % cap
        total = self._len + n
        if total > cap:
            self.dropped += total - cap
            total = cap
        self._len = total

    def take(self, last: int | None = None) -> Samples:
        """Return the held audio, oldest sample first, and empty the ring.

        Args:
            last: return only the newest ``last`` samples (the older ones count as dropped);
                ``None`` returns everything held.

        Returns:
            A new array (shape ``(k,)`` or ``(k, channels)``); ``k`` may be 0.
        """
        n = self._len if last is None else max(0, min(int(last), self._len))
        self.dropped += self._len - n
        cap = self.capacity
        start = (self._write - n) % cap if cap else 0
        if start + n <= cap:
            out = self._buf[start : start + n].copy()
        else:
            out = np.concatenate((self._buf[start:], self._buf[: start + n - cap]))
        self._len = 0
        self._write = 0
        return out

    def clear(self) -> None:
        """Discard everything held (counted in :attr:`dropped`)."""
        self.dropped += self._len
        self._len = 0
        self._write = 0

    def _check(self, frame: Samples) -> None:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.int16:
            raise TypeError("the pre-roll ring holds int16 numpy arrays")
        if self.channels == 1:
            if frame.ndim != 1:
                raise ValueError(f"expected a mono frame of shape (n,), got {frame.shape}")
        elif frame.ndim != 2 or frame.shape[1] != self.channels:
            raise ValueError(f"expected a frame of shape (n, {self.channels}), got {frame.shape}")
