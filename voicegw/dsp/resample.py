"""Sample-rate conversion of int16 audio with libsoxr, streaming and one-shot.

Uses the SoX Resampler library (libsoxr, through python-soxr) whose HQ setting is a
band-limited polyphase filter with 20-bit precision and a linear phase response
(soxr documentation, ``SOXR_HQ``). Rates are any pair the Coze APIs use
(:data:`voicegw.audio.API_RATES`) or Opus/MP3 internal rates; libsoxr handles arbitrary ratios.

Samples are converted to float32 for libsoxr and rounded back to int16 with saturation by
:func:`voicegw.dsp.convert.float_to_int16`: libsoxr's own integer output applies TPDF dither,
which makes the output depend on how the input was chunked and on earlier calls, while its
float path is exactly chunking-invariant.

libsoxr's HQ/VHQ streams return output in irregular bursts (48k→16k in 960-sample chunks
gives 0, 490, 0, 489, ... samples), so :class:`StreamResampler` puts an output FIFO behind the
stream: :meth:`~StreamResampler.pull` hands out exact chunk sizes for framed consumers.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import numpy as np
import soxr
from numpy.typing import NDArray

from voicegw.audio import Samples
from voicegw.dsp.convert import float_to_int16

__all__ = ["QUALITIES", "StreamResampler", "resample"]

#: libsoxr quality recipes, from quick cubic (QQ) to very high (VHQ).
QUALITIES: Final = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _check(samples: Samples, channels: int) -> Samples:
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise TypeError("resampling needs an int16 numpy array")
    if channels == 1:
        if samples.ndim == 2 and samples.shape[1] == 1:
            samples = samples[:, 0]
        if samples.ndim != 1:
            raise ValueError(f"expected mono shape (n,), got {samples.shape}")
    elif samples.ndim != 2 or samples.shape[1] != channels:
        raise ValueError(f"expected shape (n, {channels}), got {samples.shape}")
    return samples if samples.flags.c_contiguous else np.ascontiguousarray(samples)


def _to_int16(y: NDArray[np.float32]) -> Samples:
    """Round and saturate libsoxr's output, which is a fresh array, in place."""
    return float_to_int16(y, overwrite=True)


def _check_rates(in_rate: int, out_rate: int, quality: str) -> None:
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")


def resample(samples: Samples, in_rate: int, out_rate: int, quality: str = "HQ") -> Samples:
    """Resample a whole buffer in one call (shape ``(n,)`` or ``(n, ch)``).

    Output length is ``round(n * out_rate / in_rate)``; the filter's delay is compensated.
    Do not call this per frame: it designs the filter on every call. Use
    :class:`StreamResampler` for streams.

    Raises:
        TypeError: ``samples`` is not int16.
        ValueError: a rate is not positive or ``quality`` is unknown.
    """
    _check_rates(in_rate, out_rate, quality)
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise TypeError("resampling needs an int16 numpy array")
    if in_rate == out_rate or samples.shape[0] == 0:
        return samples
    return _to_int16(soxr.resample(samples.astype(np.float32), in_rate, out_rate, quality))


class StreamResampler:
    """Streaming int16 resampler with an output FIFO.

    Two ways to read output, which may be mixed:

    * :meth:`process` resamples a chunk and returns everything available (variable size);
    * :meth:`write` then :meth:`pull` returns exactly ``n`` samples per call, or ``None`` until
      that many are buffered.

    When ``in_rate == out_rate`` the stream is a passthrough: arrays go through the FIFO
    by reference, with no filtering and no copies, so do not modify an array after writing it.

    Args:
        in_rate: input sample rate in Hz.
        out_rate: output sample rate in Hz.
        channels: channels per sample; mono arrays are ``(n,)``, others ``(n, channels)``.
        quality: one of :data:`QUALITIES`. ``"HQ"`` costs about 5-15 µs per 20 ms frame.

    Raises:
        ValueError: a rate or channel count is not positive, or ``quality`` is unknown.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1, quality: str = "HQ") -> None:
        _check_rates(in_rate, out_rate, quality)
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.channels = channels
        self.quality = quality
        self.passthrough = in_rate == out_rate
        self._stream: soxr.ResampleStream | None = (
            None
            if self.passthrough
            else soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality=quality)
        )
        self._fifo: deque[Samples] = deque()
        self._head = 0  # samples already pulled from self._fifo[0]
        self._available = 0
        self._empty = np.empty((0,) if channels == 1 else (0, channels), dtype=np.int16)

    @property
    def available(self) -> int:
        """Output samples (per channel) buffered for :meth:`pull` / :meth:`drain`."""
        return self._available

    @property
    def delay(self) -> float:
        """Output samples the resampler currently holds back (0 for a passthrough)."""
        return 0.0 if self._stream is None else float(self._stream.delay())

    def write(self, samples: Samples, *, last: bool = False) -> None:
        """Resample ``samples`` into the FIFO.

        Args:
            samples: int16, ``(n,)`` for mono or ``(n, channels)``.
            last: ``True`` ends the stream and pushes out the filter's tail; the next
                write starts a new stream.

        Raises:
            TypeError: ``samples`` is not int16.
            ValueError: wrong shape for ``channels``.
        """
        samples = _check(samples, self.channels)
        if self._stream is not None:
            y = self._stream.resample_chunk(samples.astype(np.float32), last=last)
            if last:
                self._stream.clear()
            samples = _to_int16(y)
        if samples.shape[0]:
            self._fifo.append(samples)
            self._available += samples.shape[0]

    def pull(self, n: int) -> Samples | None:
        """Take exactly ``n`` output samples from the FIFO, or ``None`` if fewer are buffered."""
        if n > self._available:
            return None
        if n <= 0:
            return self._empty
        first = self._fifo[0]
        if self._head == 0 and first.shape[0] == n:
            self._fifo.popleft()
            self._available -= n
            return first
        parts: list[Samples] = []
        need = n
        while need:
            first = self._fifo[0]
            take = min(need, first.shape[0] - self._head)
            parts.append(first[self._head : self._head + take])
            need -= take
            self._head += take
            if self._head == first.shape[0]:
                self._fifo.popleft()
                self._head = 0
        self._available -= n
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def drain(self) -> Samples:
        """Take everything in the FIFO (possibly an empty array)."""
        if not self._available:
            return self._empty
        out = self.pull(self._available)
        assert out is not None
        return out

    def process(self, samples: Samples) -> Samples:
        """Resample ``samples`` and return all output available so far."""
        self.write(samples)
        return self.drain()

    def flush(self) -> Samples:
        """End the stream: return the buffered output plus the filter's tail.

        The resampler is ready for a new stream afterwards.
        """
        if self._stream is not None:
            self.write(self._empty, last=True)
        return self.drain()

    def reset(self) -> None:
        """Drop the FIFO and the filter state (for example after a barge-in)."""
        if self._stream is not None:
            self._stream.clear()
        self._fifo.clear()
        self._head = 0
        self._available = 0
