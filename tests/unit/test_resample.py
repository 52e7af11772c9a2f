"""Streaming libsoxr resampler with output FIFO, one-shot resampling, channel helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.dsp import (
    StreamResampler,
    apply_gain,
    db_to_gain,
    float_to_int16,
    resample,
    to_channels,
    to_mono,
)

RATE_PAIRS = [(48000, 16000), (16000, 48000), (24000, 16000), (22050, 16000), (8000, 44100)]


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def stream_in_chunks(rs: StreamResampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, pos, i = [], 0, 0
    while pos < len(x):
        size = sizes[i % len(sizes)] if sizes else 480
        parts.append(rs.process(x[pos : pos + size]))
        pos += size
        i += 1
    parts.append(rs.flush())
    return np.concatenate(parts)


# -- streaming vs one-shot -----------------------------------------------------------------


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_stream_matches_one_shot(in_rate: int, out_rate: int) -> None:
    x = (np.random.default_rng(in_rate).standard_normal(in_rate) * 3000).astype(np.int16)
    whole = resample(x, in_rate, out_rate)
    assert len(whole) == round(len(x) * out_rate / in_rate)
    streamed = stream_in_chunks(StreamResampler(in_rate, out_rate), x, [1, 333, 960, 17, 2000])
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed.astype(np.int32) - whole)) <= 2


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=10))
def test_stream_output_does_not_depend_on_chunking(sizes: list[int]) -> None:
    x = tone(1234, 24000, 0.5)
    reference = stream_in_chunks(StreamResampler(24000, 16000), x, [480])
    assert np.array_equal(stream_in_chunks(StreamResampler(24000, 16000), x, sizes), reference)


def test_fifo_pull_yields_exact_chunks() -> None:
    x = tone(700, 48000, 1.0)
    rs = StreamResampler(48000, 16000)
    reference = stream_in_chunks(StreamResampler(48000, 16000), x, [960])
    pulled = []
    for pos in range(0, len(x), 960):
        rs.write(x[pos : pos + 960])
        while (chunk := rs.pull(320)) is not None:
            assert chunk.shape == (320,)
            pulled.append(chunk)
    assert rs.available < 320
    assert rs.pull(320) is None
    rs.write(np.empty(0, dtype=np.int16), last=True)
    while (chunk := rs.pull(320)) is not None:
        pulled.append(chunk)
    rest = rs.drain()
    assert len(rest) < 320 and rs.available == 0
    assert np.array_equal(np.concatenate([*pulled, rest]), reference)


def test_pull_spanning_many_fifo_entries() -> None:
    rs = StreamResampler(16000, 16000)
    for v in range(5):
        rs.write(np.full(3, v, dtype=np.int16))
    first = rs.pull(7)
    assert first is not None and first.tolist() == [0, 0, 0, 1, 1, 1, 2]
    nothing = rs.pull(0)
    assert nothing is not None and nothing.shape == (0,)
    assert rs.pull(9) is None
    assert rs.drain().tolist() == [2, 2, 3, 3, 3, 4, 4, 4]


def test_passthrough_does_not_copy() -> None:
    rs = StreamResampler(16000, 16000)
    x = tone(440, 16000, 0.02)
    assert rs.passthrough and rs.delay == 0
    out = rs.process(x)
    assert out is x
    rs.write(x)
    assert rs.pull(len(x)) is x
    assert rs.flush().shape == (0,)


# -- signal properties ---------------------------------------------------------------------


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_sine_frequency_is_preserved(in_rate: int, out_rate: int) -> None:
    freq = 1000.0
    y = stream_in_chunks(StreamResampler(in_rate, out_rate), tone(freq, in_rate), [960])
    resolution = out_rate / len(y)
    assert abs(peak_hz(y, out_rate) - freq) <= resolution
    rms_in = 10000 / np.sqrt(2)
    rms_out = np.sqrt(np.mean(y[len(y) // 4 : -len(y) // 4].astype(np.float64) ** 2))
    assert abs(20 * np.log10(rms_out / rms_in)) < 0.1  # passband gain is flat


def test_downsampling_removes_aliases() -> None:
    # 7 kHz cannot exist at 8 kHz sampling; a naive decimator would fold it to 1 kHz.
    y = resample(tone(7000, 48000), 48000, 8000)
    rms = np.sqrt(np.mean(y.astype(np.float64) ** 2))
    assert 20 * np.log10(rms / (10000 / np.sqrt(2))) < -50


def test_stereo_channels_stay_separate() -> None:
    x = np.stack([tone(500, 48000), tone(1500, 48000)], axis=1)
    rs = StreamResampler(48000, 16000, channels=2)
    y = stream_in_chunks(rs, x, [960])
    assert y.shape == (16000, 2) and y.dtype == np.int16
    assert abs(peak_hz(y[:, 0], 16000) - 500) <= 1
    assert abs(peak_hz(y[:, 1], 16000) - 1500) <= 1
    assert np.array_equal(resample(x, 48000, 16000)[:, 0], resample(x[:, 0].copy(), 48000, 16000))


def test_reset_and_flush_start_a_new_stream() -> None:
    x = tone(440, 24000, 0.2)
    fresh = stream_in_chunks(StreamResampler(24000, 16000), x, [480])
    rs = StreamResampler(24000, 16000)
    rs.write(tone(3000, 24000, 0.05))
    rs.reset()
    assert rs.available == 0
    assert np.array_equal(stream_in_chunks(rs, x, [480]), fresh)
    assert np.array_equal(stream_in_chunks(rs, x, [480]), fresh)  # after flush


def test_hq_stream_has_irregular_output_and_positive_delay() -> None:
    rs = StreamResampler(48000, 16000)
    sizes = [len(rs.process(tone(440, 48000, 0.02))) for _ in range(5)]
    assert sizes[0] < 320 and sum(sizes) < 5 * 320
    assert rs.delay > 0


def test_resampler_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 16000)
    with pytest.raises(ValueError):
        StreamResampler(16000, 8000, quality="best")
    rs = StreamResampler(16000, 8000, channels=2)
    with pytest.raises(ValueError):
        rs.write(np.zeros(10, dtype=np.int16))
    with pytest.raises(TypeError):
        rs.write(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(TypeError):
        resample(np.zeros(10, dtype=np.float64), 16000, 8000)


# -- channel helpers -------------------------------------------------------------------------


def test_to_mono_average_and_select() -> None:
    x = np.array([[100, 201], [-3, 0], [32767, 32767], [-32768, -32768]], dtype=np.int16)
    assert to_mono(x).tolist() == [150, -2, 32767, -32768]  # floor average, no overflow
    assert to_mono(x, 1).tolist() == [201, 0, 32767, -32768]
    assert to_mono(x, -2).tolist() == [100, -3, 32767, -32768]
    assert to_mono(x, 1).flags.c_contiguous
    mono = np.array([1, 2], dtype=np.int16)
    assert to_mono(mono) is mono
    with pytest.raises(ValueError):
        to_mono(x, 2)


def test_to_channels() -> None:
    mono = np.array([1, -2], dtype=np.int16)
    assert to_channels(mono, 2).tolist() == [[1, 1], [-2, -2]]
    stereo = np.array([[1, 3], [5, 7]], dtype=np.int16)
    assert to_channels(stereo, 1).tolist() == [2, 6]
    assert to_channels(stereo, 2) is stereo
    quad = np.arange(8, dtype=np.int16).reshape(2, 4)
    assert to_channels(quad, 2).tolist() == [[0, 1], [4, 5]]
    with pytest.raises(ValueError):
        to_channels(stereo, 4)


def test_apply_gain_saturates_and_rounds() -> None:
    x = np.array([20000, -20000, 100, -100, 0], dtype=np.int16)
    assert apply_gain(x, 2.0).tolist() == [32767, -32768, 200, -200, 0]
    assert apply_gain(x, 0.3).tolist() == [6000, -6000, 30, -30, 0]
    assert apply_gain(x, 1.0) is x
    assert apply_gain(x, db_to_gain(-6.0206)).tolist() == [10000, -10000, 50, -50, 0]
    with pytest.raises(ValueError):
        apply_gain(x, -1.0)
    with pytest.raises(ValueError):
        apply_gain(x, float("nan"))


# -- float to int16 ----------------------------------------------------------------------------


def clip_rint_reference(y: np.ndarray) -> np.ndarray:
    """The conversion as first written: round half to even, then saturate."""
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


EXTREMES = [
    0.0,
    -0.0,
    0.5,
    -0.5,
    1.5,
    2.5,
    -2.5,
    32766.5,
    32767.0,
    32767.49,
    32767.5,
    32768.0,
    32768.5,
    40000.7,
    -32767.5,
    -32768.0,
    -32768.49,
    -32768.5,
    -32769.0,
    -40000.2,
    1e9,
    -1e9,
    3.0e38,
    -3.0e38,
    float("inf"),
    float("-inf"),
    float("nan"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 160, 320, 960, 2047, 2048, 5000, 48000])
def test_float_to_int16_equals_clip_of_rint(dtype: type, n: int) -> None:
    rng = np.random.default_rng(n)
    # speech-like levels, levels far beyond int16, and exact half-integers (ties)
    parts = [
        rng.standard_normal(n) * 8000,
        rng.standard_normal(n) * 60000,
        np.round(rng.uniform(-40000, 40000, n)) + 0.5,
    ]
    with np.errstate(invalid="ignore"):  # NaN to int16 is a cast warning in both forms
        for y in [*(p.astype(dtype) for p in parts), np.array(EXTREMES * 3, dtype=dtype)[:n]]:
            expected = clip_rint_reference(y)
            keep = y.copy()
            got = float_to_int16(y)
            assert got.dtype == np.int16 and got.shape == y.shape
            assert np.array_equal(got, expected)
            assert np.array_equal(y, keep, equal_nan=True)  # the input is left alone
            assert np.array_equal(float_to_int16(y, overwrite=True), expected)


def test_float_to_int16_extremes_and_shapes() -> None:
    y = np.array(EXTREMES[:-1], dtype=np.float32)
    got = float_to_int16(y).tolist()
    assert got[:7] == [0, 0, 0, 0, 2, 2, -2]
    assert got[7:14] == [32766, 32767, 32767, 32767, 32767, 32767, 32767]
    assert got[14:20] == [-32768, -32768, -32768, -32768, -32768, -32768]
    assert got[20:] == [32767, -32768, 32767, -32768, 32767, -32768]
    stereo = (np.random.default_rng(3).standard_normal((480, 2)) * 50000).astype(np.float32)
    assert np.array_equal(float_to_int16(stereo), clip_rint_reference(stereo))
    assert np.array_equal(float_to_int16(stereo.T), clip_rint_reference(stereo.T))
    frozen = stereo.copy()
    frozen.flags.writeable = False
    assert np.array_equal(float_to_int16(frozen, overwrite=True), clip_rint_reference(stereo))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, width=32, min_value=-1e6, max_value=1e6),
        min_size=1,
        max_size=64,
    )
)
def test_float_to_int16_property(values: list[float]) -> None:
    y = np.array(values, dtype=np.float32)
    assert np.array_equal(float_to_int16(y), clip_rint_reference(y))


def test_resampler_output_is_rounded_and_saturated() -> None:
    # a full-scale square wave overshoots when band-limited: the overshoot must saturate
    x = np.tile(np.r_[np.full(24, 32767), np.full(24, -32768)].astype(np.int16), 200)
    out = resample(x, 48000, 16000)
    assert out.max() == 32767 and out.min() == -32768
    y = StreamResampler(48000, 16000).process(x)
    assert y.dtype == np.int16 and y.max() == 32767 and y.min() == -32768
