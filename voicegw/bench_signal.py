"""Test audio for ``voicegw bench``: espeak-ng speech when available, else a synthetic voice.

Both signals are deterministic. The speech is the fixture sentence of :mod:`voicegw.speech`
with 0.5 s of low-level noise (-60 dBFS, seeded) on each side, as a microphone hears it between
utterances. The synthetic fallback is a voiced signal with a gliding pitch of 100-220 Hz, five
harmonics and syllable-rate (about 4 Hz) amplitude envelopes separated by short pauses, plus the
same noise floor: its spectrum and level changes resemble speech closely enough for codecs,
resamplers and the VAD to do representative work.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .audio import Samples
from .dsp import resample
from .errors import VoiceGatewayError
from .speech import FIXTURE_SENTENCES, espeak_available, synthesize

__all__ = ["Signal", "frames", "load_audioop", "make_signal"]

_BASE_RATE = 48000
_NOISE_DBFS = -60.0
_PAD_S = 0.5


@dataclass(slots=True)
class Signal:
    """One mono utterance at 48 kHz, converted to other rates on demand (and cached).

    Attributes:
        source: ``"speech (espeak-ng)"`` or ``"synthetic"``.
        mono48k: the utterance, int16 at 48 kHz.
    """

    source: str
    mono48k: Samples
    _cache: dict[int, Samples] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Duration of one utterance, s."""
        return len(self.mono48k) / _BASE_RATE

    def at(self, rate: int) -> Samples:
        """The utterance at ``rate`` Hz (mono int16)."""
        if rate == _BASE_RATE:
            return self.mono48k
        if rate not in self._cache:
            self._cache[rate] = resample(self.mono48k, _BASE_RATE, rate)
        return self._cache[rate]

    def looped(self, rate: int, seconds: float) -> Samples:
        """The utterance repeated to last exactly ``seconds`` at ``rate`` Hz."""
        one = self.at(rate)
        n = round(seconds * rate)
        reps = -(-n // len(one))
        out: Samples = np.tile(one, reps)[:n].copy()
        return out

    def stereo48k(self) -> Samples:
        """Device capture: shape ``(n, 2)``, left the utterance, right the same at half level."""
        left = self.mono48k
        out: Samples = np.stack((left, left // 2), axis=1)
        return np.ascontiguousarray(out)


def _noise(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    level = 32768.0 * 10 ** (_NOISE_DBFS / 20)
    out: NDArray[np.float64] = rng.normal(0.0, level, n)
    return out


def _to_int16(x: NDArray[np.float64]) -> Samples:
    out: Samples = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return out


def _synthetic(seconds: float, rng: np.random.Generator) -> NDArray[np.float64]:
    rate = _BASE_RATE
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = 160 + 60 * np.sin(2 * np.pi * 0.7 * t) * np.sin(2 * np.pi * 0.23 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k**1.3 for k in range(1, 6))
    # Syllables: raised-cosine bursts of 120-300 ms separated by 40-200 ms pauses.
    env = np.zeros(n)
    pos = 0
    while pos < n:
        length = round(rng.uniform(0.12, 0.30) * rate)
        seg = min(length, n - pos)
        env[pos : pos + seg] = np.sin(np.pi * np.arange(seg) / length) ** 2 * rng.uniform(0.4, 1)
        pos += length + round(rng.uniform(0.04, 0.2) * rate)
    out: NDArray[np.float64] = 9000.0 * env * voice
    return out


def make_signal(*, synthetic: bool = False, seed: int = 1234) -> Signal:
    """Build the bench's test utterance.

    Args:
        synthetic: skip espeak-ng even when it is installed.
        seed: seeds the noise floor and the synthetic voice.

    Returns:
        The speech sentence when espeak-ng works, else the synthetic voice (5 s).
    """
    rng = np.random.default_rng(seed)
    voice: NDArray[np.float64] | None = None
    source = "synthetic"
    if not synthetic and espeak_available():
        try:
            spoken, rate = synthesize(FIXTURE_SENTENCES[0])
        except VoiceGatewayError:
            spoken = None
        if spoken is not None:
            voice = resample(spoken, rate, _BASE_RATE).astype(np.float64)
            source = "speech (espeak-ng)"
    if voice is None:
        voice = _synthetic(5.0, rng)
    pad = round(_PAD_S * _BASE_RATE)
    body = np.concatenate((np.zeros(pad), voice, np.zeros(pad)))
    return Signal(source, _to_int16(body + _noise(len(body), rng)))


def frames(samples: Samples, size: int) -> list[Samples]:
    """Cut ``samples`` into contiguous frames of exactly ``size`` samples (the rest is dropped)."""
    return [
        np.ascontiguousarray(samples[i : i + size]) for i in range(0, len(samples) - size + 1, size)
    ]


def load_audioop() -> Any | None:
    """The ``audioop`` module (stdlib up to 3.12, ``audioop-lts`` from 3.13), or ``None``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None
