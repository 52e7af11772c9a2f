"""ITU-T G.711 A-law / µ-law: golden vectors, exhaustive audioop parity, round trips."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from voicegw.audio import Samples
from voicegw.codecs import g711
from voicegw.codecs.g711 import G711Codec
from voicegw.errors import CodecError, UnsupportedCodec

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))

# Hand-checked against G.711 Tables 1a/1b and 2a/2b. A-law values are 13-bit decision and
# reconstruction levels times 8, µ-law values 14-bit levels times 4 (the 16-bit scaling).
ALAW_ENCODE_GOLDEN = [
    (0, 0xD5),  # first positive interval, even bits inverted: 0x80 ^ 0x55
    (-1, 0x55),  # first negative interval: 0x00 ^ 0x55
    (16, 0xD4),  # 13-bit value 2 starts interval 1 of segment 0
    (32767, 0xAA),  # overload: code 0xFF ^ 0x55
    (-32768, 0x2A),  # overload: code 0x7F ^ 0x55
]
ALAW_DECODE_GOLDEN = [
    (0xD5, 8),  # reconstruction 1 (13-bit) for the first interval
    (0x55, -8),
    (0xD4, 24),  # reconstruction 3
    (0xAA, 32256),  # 4032 * 8, the largest A-law output
    (0x2A, -32256),
]
ULAW_ENCODE_GOLDEN = [
    (0, 0xFF),  # µ-law inverts all bits; zero is code 0x80 | 0x7F before inversion
    (32767, 0x80),  # overload
    (-32768, 0x00),
]
ULAW_DECODE_GOLDEN = [
    (0xFF, 0),
    (0x7F, 0),  # "negative zero"
    (0xFE, 8),  # reconstruction 2 (14-bit) of interval 1
    (0x80, 32124),  # 8031 * 4, the largest µ-law output
    (0x00, -32124),
]


@pytest.mark.parametrize(("sample", "code"), ALAW_ENCODE_GOLDEN)
def test_alaw_encode_golden(sample: int, code: int) -> None:
    assert g711.alaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(("code", "sample"), ALAW_DECODE_GOLDEN)
def test_alaw_decode_golden(code: int, sample: int) -> None:
    assert g711.alaw_decode(bytes([code])).tolist() == [sample]


@pytest.mark.parametrize(("sample", "code"), ULAW_ENCODE_GOLDEN)
def test_ulaw_encode_golden(sample: int, code: int) -> None:
    assert g711.ulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(("code", "sample"), ULAW_DECODE_GOLDEN)
def test_ulaw_decode_golden(code: int, sample: int) -> None:
    assert g711.ulaw_decode(bytes([code])).tolist() == [sample]


def test_encode_exhaustive_matches_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    raw = ALL_INT16.tobytes()
    assert g711.alaw_encode(ALL_INT16) == audioop.lin2alaw(raw, 2)
    assert g711.ulaw_encode(ALL_INT16) == audioop.lin2ulaw(raw, 2)


def test_decode_all_codes_matches_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    assert g711.alaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.alaw2lin(ALL_CODES, 2)
    assert g711.ulaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_transcode_matches_audioop_through_linear() -> None:
    audioop = pytest.importorskip("audioop")
    a2u = audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)
    u2a = audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)
    assert g711.alaw_to_ulaw(ALL_CODES) == a2u
    assert g711.ulaw_to_alaw(ALL_CODES) == u2a


def test_decode_tables_are_odd_symmetric() -> None:
    # G.711 is sign-magnitude: flipping the sign bit negates the reconstruction level.
    a = g711.alaw_decode(ALL_CODES).astype(np.int32)
    u = g711.ulaw_decode(ALL_CODES).astype(np.int32)
    codes = np.arange(256)
    assert np.array_equal(a[codes ^ 0x80], -a)
    assert np.array_equal(u[codes ^ 0x80], -u)


def test_decode_levels_are_monotonic_per_sign() -> None:
    # Larger magnitude codes reconstruct larger magnitudes (segments then steps).
    # Positive codes by increasing magnitude m: A-law sends (0x80 | m) ^ 0x55,
    # µ-law sends ~m (the sign bit is 0 for positive before inversion).
    alaw_positive = bytes((0x80 | m) ^ 0x55 for m in range(128))
    ulaw_positive = bytes(0xFF ^ m for m in range(128))
    for decode, codes in ((g711.alaw_decode, alaw_positive), (g711.ulaw_decode, ulaw_positive)):
        levels = decode(codes).astype(np.int32)
        assert levels[0] >= 0
        assert np.all(np.diff(levels) > 0), decode.__name__


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.alaw_encode, g711.alaw_decode), (g711.ulaw_encode, g711.ulaw_decode)],
)
def test_round_trip_error_is_within_half_a_step(
    encode: Callable[[Samples], bytes], decode: Callable[[bytes], Samples]
) -> None:
    out = decode(encode(ALL_INT16)).astype(np.int32)
    err = np.abs(out - ALL_INT16.astype(np.int32))
    # Logarithmic quantiser: about 1/32 relative error, a small absolute floor near zero,
    # and clipping above the largest level (32256 A-law, 32124 µ-law).
    clipped = np.abs(ALL_INT16.astype(np.int32)) > 32000
    assert np.all(err[~clipped] <= np.maximum(16, np.abs(ALL_INT16[~clipped]) // 16))
    # Re-encoding a reconstruction level gives back the same code (idempotent).
    assert encode(out.astype(np.int16)) == encode(ALL_INT16)


def test_round_trip_sine_snr() -> None:
    t = np.arange(8000) / 8000
    x = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    for law in ("a", "u"):
        codec = G711Codec(law)
        y = codec.decode(codec.encode(x)).astype(np.float64)
        snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x) ** 2))
        assert snr > 35, (law, snr)  # G.711 gives about 38 dB for a loud sine


def test_codec_shapes_and_flags() -> None:
    codec = G711Codec("u")
    assert (codec.name, codec.sample_rate, codec.channels, codec.stateful) == (
        "g711u",
        8000,
        1,
        False,
    )
    x = np.array([0, 1000, -1000], dtype=np.int16)
    data = codec.encode(x)
    assert len(data) == 3
    assert codec.encode(x.reshape(-1, 1)) == data
    y = codec.decode(data)
    assert y.dtype == np.int16 and y.shape == (3,)
    assert codec.flush() == b""
    assert codec.flush_decoded().shape == (0,)


def test_codec_non_contiguous_input() -> None:
    codec = G711Codec("a")
    x = np.arange(-500, 500, dtype=np.int16)
    assert codec.encode(x[::2]) == g711.alaw_encode(x[::2].copy())


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (8000, 2), (24000, 1)])
def test_codec_rejects_rate_and_channels(rate: int, channels: int) -> None:
    with pytest.raises(UnsupportedCodec, match="8000 Hz mono"):
        G711Codec("a", rate, channels)


def test_codec_rejects_bad_input() -> None:
    codec = G711Codec("a")
    with pytest.raises(CodecError):
        codec.encode(np.zeros(4, dtype=np.float32))
    with pytest.raises(CodecError):
        codec.encode(np.zeros((4, 2), dtype=np.int16))
    with pytest.raises(CodecError):
        g711.alaw_encode(np.zeros(4, dtype=np.int32))
    with pytest.raises(UnsupportedCodec):
        G711Codec("x")
