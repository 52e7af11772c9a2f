"""is_loud: the speech mark used for latency figures, against an independent RMS in dB."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicegw.dsp.channels import SPEECH_DBFS, is_loud


def dbfs(x: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
    return -math.inf if rms == 0 else 20 * math.log10(rms / 32768)


@pytest.mark.parametrize("level_db", [-80, -50, -46, -44, -30, -6, 0])
def test_threshold_matches_rms_in_dbfs(level_db: float) -> None:
    t = np.arange(320) / 16000
    x = np.clip(
        np.sqrt(2) * 32768 * 10 ** (level_db / 20) * np.sin(2 * np.pi * 500 * t), -32768, 32767
    )
    frame = x.astype(np.int16)
    assert is_loud(frame) == (dbfs(frame) > SPEECH_DBFS)


def test_empty_and_silent_frames_are_quiet() -> None:
    assert not is_loud(np.zeros(0, np.int16))
    assert not is_loud(np.zeros(320, np.int16))
    assert is_loud(np.full(320, -32768, np.int16))
