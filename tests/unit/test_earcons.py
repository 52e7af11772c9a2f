"""Earcons: length, peak level, click-free ends, sweep direction, and WAV overrides."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicegw.earcons import (
    DEFAULT_LEVEL_DBFS,
    EARCONS,
    earcon,
    load_earcon,
    load_earcons,
    sweep,
)
from voicegw.errors import ConfigError

RATES = (8000, 16000, 24000, 48000)


def peak_for(dbfs: float) -> float:
    return 32767 * math.pow(10, dbfs / 20)


def zero_crossings(x: np.ndarray) -> int:
    signs = np.signbit(x[x != 0])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("name", "ms"), [("press", 80), ("release", 80), ("error", 150)])
def test_length_dtype_and_shape(name: str, ms: int, rate: int) -> None:
    x = earcon(name, rate)  # type: ignore[arg-type]
    assert x.dtype == np.int16 and x.ndim == 1
    assert len(x) == round(ms * rate / 1000)
    assert 60 <= ms <= 150


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("level", [DEFAULT_LEVEL_DBFS, -6.0, -30.0, 0.0])
def test_peak_level_is_the_requested_dbfs(rate: int, level: float) -> None:
    for name in EARCONS:
        x = earcon(name, rate, level_dbfs=level)
        assert int(np.max(np.abs(x.astype(np.int32)))) == pytest.approx(peak_for(level), abs=1)


@pytest.mark.parametrize("rate", RATES)
def test_ends_are_tapered_so_there_is_no_click(rate: int) -> None:
    peak = peak_for(DEFAULT_LEVEL_DBFS)
    one_ms = rate // 1000
    for name in EARCONS:
        x = earcon(name, rate).astype(np.int32)
        assert abs(x[0]) <= 1 and abs(x[-1]) <= 1
        # The first and last millisecond stay far below the peak (a raised-cosine ramp).
        assert np.max(np.abs(x[:one_ms])) < 0.1 * peak
        assert np.max(np.abs(x[-one_ms:])) < 0.1 * peak
        # No jump between neighbouring samples bigger than the sine itself could make.
        assert np.max(np.abs(np.diff(x))) <= 2 * math.pi * 1000 / rate * peak + 2


def test_error_tone_has_a_silent_gap_between_its_blips() -> None:
    rate = 16000
    x = earcon("error", rate)
    gap = x[round(0.062 * rate) : round(0.088 * rate)]
    assert not np.any(gap)


def test_press_rises_and_release_falls() -> None:
    rate = 48000
    quarter = round(0.02 * rate)
    press = earcon("press", rate)
    release = earcon("release", rate)

    def early(x: np.ndarray) -> int:
        return zero_crossings(x[quarter : 2 * quarter])

    def late(x: np.ndarray) -> int:
        return zero_crossings(x[-2 * quarter : -quarter])

    assert late(press) > early(press)
    assert late(release) < early(release)


def test_a_steady_sweep_has_the_expected_pitch() -> None:
    rate = 16000
    x = sweep(1000.0, 1000.0, 100.0, rate, level_dbfs=-6.0)
    # 1 kHz for 100 ms: 200 zero crossings (the tapers cost a couple at most).
    assert 196 <= zero_crossings(x) <= 200


@pytest.mark.parametrize(
    ("args", "kwargs", "key"),
    [
        ((500.0, 4000.0, 80.0, 8000), {}, "end_hz"),
        ((0.0, 500.0, 80.0, 8000), {}, "start_hz"),
        ((500.0, 600.0, 0.0, 8000), {}, "ms"),
        ((500.0, 600.0, 80.0, 0), {}, "rate"),
        ((500.0, 600.0, 80.0, 16000), {"level_dbfs": 3.0}, "level_dbfs"),
        ((500.0, 600.0, 80.0, 16000), {"level_dbfs": float("nan")}, "level_dbfs"),
    ],
)
def test_bad_sweeps_are_config_errors(args: tuple, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        sweep(*args, **kwargs)
    assert info.value.key == key


def test_unknown_earcon_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'press'"):
        earcon("beep", 16000)  # type: ignore[arg-type]


def test_calls_are_pure() -> None:
    assert np.array_equal(earcon("press", 16000), earcon("press", 16000))


# ---------------------------------------------------------------- files


def write_chime(path: Path, *, rate: int = 44100, seconds: float = 0.2) -> None:
    """A stereo square wave that starts and stops at full level: clicks at both ends."""
    n = round(rate * seconds)
    square = np.where((np.arange(n) // 50) % 2 == 0, 20000, -20000).astype(np.int16)
    sf.write(str(path), np.stack([square, square // 2], axis=1), rate, subtype="PCM_16")


def test_load_earcon_downmixes_resamples_levels_and_tapers(tmp_path: Path) -> None:
    path = tmp_path / "chime.wav"
    write_chime(path)
    x = load_earcon(path, 16000, level_dbfs=-12.0)
    assert x.dtype == np.int16 and x.ndim == 1
    assert len(x) == pytest.approx(0.2 * 16000, abs=2)
    assert int(np.max(np.abs(x.astype(np.int32)))) == pytest.approx(peak_for(-12.0), abs=1)
    assert abs(int(x[0])) <= 1 and abs(int(x[-1])) <= 1


def test_load_earcon_keeps_the_level_when_none_is_given(tmp_path: Path) -> None:
    path = tmp_path / "chime.wav"
    write_chime(path, rate=16000)
    x = load_earcon(path, 16000)
    assert int(np.max(np.abs(x.astype(np.int32)))) == pytest.approx(15000, rel=0.02)


@pytest.mark.parametrize("problem", ["missing", "empty", "too long"])
def test_load_earcon_problems_are_config_errors(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "bad.wav"
    if problem == "empty":
        sf.write(str(path), np.zeros(0, dtype=np.int16), 16000)
    elif problem == "too long":
        write_chime(path, rate=8000, seconds=4.0)
    with pytest.raises(ConfigError, match=str(path)):
        load_earcon(path, 16000)


def test_load_earcons_replaces_only_the_given_tones(tmp_path: Path) -> None:
    path = tmp_path / "press.wav"
    write_chime(path)
    tones = load_earcons(24000, files={"press": path})
    assert set(tones) == set(EARCONS)
    assert len(tones["press"]) == pytest.approx(0.2 * 24000, abs=2)
    assert np.array_equal(tones["release"], earcon("release", 24000))
    levels = {int(np.max(np.abs(t.astype(np.int32)))) for t in tones.values()}
    assert max(levels) - min(levels) <= 1  # a file is scaled to the tones' level


def test_load_earcons_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown earcon"):
        load_earcons(16000, files={"boop": tmp_path / "x.wav"})  # type: ignore[dict-item]
