"""Uplink and downlink chains: device format in, API payloads out, and back to the speaker."""

from __future__ import annotations

import numpy as np
import pytest

from voicegw.chains import Downlink, Uplink


def tone(rate: int, seconds: float, hz: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    return np.stack([x, x // 2], axis=1) if channels == 2 else x


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize(
    "codec,api_rate",
    [("pcm", 16000), ("pcm", 24000), ("g711a", 8000), ("g711u", 8000), ("opus", 16000)],
)
def test_48k_stereo_capture_to_payloads_and_back(codec: str, api_rate: int) -> None:
    up = Uplink(device_rate=48000, device_channels=2, codec=codec, rate=api_rate, frame_ms=20)
    capture = tone(48000, 1.0, channels=2)
    payloads: list[bytes] = []
    for i in range(0, len(capture), 960):  # 20 ms device frames
        payloads.extend(up.process(capture[i : i + 960]))
    # Fixed-size frames: every payload is exactly one 20 ms API frame.
    assert len(payloads) >= 40  # 50 frames less the resampler's filter delay
    if codec != "opus":
        per_sample = 2 if codec == "pcm" else 1
        assert {len(p) for p in payloads} == {api_rate // 50 * per_sample}
    down = Downlink(
        codec=codec,
        rate=api_rate,
        sink_rate=48000,
        **({"frame_size_ms": 20} if codec == "opus" else {}),
    )
    out = np.concatenate([down.decode(p) for p in payloads] + [down.drain()])
    assert abs(len(out) - len(payloads) * 960) <= 960
    steady = out[4800:-4800]
    assert abs(peak_hz(steady, 48000) - 440.0) < 5.0


def test_opus_to_a_48k_speaker_skips_decimation() -> None:
    down = Downlink(codec="opus", rate=24000, sink_rate=48000, frame_size_ms=20)
    assert getattr(down.codec, "decode_rate", None) == 48000
    assert down.resampler.passthrough
    other = Downlink(codec="opus", rate=24000, sink_rate=16000, frame_size_ms=20)
    assert getattr(other.codec, "decode_rate", None) == 24000
