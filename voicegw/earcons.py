"""Earcons: the short tones a device plays when the talk button is pressed or released, or on
an error.

Tones are generated, not shipped: each is one or more linear sine sweeps with raised-cosine
(half Hann) tapers at both ends, so the first and last samples are zero and the tone starts and
stops without a click. The sweep's phase is continuous (the integral of the instantaneous
frequency), so a sweep has no discontinuity inside either. A device may replace any tone with a
WAV file (:func:`load_earcon`), which is downmixed, resampled, optionally normalised, and tapered
the same way.

Earcons are **local only**. The gateway writes them to the speaker and never appends them to
the uplink: they are not part of what the user said. The microphone can still hear them (with
push-to-talk the microphone is open while the press tone plays, and the pre-roll reaches back
before the press), which is why the tones are short (60-150 ms), pure and quiet by default
(-20 dBFS peak): a tone is not speech to an ASR, unlike a recorded chime with a voice in it
(HeyWillow/willow#332). A gateway that must keep them out of the uplink entirely zeroes the
captured samples while one plays.

Everything here is synchronous and, apart from :func:`load_earcon` reading its file, pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from .audio import Samples, ms_to_samples
from .dsp import resample, to_mono
from .errors import ConfigError

__all__ = [
    "DEFAULT_LEVEL_DBFS",
    "EARCONS",
    "EarconName",
    "Sweep",
    "earcon",
    "load_earcon",
    "load_earcons",
    "sweep",
]

#: Peak level of the generated tones, dBFS.
DEFAULT_LEVEL_DBFS: Final = -20.0
#: Longest raised-cosine taper at each end of a sweep, ms.
_MAX_TAPER_MS: Final = 10.0
#: Taper applied to both ends of a loaded WAV, ms (removes a click from a cut file).
_FILE_TAPER_MS: Final = 3.0
#: Longest earcon file accepted, s: an earcon delays the conversation, so it must be short.
_MAX_FILE_S: Final = 3.0

EarconName: TypeAlias = Literal["press", "release", "error"]


@dataclass(frozen=True, slots=True)
class Sweep:
    """One segment of an earcon: a linear sweep from ``start_hz`` to ``end_hz``.

    Attributes:
        start_hz: frequency at the first sample, Hz.
        end_hz: frequency at the last sample, Hz.
        ms: length of the tone, ms.
        gap_ms: silence after it, ms.
    """

    start_hz: float
    end_hz: float
    ms: float
    gap_ms: float = 0.0


#: The built-in tones: a rising fifth on press ("listening"), the same falling on release
#: ("sent"), and two low falling blips on error. Frequencies sit where small speakers are
#: loud and below 4 kHz, so every API rate from 8 kHz up can play them.
EARCONS: Final[Mapping[EarconName, tuple[Sweep, ...]]] = {
    "press": (Sweep(660.0, 990.0, 80.0),),
    "release": (Sweep(990.0, 660.0, 80.0),),
    "error": (Sweep(440.0, 330.0, 60.0, gap_ms=30.0), Sweep(440.0, 330.0, 60.0)),
}


def _check_level(level_dbfs: float) -> float:
    if not (math.isfinite(level_dbfs) and level_dbfs <= 0):
        raise ConfigError(f"must be a finite level <= 0 dBFS, got {level_dbfs!r}", key="level_dbfs")
    return 32767.0 * math.pow(10.0, level_dbfs / 20.0)


def _check_rate(rate: int) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ConfigError(f"must be a positive integer in Hz, got {rate!r}", key="rate")


def _taper(n: int, length: int) -> NDArray[np.float64]:
    """Gains for an ``n``-sample tone: raised-cosine ramps of ``length`` samples at each end.

    ``g[i] = (1 - cos(pi * i / length)) / 2`` for the ramp up, so ``g[0] == 0``; the ramp down
    mirrors it, so the last gain is 0 too.
    """
    gains = np.ones(n, dtype=np.float64)
    length = min(length, n // 2)
    if length > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(length) / length)
        gains[:length] = ramp
        gains[n - length :] = ramp[::-1]
    return gains


def sweep(
    start_hz: float,
    end_hz: float,
    ms: float,
    rate: int,
    *,
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
) -> Samples:
    """A raised-cosine-tapered linear sine sweep as mono int16.

    The tapers are ``min(10 ms, ms / 4)`` long at each end; the peak is ``level_dbfs``.

    Args:
        start_hz: frequency at the start, Hz (0 < f < rate / 2).
        end_hz: frequency at the end, Hz (0 < f < rate / 2).
        ms: length, ms (> 0).
        rate: sample rate of the result, Hz.
        level_dbfs: peak level, dBFS (<= 0).

    Returns:
        ``round(ms * rate / 1000)`` samples, shape ``(n,)``.

    Raises:
        ConfigError: a frequency at or above Nyquist, a non-positive length or rate, or a
            level above 0 dBFS.
    """
    _check_rate(rate)
    peak = _check_level(level_dbfs)
    for key, f in (("start_hz", start_hz), ("end_hz", end_hz)):
        if not (math.isfinite(f) and 0 < f < rate / 2):
            raise ConfigError(f"must be between 0 and {rate / 2:g} Hz, got {f!r}", key=key)
    if not (math.isfinite(ms) and ms > 0):
        raise ConfigError(f"must be a positive length in ms, got {ms!r}", key="ms")
    n = max(1, ms_to_samples(ms, rate))
    duration = n / rate
    t = np.arange(n, dtype=np.float64) / rate
    # Phase of a linear chirp: 2*pi * integral of f(t) = f0 + (f1 - f0) * t / T.
    phase = 2.0 * np.pi * (start_hz * t + (end_hz - start_hz) * t * t / (2.0 * duration))
    taper = ms_to_samples(min(_MAX_TAPER_MS, ms / 4.0), rate)
    wave = np.sin(phase) * _taper(n, taper)
    top = float(np.max(np.abs(wave))) or 1.0
    out: Samples = np.rint(wave * (peak / top)).astype(np.int16)
    return out


def earcon(name: EarconName, rate: int, *, level_dbfs: float = DEFAULT_LEVEL_DBFS) -> Samples:
    """A built-in tone (:data:`EARCONS`) as mono int16 at ``rate``.

    Raises:
        ConfigError: an unknown name, a bad rate, or a level above 0 dBFS.
    """
    parts = EARCONS.get(name)
    if parts is None:
        known = ", ".join(repr(k) for k in EARCONS)
        raise ConfigError(f"unknown earcon {name!r}; known: {known}", key="earcon")
    _check_rate(rate)
    pieces: list[Samples] = []
    for part in parts:
        pieces.append(sweep(part.start_hz, part.end_hz, part.ms, rate, level_dbfs=level_dbfs))
        if part.gap_ms > 0:
            pieces.append(np.zeros(ms_to_samples(part.gap_ms, rate), dtype=np.int16))
    return np.concatenate(pieces)


def load_earcon(path: str | Path, rate: int, *, level_dbfs: float | None = None) -> Samples:
    """Read a short sound file as a mono int16 earcon at ``rate``.

    The file is downmixed, resampled, scaled so that its peak is ``level_dbfs`` (when given;
    otherwise its level is kept) and given 3 ms raised-cosine tapers at both ends.

    Raises:
        ConfigError: the file cannot be read, is empty, or is longer than 3 s; a bad rate or
            level.
    """
    _check_rate(rate)
    peak = None if level_dbfs is None else _check_level(level_dbfs)
    path = Path(path)
    try:
        data, file_rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise ConfigError(f"cannot read earcon file {path}: {exc}") from None
    if len(data) == 0:
        raise ConfigError(f"earcon file {path} holds no audio")
    if len(data) > _MAX_FILE_S * file_rate:
        raise ConfigError(
            f"earcon file {path} lasts {len(data) / file_rate:.1f} s; "
            f"earcons must be at most {_MAX_FILE_S:g} s"
        )
    mono = resample(to_mono(data), int(file_rate), rate)
    wave = mono.astype(np.float64) * _taper(len(mono), ms_to_samples(_FILE_TAPER_MS, rate))
    if peak is not None:
        top = float(np.max(np.abs(wave)))
        if top > 0:
            wave *= peak / top
    out: Samples = np.clip(np.rint(wave), -32768, 32767).astype(np.int16)
    return out


def load_earcons(
    rate: int,
    *,
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
    files: Mapping[EarconName, str | Path] | None = None,
) -> dict[EarconName, Samples]:
    """Every earcon at ``rate``: the built-in tones, with any given in ``files`` replaced.

    A file is scaled to ``level_dbfs`` like the tones, so all earcons play equally loud.

    Raises:
        ConfigError: as :func:`earcon` and :func:`load_earcon`; an unknown name in ``files``.
    """
    files = files or {}
    for name in files:
        if name not in EARCONS:
            known = ", ".join(repr(k) for k in EARCONS)
            raise ConfigError(f"unknown earcon {name!r}; known: {known}", key="earcon")
    out: dict[EarconName, Samples] = {}
    for name in EARCONS:
        given = files.get(name)
        out[name] = (
            earcon(name, rate, level_dbfs=level_dbfs)
            if given is None
            else load_earcon(given, rate, level_dbfs=level_dbfs)
        )
    return out
