"""Audio formats and the sample arithmetic everything else shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["API_RATES", "AudioFormat", "Samples", "ms_to_samples", "samples_to_ms"]

#: int16 samples, shape (n,) for mono or (n, channels) interleaved as rows.
Samples = NDArray[np.int16]

#: Sample rates the Coze audio APIs accept (InputAudio / PCMConfig).
API_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A PCM stream's shape: rate in Hz, channels, bytes per sample."""

    rate: int
    channels: int = 1
    width: int = 2

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.rate}")
        if self.channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {self.channels}")
        if self.width not in (1, 2, 3):
            raise ValueError(f"sample width must be 1, 2 or 3 bytes, got {self.width}")

    @property
    def bytes_per_frame(self) -> int:
        """Bytes for one sample on every channel."""
        return self.channels * self.width

    def samples(self, ms: float) -> int:
        """Samples per channel in ``ms`` milliseconds."""
        return ms_to_samples(ms, self.rate)

    def nbytes(self, ms: float) -> int:
        """Bytes in ``ms`` milliseconds of this format."""
        return self.samples(ms) * self.bytes_per_frame

    def duration_ms(self, nbytes: int) -> float:
        """Milliseconds of audio in ``nbytes`` bytes."""
        return nbytes / self.bytes_per_frame * 1000.0 / self.rate


def ms_to_samples(ms: float, rate: int) -> int:
    """Samples in ``ms`` milliseconds at ``rate`` (rounded to the nearest sample)."""
    return round(ms * rate / 1000.0)


def samples_to_ms(n: int, rate: int) -> float:
    """Milliseconds in ``n`` samples at ``rate``."""
    return n * 1000.0 / rate
