"""An energy voice-activity detector on the audio's own timeline (spec 2.2.4, 2.6.4, 2.6.5).

Pure and clock-free: it is fed int16 samples and reports positions as sample indexes of the
stream it has seen, so "500 ms of silence" means 500 ms of *audio*, however fast that audio
arrived over the socket.

How it decides, on consecutive 10 ms frames:

* a frame is *voiced* when its RMS level is at least ``threshold_dbfs`` (default -45 dBFS;
  digital silence is -inf);
* QUIET -> SPEAKING once ``onset_ms`` (default 30 ms) of consecutive voiced frames confirm the
  onset. The onset is the first frame of that run, and :class:`SpeechStart` reports it with the
  position where it was confirmed (the short onset hangover keeps clicks from counting);
* SPEAKING -> QUIET once the audio since the last voiced frame reaches ``end_silence_ms``
  (the owner may change that value while speech goes on: semantic VAD does).
  :class:`SpeechEnd` reports the onset, the end of the last voiced frame and the position where
  the silence was long enough.

This module only segments; ``prefix_padding_ms`` and the turn logic live in the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..audio import Samples

__all__ = [
    "DEFAULT_THRESHOLD_DBFS",
    "EnergyVad",
    "SpeechEnd",
    "SpeechStart",
    "VadState",
    "find_speech",
    "level_dbfs",
]

#: Default speech threshold. Room tone of a quiet mic sits near -60 dBFS; speech peaks near -10.
DEFAULT_THRESHOLD_DBFS = -45.0
_FRAME_MS = 10


class VadState(Enum):
    QUIET = "quiet"
    SPEAKING = "speaking"


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Onset confirmed: speech began at sample ``onset``; confirmed at sample ``at``."""

    onset: int
    at: int


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """End of an utterance: voiced audio spans ``[onset, end)``; decided at sample ``at``."""

    onset: int
    end: int
    at: int


def level_dbfs(frame: Samples) -> float:
    """RMS level of int16 samples in dB relative to full scale (``-inf`` for silence)."""
    if frame.size == 0:
        return -math.inf
    x = frame.astype(np.float64)
    ms = float(np.mean(x * x))
    if ms <= 0.0:
        return -math.inf
    return 10.0 * math.log10(ms / (32768.0 * 32768.0))


class EnergyVad:
    """Segments a mono int16 stream into utterances.

    Args:
        rate: sample rate of the stream, Hz.
        end_silence_ms: silence after the last voiced frame that ends an utterance.
        threshold_dbfs: level at or above which a 10 ms frame counts as voiced.
        onset_ms: voiced audio needed in a row to confirm an onset.
    """

    def __init__(
        self,
        rate: int,
        *,
        end_silence_ms: float = 500.0,
        threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
        onset_ms: float = 30.0,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.frame = rate * _FRAME_MS // 1000
        self.end_silence_ms = end_silence_ms
        self.threshold_dbfs = threshold_dbfs
        self._onset_frames = max(1, math.ceil(onset_ms / _FRAME_MS))
        self.state = VadState.QUIET
        self.position = 0  # samples consumed into whole frames
        self._pending: Samples = np.zeros(0, dtype=np.int16)
        self._run = 0
        self._candidate = 0
        self.onset = 0
        self.last_voiced_end = 0

    @property
    def speech_samples(self) -> int:
        """Voiced span of the current utterance so far (0 when quiet)."""
        if self.state is VadState.QUIET:
            return 0
        return self.last_voiced_end - self.onset

    def reset(self) -> None:
        """Forget any utterance in progress (the position keeps counting)."""
        self.state = VadState.QUIET
        self._run = 0

    def force_end(self) -> SpeechEnd | None:
        """End the current utterance now (used for over-long utterances)."""
        if self.state is not VadState.SPEAKING:
            return None
        self.state = VadState.QUIET
        self._run = 0
        return SpeechEnd(self.onset, self.last_voiced_end, self.position)

    def feed(self, samples: Samples) -> list[SpeechStart | SpeechEnd]:
        """Consume samples; returns the decisions they caused, in order."""
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        n = self.frame
        whole = samples.shape[0] - samples.shape[0] % n
        self._pending = samples[whole:].copy()
        out: list[SpeechStart | SpeechEnd] = []
        if whole == 0:
            return out
        x = samples[:whole].reshape(-1, n).astype(np.float64)
        power = np.mean(x * x, axis=1)
        floor = 10.0 ** (self.threshold_dbfs / 10.0) * 32768.0 * 32768.0
        for voiced in ((power >= floor) & (power > 0.0)).tolist():
            event = self._frame(voiced)
            if event is not None:
                out.append(event)
        return out

    def _frame(self, voiced: bool) -> SpeechStart | SpeechEnd | None:
        start = self.position
        self.position += self.frame
        if self.state is VadState.QUIET:
            if not voiced:
                self._run = 0
                return None
            if self._run == 0:
                self._candidate = start
            self._run += 1
            if self._run < self._onset_frames:
                return None
            self.state = VadState.SPEAKING
            self.onset = self._candidate
            self.last_voiced_end = self.position
            return SpeechStart(self.onset, self.position)
        if voiced:
            self.last_voiced_end = self.position
            return None
        silence_ms = (self.position - self.last_voiced_end) * 1000.0 / self.rate
        if silence_ms + 1e-9 < self.end_silence_ms:
            return None
        self.state = VadState.QUIET
        self._run = 0
        return SpeechEnd(self.onset, self.last_voiced_end, self.position)


def find_speech(
    samples: Samples,
    rate: int,
    *,
    threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
    onset_ms: float = 30.0,
) -> tuple[int, int] | None:
    """First confirmed onset and end of the last voiced frame in a whole buffer, or ``None``.

    Used for push-to-talk buffers, where the client, not silence, ends the turn.
    """
    vad = EnergyVad(rate, end_silence_ms=math.inf, threshold_dbfs=threshold_dbfs, onset_ms=onset_ms)
    events = vad.feed(samples)
    if not events:
        return None
    return events[0].onset, vad.last_voiced_end
