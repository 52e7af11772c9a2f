"""Linear PCM at 8/16/24 bits: byte layout, audioop parity, splits at any byte."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.codecs.pcm import PcmCodec, decode_pcm, encode_pcm
from voicegw.errors import CodecError, UnsupportedCodec

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def i16(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int16)


# -- byte layout, hand-computed -------------------------------------------------------------


def test_s16le_layout() -> None:
    data = encode_pcm(i16(0, 1, -1, 32767, -32768), 16)
    assert data == bytes.fromhex("00000100ffffff7f0080")


def test_s16le_stereo_is_interleaved() -> None:
    stereo = np.array([[1, 2], [3, 4]], dtype=np.int16)
    assert encode_pcm(stereo, 16) == bytes.fromhex("0100020003000400")
    assert decode_pcm(bytes.fromhex("0100020003000400"), 16, 2).tolist() == [[1, 2], [3, 4]]


def test_s24le_layout() -> None:
    # int16 in the top 16 bits of a 3-byte little-endian word: low byte is zero.
    assert encode_pcm(i16(1, -1, 32767, -32768), 24) == bytes.fromhex("00010000ffff00ff7f000080")


def test_s24le_decode_keeps_top_16_bits() -> None:
    words = bytes.fromhex("ffffffff7f00000080ffff7f000100ff0000")
    # -1 >> 8 = -1 (arithmetic); 0x007fff >> 8 = 0x7f; 0x800000 -> -32768;
    # 0x7fffff -> 32767; 0x000100 -> 1; 0x0000ff -> 0 (low byte dropped).
    assert decode_pcm(words, 24).tolist() == [-1, 0x7F, -32768, 32767, 1, 0]


def test_u8_offset_binary() -> None:
    assert encode_pcm(i16(0, 32767, -32768, -1, 255, 256), 8) == bytes(
        [0x80, 0xFF, 0x00, 0x7F, 0x80, 0x81]
    )
    assert decode_pcm(bytes([0x80, 0x00, 0xFF, 0x7F]), 8).tolist() == [0, -32768, 32512, -256]


# -- parity with the stdlib reference ------------------------------------------------------


def test_exhaustive_widths_match_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    raw = ALL_INT16.tobytes()
    assert encode_pcm(ALL_INT16, 16) == raw
    as24 = audioop.lin2lin(raw, 2, 3)
    assert encode_pcm(ALL_INT16, 24) == as24
    as8 = audioop.bias(audioop.lin2lin(raw, 2, 1), 1, 128)  # signed 8-bit -> WAVE unsigned
    assert encode_pcm(ALL_INT16, 8) == as8
    assert decode_pcm(as24, 24).tobytes() == audioop.lin2lin(as24, 3, 2)
    signed8 = audioop.bias(as8, 1, -128)
    assert decode_pcm(as8, 8).tobytes() == audioop.lin2lin(signed8, 1, 2)


def test_decode_arbitrary_24bit_matches_audioop() -> None:
    audioop = pytest.importorskip("audioop")
    data = np.random.default_rng(7).integers(0, 256, size=3 * 5000, dtype=np.uint8).tobytes()
    assert decode_pcm(data, 24).tobytes() == audioop.lin2lin(data, 3, 2)


@pytest.mark.parametrize("bits", [16, 24])
def test_round_trip_is_lossless(bits: int) -> None:
    assert np.array_equal(decode_pcm(encode_pcm(ALL_INT16, bits), bits), ALL_INT16)


def test_8bit_round_trip_truncates_low_byte() -> None:
    out = decode_pcm(encode_pcm(ALL_INT16, 8), 8)
    assert np.array_equal(out, ALL_INT16 & ~0xFF)


# -- streaming decode: network deltas split anywhere ---------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    bits=st.sampled_from([8, 16, 24]),
    channels=st.sampled_from([1, 2]),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
)
def test_split_anywhere_equals_whole(bits: int, channels: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(len(cuts))
    x = rng.integers(-32768, 32768, size=(100, channels), dtype=np.int16)
    x = x[:, 0].copy() if channels == 1 else x
    codec = PcmCodec(16000, channels, bits)
    data = codec.encode(x)
    whole = decode_pcm(data, bits, channels)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    parts = [codec.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    assert codec.pending_bytes == 0
    assert np.array_equal(np.concatenate(parts), whole)


def test_partial_tail_is_held_then_dropped_by_flush() -> None:
    codec = PcmCodec(16000, 2, 24)
    data = codec.encode(np.array([[1, 2], [3, 4]], dtype=np.int16))
    assert codec.decode(data[:7]).tolist() == [[1, 2]]
    assert codec.pending_bytes == 1
    assert codec.flush_decoded().shape == (0, 2)
    assert codec.pending_bytes == 0
    # after flush the next call starts fresh at a frame boundary
    assert codec.decode(data).tolist() == [[1, 2], [3, 4]]


def test_reset_drops_partial_frame() -> None:
    codec = PcmCodec(24000)
    codec.decode(b"\x01")
    codec.reset()
    assert codec.decode(b"\x02\x00").tolist() == [2]


def test_stateful_only_when_a_frame_spans_bytes() -> None:
    assert PcmCodec(8000, 1, 8).stateful is False
    assert PcmCodec(8000, 1, 16).stateful is True
    assert PcmCodec(8000, 2, 8).stateful is True


def test_codec_shapes() -> None:
    mono = PcmCodec(16000)
    assert mono.decode(mono.encode(i16(5, 6))).shape == (2,)
    assert mono.encode(i16(5, 6).reshape(-1, 1)) == mono.encode(i16(5, 6))
    assert mono.flush() == b""
    stereo = PcmCodec(48000, 2)
    assert stereo.decode(b"").shape == (0, 2)


# -- errors ----------------------------------------------------------------------------------


def test_pure_decode_rejects_partial_frames() -> None:
    with pytest.raises(CodecError, match="whole number"):
        decode_pcm(b"\x00\x00\x00", 16)
    with pytest.raises(CodecError):
        decode_pcm(b"\x00" * 4, 24)


@pytest.mark.parametrize(
    ("rate", "channels", "bits"), [(11025, 1, 16), (16000, 3, 16), (16000, 1, 32), (16000, 1, 12)]
)
def test_rejects_unsupported_format(rate: int, channels: int, bits: int) -> None:
    with pytest.raises(UnsupportedCodec):
        PcmCodec(rate, channels, bits)


def test_rejects_wrong_arrays() -> None:
    codec = PcmCodec(16000, 2)
    with pytest.raises(CodecError, match=r"\(n, 2\)"):
        codec.encode(i16(1, 2))
    with pytest.raises(CodecError, match="int16"):
        codec.encode(np.zeros((2, 2), dtype=np.float64))
    with pytest.raises(CodecError):
        encode_pcm(np.zeros(3, dtype=np.int32), 16)
    with pytest.raises(UnsupportedCodec):
        encode_pcm(i16(1), 12)
