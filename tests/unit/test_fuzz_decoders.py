"""Fuzz every decoder: arbitrary or mutated input raises only CodecError, output stays bounded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicegw.codecs import get_codec
from voicegw.codecs.mp3 import MP3_RATES
from voicegw.errors import CodecError

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Smallest possible Layer III frame: MPEG-2.5, 8 kbit/s at 12000 Hz is 48 bytes; any
#: decoded frame therefore needs at least this many input bytes (a free-format frame, which
#: FFmpeg's parser does not emit from garbage, could only be larger).
MP3_FRAME_MIN = 24
MP3_FRAME_SAMPLES = 1152


def _check_output(out: Any, channels: int) -> int:
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.int16
    if channels == 1:
        assert out.ndim == 1
    else:
        assert out.ndim == 2 and out.shape[1] == channels
    return int(out.shape[0])


def _decode(codec: Any, data: bytes, channels: int) -> int:
    try:
        out = codec.decode(data)
    except CodecError:
        return 0
    return _check_output(out, channels)


def _flush(codec: Any, channels: int) -> int:
    try:
        out = codec.flush_decoded()
    except CodecError:
        return 0
    return _check_output(out, channels)


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    parts, prev = [], 0
    for p in [*points, len(data)]:
        parts.append(data[prev:p])
        prev = p
    return parts


@st.composite
def _mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """A valid stream truncated at both ends, with a few bit flips and byte overwrites."""
    buf = bytearray(valid)
    start = draw(st.integers(0, len(buf)))
    end = draw(st.integers(start, len(buf)))
    buf = buf[start:end]
    for pos in draw(st.lists(st.integers(0, max(len(buf) - 1, 0)), max_size=8)):
        if buf:
            buf[pos] ^= 1 << draw(st.integers(0, 7))
    for pos, byte in draw(
        st.lists(st.tuples(st.integers(0, max(len(buf) - 1, 0)), st.integers(0, 255)), max_size=3)
    ):
        if buf:
            buf[pos] = byte
    return bytes(buf)


def _tone(rate: int, channels: int, ms: int) -> np.ndarray:
    n = rate * ms // 1000
    t = np.arange(n) / rate
    mono = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return mono if channels == 1 else np.repeat(mono[:, None], channels, axis=1)


# -- PCM and G.711: exact sample counts ------------------------------------------------------

PCM_SHAPES = [(d, c) for d in (8, 16, 24) for c in (1, 2)]


@pytest.mark.parametrize("depth,channels", PCM_SHAPES)
@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_pcm_decode_arbitrary_chunks(depth: int, channels: int, chunks: list[bytes]) -> None:
    codec = get_codec("pcm", 16000, channels=channels, bit_depth=depth)
    frame = depth // 8 * channels
    total_in = total_out = 0
    for chunk in chunks:
        out = codec.decode(chunk)  # PCM never rejects bytes: a partial frame is held back
        total_out += _check_output(out, channels)
        total_in += len(chunk)
        assert total_out == total_in // frame
        assert codec.pending_bytes == total_in % frame
    assert _check_output(codec.flush_decoded(), channels) == 0


@pytest.mark.parametrize("name", ["g711a", "g711u"])
@FUZZ
@given(data=st.binary(max_size=2000))
def test_g711_decode_arbitrary_bytes(name: str, data: bytes) -> None:
    codec = get_codec(name)
    assert _check_output(codec.decode(data), 1) == len(data)


# -- MP3: streaming, arbitrary splits --------------------------------------------------------

_MP3_CACHE: dict[tuple[int, int], bytes] = {}


def _mp3_stream(rate: int, channels: int) -> bytes:
    key = (rate, channels)
    if key not in _MP3_CACHE:
        enc = get_codec("mp3", rate, channels=channels, bitrate=32000 if rate < 32000 else 64000)
        _MP3_CACHE[key] = enc.encode(_tone(rate, channels, 200)) + enc.flush()
    return _MP3_CACHE[key]


def _mp3_bound(n_bytes: int) -> int:
    return MP3_FRAME_SAMPLES * 2 * (n_bytes // MP3_FRAME_MIN + 2)


def _run_mp3(rate: int, channels: int, parts: list[bytes]) -> None:
    codec = get_codec("mp3", rate, channels=channels)
    fed = out = 0
    for part in parts:
        fed += len(part)
        out += _decode(codec, part, channels)
        assert out <= _mp3_bound(fed)
    out += _flush(codec, channels)
    assert out <= _mp3_bound(fed)
    # the codec is usable again after a flush or an error
    good = _mp3_stream(rate, channels)
    n = _decode(codec, good, channels) + _flush(codec, channels)
    assert n > 0


@pytest.mark.parametrize("channels", [1, 2])
@FUZZ
@given(
    rate=st.sampled_from(MP3_RATES),
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
)
def test_mp3_decode_arbitrary_bytes(channels: int, rate: int, data: bytes, cuts: list[int]) -> None:
    _run_mp3(rate, channels, _splits(data, cuts))


@pytest.mark.parametrize("channels", [1, 2])
@FUZZ
@given(
    rate=st.sampled_from([16000, 24000, 44100, 48000]),
    seed=st.data(),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
)
def test_mp3_decode_mutated_stream(
    channels: int, rate: int, seed: st.DataObject, cuts: list[int]
) -> None:
    data = seed.draw(_mutated(_mp3_stream(rate, channels)))
    _run_mp3(rate, channels, _splits(data, cuts))


@FUZZ
@given(rate=st.sampled_from([24000, 44100]), cuts=st.lists(st.integers(0, 5000), max_size=20))
def test_mp3_valid_stream_any_split_decodes_the_same(rate: int, cuts: list[int]) -> None:
    good = _mp3_stream(rate, 1)
    whole = get_codec("mp3", rate)
    expect = np.concatenate([whole.decode(good), whole.flush_decoded()])
    codec = get_codec("mp3", rate)
    got = [codec.decode(p) for p in _splits(good, cuts)] + [codec.flush_decoded()]
    np.testing.assert_array_equal(np.concatenate(got), expect)


# -- Opus: one packet per call ---------------------------------------------------------------

OPUS_MAX_PACKET_MS = 120
_OPUS_CACHE: dict[tuple[int, int], list[bytes]] = {}


def _opus_packets(rate: int, channels: int) -> list[bytes]:
    key = (rate, channels)
    if key not in _OPUS_CACHE:
        enc = get_codec("opus", rate, channels=channels, frame_size_ms=20)
        _OPUS_CACHE[key] = enc.encode_frames(_tone(rate, channels, 200)) + enc.flush_frames()
    return _OPUS_CACHE[key]


def _run_opus(rate: int, decode_rate: int, channels: int, packets: list[bytes]) -> None:
    codec = get_codec("opus", rate, channels=channels, decode_rate=decode_rate)
    limit = decode_rate * OPUS_MAX_PACKET_MS // 1000
    for packet in packets:
        assert _decode(codec, packet, channels) <= limit
    assert _flush(codec, channels) <= limit
    good = _opus_packets(rate, channels)[0]
    assert 0 < _decode(codec, good, channels) <= limit


OPUS_SHAPES = [(r, c) for r in (8000, 16000, 24000, 48000) for c in (1, 2)]


@pytest.mark.parametrize("rate,channels", OPUS_SHAPES)
@FUZZ
@given(packets=st.lists(st.binary(max_size=1500), max_size=5))
def test_opus_decode_arbitrary_packets(rate: int, channels: int, packets: list[bytes]) -> None:
    _run_opus(rate, rate, channels, packets)


@pytest.mark.parametrize("channels", [1, 2])
@FUZZ
@given(
    rate=st.sampled_from([8000, 16000, 24000, 48000]),
    # the TOC byte picks mode, bandwidth, frame size and frame count; code 3 packets carry up
    # to 48 frames, the largest claimed durations
    toc=st.integers(0, 255),
    count=st.integers(0, 255),
    body=st.binary(max_size=400),
    data=st.data(),
)
def test_opus_decode_crafted_toc(
    channels: int, rate: int, toc: int, count: int, body: bytes, data: st.DataObject
) -> None:
    valid = data.draw(st.sampled_from(_opus_packets(rate, channels)))
    packets = [
        bytes([toc, count]) + body,
        bytes([toc | 3, count]) + body,
        data.draw(_mutated(valid)),
    ]
    _run_opus(rate, rate, channels, packets)


@pytest.mark.parametrize("decode_rate", [16000, 48000])
@FUZZ
@given(data=st.data())
def test_opus_decode_mutated_packets(decode_rate: int, data: st.DataObject) -> None:
    valid = _opus_packets(24000, 1)
    packets = [data.draw(_mutated(p)) for p in valid[: data.draw(st.integers(1, len(valid)))]]
    _run_opus(24000, decode_rate, 1, packets)
