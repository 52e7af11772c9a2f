"""MP3: frame headers (ISO/IEC 11172-3 / 13818-3), LAME delay, streaming decode at any split."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.codecs.mp3 import LAME_DELAY, MP3_RATES, Mp3Codec
from voicegw.errors import CodecError, UnsupportedCodec

# ISO/IEC 11172-3 2.4.2.3 and 13818-3 2.4.2.3: header fields for Layer III.
_RATES = {0b11: (44100, 48000, 32000), 0b10: (22050, 24000, 16000), 0b00: (11025, 12000, 8000)}
_KBPS_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_KBPS_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


def parse_frames(data: bytes) -> list[tuple[int, int, int, int]]:
    """Walk MP3 frames: (sample_rate, kbps, channels, samples_per_frame) for each."""
    frames = []
    pos = 0
    while pos < len(data):
        h = int.from_bytes(data[pos : pos + 4], "big")
        assert h >> 21 == 0x7FF, f"no frame sync at byte {pos}"
        version, layer = (h >> 19) & 3, (h >> 17) & 3
        assert layer == 0b01, "not Layer III"
        rate = _RATES[version][(h >> 10) & 3]
        kbps = (_KBPS_V1 if version == 0b11 else _KBPS_V2)[(h >> 12) & 15]
        padding = (h >> 9) & 1
        channels = 1 if (h >> 6) & 3 == 0b11 else 2
        per_frame = 1152 if version == 0b11 else 576
        pos += per_frame // 8 * kbps * 1000 // rate + padding
        frames.append((rate, kbps, channels, per_frame))
    assert pos == len(data), "stream does not end on a frame boundary"
    return frames


def chirp(rate: int, seconds: float = 1.0, amp: float = 9000.0) -> np.ndarray:
    """A non-periodic test signal (linear chirp 200 Hz -> 0.3 * rate), so correlation lags
    are unambiguous."""
    t = np.arange(int(rate * seconds)) / rate
    f1 = 0.3 * rate
    return (np.sin(2 * np.pi * (200 * t + (f1 - 200) * t * t / (2 * seconds))) * amp).astype(
        np.int16
    )


def best_lag(y: np.ndarray, x: np.ndarray, max_lag: int) -> int:
    m = len(x) - max_lag
    scores = [np.dot(y[lag : lag + m].astype(np.float64), x[:m]) for lag in range(max_lag)]
    return int(np.argmax(scores))


def encode_all(codec: Mp3Codec, x: np.ndarray) -> bytes:
    return codec.encode(x) + codec.flush()


@pytest.fixture(scope="module")
def stream24k() -> tuple[np.ndarray, bytes]:
    x = chirp(24000, 1.5)
    return x, encode_all(Mp3Codec(24000, 1, bitrate=48000), x)


# -- encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", MP3_RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_encoder_frames_have_requested_format(rate: int, channels: int) -> None:
    bitrate = 64000
    x = chirp(rate, 0.5)
    if channels == 2:
        x = np.stack([x, x // 2], axis=1)
    data = encode_all(Mp3Codec(rate, channels, bitrate=bitrate), x)
    frames = parse_frames(data)
    # LAME must not resample (it picks a lower output rate unless told otherwise).
    assert {f[:3] for f in frames} == {(rate, bitrate // 1000, channels)}
    decoded = Mp3Codec(rate, channels).decode(data)
    assert decoded.shape[0] == sum(f[3] for f in frames)
    assert decoded.shape[0] >= x.shape[0] + LAME_DELAY


def test_chunked_encoding_equals_one_shot() -> None:
    x = chirp(16000, 1.0)
    whole = encode_all(Mp3Codec(16000), x)
    codec = Mp3Codec(16000)
    chunked = b"".join(codec.encode(x[i : i + 320]) for i in range(0, len(x), 320))
    assert chunked + codec.flush() == whole


def test_flush_starts_a_new_encoded_stream() -> None:
    codec = Mp3Codec(24000)
    x = chirp(24000, 0.3)
    first = encode_all(codec, x)
    assert encode_all(codec, x) == first


def test_cbr_size_matches_bitrate(stream24k: tuple[np.ndarray, bytes]) -> None:
    _, data = stream24k
    frames = parse_frames(data)
    seconds = sum(f[3] for f in frames) / 24000
    assert abs(len(data) - 48000 / 8 * seconds) <= 1 * len(frames)  # padding bits only


# -- delay and round trip ------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 32000, 44100, 48000])
def test_decoded_audio_lags_by_lame_delay(rate: int) -> None:
    x = chirp(rate, 1.0)
    y = Mp3Codec(rate).decode(encode_all(Mp3Codec(rate, bitrate=64000), x))
    assert best_lag(y, x, 3000) == LAME_DELAY


def test_round_trip_with_skip_leading_is_aligned() -> None:
    t = np.arange(48000) / 24000
    x = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    decoder = Mp3Codec(24000, skip_leading=LAME_DELAY)
    y = decoder.decode(encode_all(Mp3Codec(24000), x))
    assert len(y) >= len(x)
    m = len(x) - 100
    scores = [
        np.dot(y[100 + k : 100 + k + m - 100].astype(float), x[100:m]) for k in range(-20, 21)
    ]
    assert int(np.argmax(scores)) - 20 == 0
    err = y[: len(x)].astype(np.float64) - x
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(err**2))
    assert snr > 18, snr  # about 26 dB at 48 kbit/s


def test_stereo_keeps_channel_order() -> None:
    t = np.arange(24000) / 24000
    left = (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
    right = (np.sin(2 * np.pi * 1700 * t) * 8000).astype(np.int16)
    data = encode_all(Mp3Codec(24000, 2, bitrate=96000), np.stack([left, right], axis=1))
    y = Mp3Codec(24000, 2, skip_leading=LAME_DELAY).decode(data)[: len(t)].astype(np.float64)
    assert y.shape == (len(t), 2)
    assert np.dot(y[:, 0], left) > 10 * abs(np.dot(y[:, 0], right))
    assert np.dot(y[:, 1], right) > 10 * abs(np.dot(y[:, 1], left))


def test_mono_codec_downmixes_stereo_stream() -> None:
    x = np.stack([chirp(24000, 0.5), np.zeros(12000, dtype=np.int16)], axis=1)
    data = encode_all(Mp3Codec(24000, 2, bitrate=96000), x)
    stereo = Mp3Codec(24000, 2).decode(data).astype(np.int32)
    mono = Mp3Codec(24000, 1).decode(data)
    assert np.array_equal(mono, (stereo[:, 0] + stereo[:, 1]) // 2)


# -- streaming decode ----------------------------------------------------------------------


def decode_split(data: bytes, cuts: list[int], **opts: int) -> np.ndarray:
    codec = Mp3Codec(24000, **opts)
    bounds = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    parts = [codec.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    return np.concatenate([*parts, codec.flush_decoded()])


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=12000), min_size=1, max_size=20))
def test_split_anywhere_decodes_bit_exact(
    stream24k: tuple[np.ndarray, bytes], cuts: list[int]
) -> None:
    _, data = stream24k
    whole = decode_split(data, [], skip_leading=LAME_DELAY)
    assert np.array_equal(decode_split(data, cuts, skip_leading=LAME_DELAY), whole)


def test_byte_by_byte_decodes_bit_exact(stream24k: tuple[np.ndarray, bytes]) -> None:
    _, data = stream24k
    assert np.array_equal(decode_split(data, list(range(len(data)))), decode_split(data, []))


def test_split_inside_first_header(stream24k: tuple[np.ndarray, bytes]) -> None:
    _, data = stream24k
    codec = Mp3Codec(24000)
    assert codec.decode(data[:2]).shape == (0,)
    rest = codec.decode(data[2:])
    assert np.array_equal(rest, Mp3Codec(24000).decode(data))


def test_matches_independent_decoder(stream24k: tuple[np.ndarray, bytes]) -> None:
    sf = pytest.importorskip("soundfile")
    _, data = stream24k
    ours = Mp3Codec(24000).decode(data)
    theirs, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == 24000
    assert ours.shape == theirs.shape
    # FFmpeg's fixed-point decoder and libsndfile's mpg123 differ only in rounding.
    assert np.max(np.abs(ours.astype(np.int32) - theirs)) <= 4


def test_flush_decoded_restarts_the_stream(stream24k: tuple[np.ndarray, bytes]) -> None:
    _, data = stream24k
    codec = Mp3Codec(24000, skip_leading=LAME_DELAY)
    first = np.concatenate([codec.decode(data), codec.flush_decoded()])
    second = np.concatenate([codec.decode(data), codec.flush_decoded()])
    assert np.array_equal(first, second)


def test_reset_discards_partial_frame(stream24k: tuple[np.ndarray, bytes]) -> None:
    _, data = stream24k
    codec = Mp3Codec(24000)
    codec.decode(data[:500])
    codec.reset()
    assert np.array_equal(codec.decode(data), Mp3Codec(24000).decode(data))


def test_truncated_stream_flushes_without_error(stream24k: tuple[np.ndarray, bytes]) -> None:
    _, data = stream24k
    codec = Mp3Codec(24000)
    body = codec.decode(data[:-40])
    tail = codec.flush_decoded()
    assert body.shape[0] + tail.shape[0] <= Mp3Codec(24000).decode(data).shape[0]
    assert tail.dtype == np.int16


def test_wrong_stream_rate_is_an_error() -> None:
    data = encode_all(Mp3Codec(16000), chirp(16000, 0.2))
    with pytest.raises(CodecError, match="16000 Hz"):
        Mp3Codec(24000).decode(data)


def test_empty_and_garbage_input() -> None:
    codec = Mp3Codec(24000)
    assert codec.decode(b"").shape == (0,)
    assert codec.flush_decoded().shape == (0,)
    assert codec.flush() == b""
    assert codec.stateful is True


@pytest.mark.parametrize(
    ("rate", "channels", "opts"),
    [
        (22000, 1, {}),
        (24000, 3, {}),
        (24000, 1, {"bitrate": 50000}),
        (16000, 1, {"bitrate": 320000}),  # MPEG-2 tops out at 160 kbit/s
        (44100, 1, {"bitrate": 8000}),  # MPEG-1 starts at 32 kbit/s
        (44100, 1, {"quality": 10}),
        (44100, 1, {"skip_leading": -1}),
    ],
)
def test_rejects_unsupported(rate: int, channels: int, opts: dict[str, int]) -> None:
    with pytest.raises(UnsupportedCodec):
        Mp3Codec(rate, channels, **opts)
