"""File-backed audio devices: a WAV microphone and a WAV speaker.

They stand in for sound cards in the demo and in tests, with the same seams a real device has:
a source that delivers fixed-size frames on its own clock, and a sink that is written to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import Samples
from ..clock import Clock, SystemClock
from ..errors import DeviceError

__all__ = ["WavSink", "WavSource"]


class WavSource:
    """A microphone that plays a WAV file, in real time or as fast as possible.

    Frames are ``frame_ms`` of int16 samples, shape ``(n,)`` (mono) or ``(n, channels)``.
    Real-time pacing uses absolute deadlines from the start time, never chained sleeps.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        frame_ms: float = 20.0,
        realtime: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path)
        try:
            data, rate = sf.read(str(self.path), dtype="int16", always_2d=True)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise DeviceError(f"cannot open microphone file {self.path}: {exc}") from None
        self.rate = int(rate)
        self.channels = int(data.shape[1])
        self._data: Samples = data[:, 0].copy() if self.channels == 1 else data
        self.frame = max(1, round(self.rate * frame_ms / 1000))
        self.realtime = realtime
        self.clock = clock or SystemClock()
        self.frames_sent = 0

    @property
    def duration_s(self) -> float:
        return len(self._data) / self.rate

    async def frames(self) -> AsyncIterator[Samples]:
        """Yield the file frame by frame; the last frame is zero-padded to full length."""
        start = self.clock.now()
        total = len(self._data)
        for i, pos in enumerate(range(0, total, self.frame)):
            chunk = self._data[pos : pos + self.frame]
            if len(chunk) < self.frame:
                pad = np.zeros((self.frame - len(chunk), *chunk.shape[1:]), dtype=np.int16)
                chunk = np.concatenate([chunk, pad])
            if self.realtime:
                # Frame i is complete at start + (i + 1) * period, as on a real capture device.
                delay = start + (i + 1) * self.frame / self.rate - self.clock.now()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            self.frames_sent += 1
            yield chunk


class WavSink:
    """A speaker that writes 16-bit mono WAV. Written samples are counted."""

    def __init__(self, path: str | Path, rate: int) -> None:
        self.path = Path(path)
        self.rate = rate
        self.samples_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = sf.SoundFile(
                str(self.path), mode="w", samplerate=rate, channels=1, subtype="PCM_16"
            )
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise DeviceError(f"cannot open speaker file {self.path}: {exc}") from None

    def write(self, samples: Samples) -> None:
        self._file.write(samples)
        self.samples_written += len(samples)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
