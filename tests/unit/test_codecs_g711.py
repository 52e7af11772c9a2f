"""ITU-T G.711 A-law / µ-law: golden vectors, exhaustive audioop parity, round trips.

The lookup-table implementation is checked against ``audioop`` through the ``*_lut``
functions, so ``audioop`` is never compared with itself; the public functions (which call
``audioop`` when it is importable) are then checked against the lookup tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
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


@pytest.mark.parametrize("encode", [g711.alaw_encode, g711.alaw_encode_lut])
@pytest.mark.parametrize(("sample", "code"), ALAW_ENCODE_GOLDEN)
def test_alaw_encode_golden(encode: Callable[[Samples], bytes], sample: int, code: int) -> None:
    assert encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize("decode", [g711.alaw_decode, g711.alaw_decode_lut])
@pytest.mark.parametrize(("code", "sample"), ALAW_DECODE_GOLDEN)
def test_alaw_decode_golden(decode: Callable[[bytes], Samples], code: int, sample: int) -> None:
    assert decode(bytes([code])).tolist() == [sample]


@pytest.mark.parametrize("encode", [g711.ulaw_encode, g711.ulaw_encode_lut])
@pytest.mark.parametrize(("sample", "code"), ULAW_ENCODE_GOLDEN)
def test_ulaw_encode_golden(encode: Callable[[Samples], bytes], sample: int, code: int) -> None:
    assert encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize("decode", [g711.ulaw_decode, g711.ulaw_decode_lut])
@pytest.mark.parametrize(("code", "sample"), ULAW_DECODE_GOLDEN)
def test_ulaw_decode_golden(decode: Callable[[bytes], Samples], code: int, sample: int) -> None:
    assert decode(bytes([code])).tolist() == [sample]


def test_lut_encode_exhaustive_matches_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    raw = ALL_INT16.tobytes()
    assert g711.alaw_encode_lut(ALL_INT16) == audioop.lin2alaw(raw, 2)
    assert g711.ulaw_encode_lut(ALL_INT16) == audioop.lin2ulaw(raw, 2)
    # one sample per call too: the table entry for each input on its own
    for x in ALL_INT16[::257]:
        one = np.array([x], dtype=np.int16)
        assert g711.alaw_encode_lut(one) == audioop.lin2alaw(one.tobytes(), 2)


def test_lut_decode_all_codes_matches_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    alaw = g711.alaw_decode_lut(ALL_CODES)
    ulaw = g711.ulaw_decode_lut(ALL_CODES)
    assert alaw.astype("<i2").tobytes() == audioop.alaw2lin(ALL_CODES, 2)
    assert ulaw.astype("<i2").tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


ENCODERS = [(g711.alaw_encode, g711.alaw_encode_lut), (g711.ulaw_encode, g711.ulaw_encode_lut)]
DECODERS = [(g711.alaw_decode, g711.alaw_decode_lut), (g711.ulaw_decode, g711.ulaw_decode_lut)]


@pytest.mark.parametrize(("encode", "lut"), ENCODERS)
def test_public_encode_equals_lut_on_all_inputs(
    encode: Callable[[Samples], bytes], lut: Callable[[Samples], bytes]
) -> None:
    expected = lut(ALL_INT16)
    assert len(expected) == 65536
    assert encode(ALL_INT16) == expected  # one bulk call: the table path
    # every input again in calls on each side of the size crossover (the audioop path when
    # audioop is importable), and as a 2-D array
    crossover = g711.ENCODE_CROSSOVER
    for size in (1, 160, crossover - 1, crossover):
        parts = [encode(ALL_INT16[i : i + size]) for i in range(0, 65536, size)]
        assert b"".join(parts) == expected, size
    assert encode(ALL_INT16[:320].reshape(16, 20)) == expected[:320]


@pytest.mark.parametrize(("decode", "lut"), DECODERS)
def test_public_decode_equals_lut_on_all_codes(
    decode: Callable[[bytes], Samples], lut: Callable[[bytes], Samples]
) -> None:
    expected = lut(ALL_CODES)
    got = decode(ALL_CODES)
    assert got.dtype == np.int16 and got.shape == (256,)
    assert np.array_equal(got, expected)
    bulk = ALL_CODES * 400
    assert np.array_equal(decode(bulk), lut(bulk))
    for data in (ALL_CODES[:160], bytearray(ALL_CODES), memoryview(ALL_CODES), b""):
        assert np.array_equal(decode(data), lut(data))


@pytest.mark.parametrize(("encode", "lut"), ENCODERS)
def test_public_encode_of_non_contiguous_input(
    encode: Callable[[Samples], bytes], lut: Callable[[Samples], bytes]
) -> None:
    x = ALL_INT16[::7]
    for view in (x[:100], x[:5000], ALL_INT16[:600].reshape(20, 30)[:, ::3]):
        assert not view.flags.c_contiguous
        assert encode(view) == lut(view) == lut(view.copy())


@pytest.mark.parametrize("decode", [g711.alaw_decode, g711.ulaw_decode, *(d for _, d in DECODERS)])
def test_decoded_arrays_are_new_and_writable(decode: Callable[[bytes], Samples]) -> None:
    data = bytes(range(160))
    first, second = decode(data), decode(data)
    assert first.flags.writeable
    first[:] = 0
    assert np.any(second != 0)
    assert np.array_equal(decode(data), second)


def test_audioop_is_used_when_importable() -> None:
    pytest.importorskip("audioop")
    assert g711.HAVE_AUDIOOP


def _run_isolated(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_audioop_the_tables_are_used_silently() -> None:
    # ``sys.modules[name] = None`` makes ``import name`` raise ImportError, as on Python 3.13
    # without audioop-lts; "-W error" turns any warning into a failure.
    result = _run_isolated(
        "import json, sys\n"
        "sys.modules['audioop'] = None\n"
        "import numpy as np\n"
        "from voicegw.codecs import g711, get_codec\n"
        "x = np.arange(-32768, 32768, dtype=np.int16)\n"
        "codes = bytes(range(256))\n"
        "ok = all([\n"
        "    g711.alaw_encode(x[:160]) == g711.alaw_encode_lut(x[:160]),\n"
        "    g711.ulaw_encode(x) == g711.ulaw_encode_lut(x),\n"
        "    np.array_equal(g711.alaw_decode(codes), g711.alaw_decode_lut(codes)),\n"
        "    np.array_equal(g711.ulaw_decode(codes), g711.ulaw_decode_lut(codes)),\n"
        "    get_codec('g711a').encode(x[:160]) == g711.alaw_encode_lut(x[:160]),\n"
        "    np.array_equal(get_codec('g711u').decode(codes), g711.ulaw_decode_lut(codes)),\n"
        "    get_codec('g711u').decode(codes).flags.writeable,\n"
        "])\n"
        "print(json.dumps({'have': g711.HAVE_AUDIOOP, 'ok': ok}))\n"
    )
    assert result == {"have": False, "ok": True}


def test_import_with_audioop_emits_no_warning() -> None:
    pytest.importorskip("audioop")
    result = _run_isolated(
        "import json\n"
        "from voicegw.codecs import g711\n"
        "print(json.dumps({'have': g711.HAVE_AUDIOOP}))\n"
    )
    assert result == {"have": True}


def test_transcode_matches_audioop_through_linear() -> None:
    audioop = pytest.importorskip("audioop")
    a2u = audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)
    u2a = audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)
    assert g711.alaw_to_ulaw(ALL_CODES) == a2u
    assert g711.ulaw_to_alaw(ALL_CODES) == u2a


def test_decode_tables_are_odd_symmetric() -> None:
    # G.711 is sign-magnitude: flipping the sign bit negates the reconstruction level.
    a = g711.alaw_decode_lut(ALL_CODES).astype(np.int32)
    u = g711.ulaw_decode_lut(ALL_CODES).astype(np.int32)
    codes = np.arange(256)
    assert np.array_equal(a[codes ^ 0x80], -a)
    assert np.array_equal(u[codes ^ 0x80], -u)


def test_decode_levels_are_monotonic_per_sign() -> None:
    # Larger magnitude codes reconstruct larger magnitudes (segments then steps).
    # Positive codes by increasing magnitude m: A-law sends (0x80 | m) ^ 0x55,
    # µ-law sends ~m (the sign bit is 0 for positive before inversion).
    alaw_positive = bytes((0x80 | m) ^ 0x55 for m in range(128))
    ulaw_positive = bytes(0xFF ^ m for m in range(128))
    pairs = ((g711.alaw_decode_lut, alaw_positive), (g711.ulaw_decode_lut, ulaw_positive))
    for decode, codes in pairs:
        levels = decode(codes).astype(np.int32)
        assert levels[0] >= 0
        assert np.all(np.diff(levels) > 0), decode.__name__


@pytest.mark.parametrize(
    ("encode", "decode"),
    [
        (g711.alaw_encode, g711.alaw_decode),
        (g711.ulaw_encode, g711.ulaw_decode),
        (g711.alaw_encode_lut, g711.alaw_decode_lut),
        (g711.ulaw_encode_lut, g711.ulaw_decode_lut),
    ],
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
    assert codec.encode(x[::2]) == g711.alaw_encode_lut(x[::2])


@pytest.mark.parametrize("law", ["a", "u"])
def test_codec_equals_lut_for_frames_and_bulk(law: str) -> None:
    codec = G711Codec(law)
    encode_lut = g711.alaw_encode_lut if law == "a" else g711.ulaw_encode_lut
    decode_lut = g711.alaw_decode_lut if law == "a" else g711.ulaw_decode_lut
    for size in (160, g711.ENCODE_CROSSOVER - 1, g711.ENCODE_CROSSOVER, 8000):
        parts = [codec.encode(ALL_INT16[i : i + size]) for i in range(0, 65536, size)]
        assert b"".join(parts) == encode_lut(ALL_INT16), size
    for data in (ALL_CODES, ALL_CODES[:160], ALL_CODES * 100):
        got = codec.decode(data)
        assert got.dtype == np.int16 and got.flags.writeable
        assert np.array_equal(got, decode_lut(data))


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
