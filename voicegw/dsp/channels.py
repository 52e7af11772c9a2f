"""Channel selection, down/up-mixing and gain on int16 sample arrays.

Sample layout follows :data:`voicegw.audio.Samples`: shape ``(n,)`` for mono and
``(n, channels)`` for interleaved multi-channel audio, the order used on the wire by the Coze
voice WebSocket reference (``input_audio.channel``) and by WAVE files. Arithmetic saturates to
the int16 range instead of wrapping, as ITU-T G.191 (STL) basic operators do.
"""

from __future__ import annotations

import math

import numpy as np

from voicegw.audio import Samples
from voicegw.dsp.convert import float_to_int16

__all__ = [
    "SPEECH_DBFS",
    "apply_gain",
    "db_to_gain",
    "is_loud",
    "num_channels",
    "to_channels",
    "to_mono",
]


def num_channels(samples: Samples) -> int:
    """Channels in ``samples``: 1 for shape ``(n,)``, otherwise ``shape[1]``."""
    return 1 if samples.ndim == 1 else int(samples.shape[1])


def to_mono(samples: Samples, channel: int | None = None) -> Samples:
    """Reduce ``samples`` to shape ``(n,)``.

    Args:
        samples: int16, shape ``(n,)`` or ``(n, ch)``.
        channel: ``None`` averages all channels (rounding toward minus infinity, which
            cannot overflow); an index selects that channel (microphone arrays often put
            the useful signal on one channel).

    Returns:
        ``samples`` itself when it is already 1-D, else a new contiguous array.

    Raises:
        ValueError: ``channel`` is out of range, or ``samples`` is not 1-D or 2-D.
    """
    if samples.ndim == 1:
        if channel not in (None, 0, -1):
            raise ValueError(f"channel {channel} out of range for mono audio")
        return samples
    if samples.ndim != 2:
        raise ValueError(f"expected shape (n,) or (n, ch), got {samples.shape}")
    ch = samples.shape[1]
    if channel is not None:
        if not -ch <= channel < ch:
            raise ValueError(f"channel {channel} out of range for {ch}-channel audio")
        return np.ascontiguousarray(samples[:, channel])
    if ch == 1:
        return np.ascontiguousarray(samples[:, 0])
    # Adding columns is ~4x cheaper per frame than a reduction along axis 1.
    total = samples[:, 0].astype(np.int32)
    for i in range(1, ch):
        total += samples[:, i]
    if ch == 2:
        total >>= 1  # floor division by 2
        mono: Samples = total.astype(np.int16)
        return mono
    return np.floor_divide(total, ch).astype(np.int16)


def to_channels(samples: Samples, n: int) -> Samples:
    """Convert ``samples`` to ``n`` channels.

    Mono is duplicated to every channel; ``n == 1`` downmixes with :func:`to_mono`; more
    channels than wanted keeps the first ``n``. ``samples`` is returned unchanged when it
    already has ``n`` channels (a 1-D array counts as mono).

    Raises:
        ValueError: ``n < 1``, or widening audio that has 2 or more channels.
    """
    if n < 1:
        raise ValueError(f"channel count must be at least 1, got {n}")
    have = num_channels(samples)
    if n == 1:
        return to_mono(samples)
    if have == n:
        return samples
    if have == 1:
        mono = samples.reshape(-1)
        return np.repeat(mono[:, None], n, axis=1)
    if have > n:
        return np.ascontiguousarray(samples[:, :n])
    raise ValueError(f"cannot widen {have}-channel audio to {n} channels")


def db_to_gain(db: float) -> float:
    """Linear amplitude factor for ``db`` decibels."""
    return math.pow(10.0, db / 20.0)


def apply_gain(samples: Samples, gain: float) -> Samples:
    """Multiply by a linear ``gain``, rounding to nearest and saturating to int16.

    Returns ``samples`` itself (no copy) when ``gain == 1``.

    Raises:
        ValueError: ``gain`` is negative or not finite.
    """
    if not math.isfinite(gain) or gain < 0:
        raise ValueError(f"gain must be a finite non-negative number, got {gain}")
    if gain == 1.0:
        return samples
    return float_to_int16(samples.astype(np.float32) * np.float32(gain), overwrite=True)


#: Level above which a frame counts as "someone is talking" for latency marks, dBFS.
SPEECH_DBFS = -45.0
_SPEECH_MEAN_SQUARE = (32768.0 * 10 ** (SPEECH_DBFS / 20)) ** 2


def is_loud(samples: Samples) -> bool:
    """Whether a mono frame's RMS is above :data:`SPEECH_DBFS` (one dot product, ~1 us)."""
    if not len(samples):
        return False
    x = samples.astype(np.float32)
    return float(np.dot(x, x)) / len(x) > _SPEECH_MEAN_SQUARE
