"""Codec registry: names, defaults, validation messages, and the shared Codec contract."""

from __future__ import annotations

import numpy as np
import pytest

from voicegw.codecs import CODECS, DEFAULT_RATES, Codec, describe, get_codec
from voicegw.errors import CodecError, UnsupportedCodec


def test_names_are_the_coze_codec_values() -> None:
    assert set(CODECS) == {"pcm", "g711a", "g711u", "mp3", "opus"}


@pytest.mark.parametrize("name", CODECS)
def test_default_instance(name: str) -> None:
    codec = get_codec(name)
    assert isinstance(codec, Codec)
    assert codec.name == name
    assert codec.sample_rate == DEFAULT_RATES[name]
    assert codec.channels == 1
    assert isinstance(codec.stateful, bool)
    assert get_codec(name) is not codec  # a fresh instance each time


@pytest.mark.parametrize(
    ("name", "channels"),
    [(n, c) for n in CODECS for c in (1, 2) if not (n.startswith("g711") and c == 2)],
)
def test_round_trip_contract(name: str, channels: int) -> None:
    rate = 8000 if name.startswith("g711") else 16000
    codec = get_codec(name, sample_rate=rate, channels=channels)
    n = rate // 50  # 20 ms: one Opus frame at the default frame size
    t = np.arange(n * 10) / rate
    mono = (np.sin(2 * np.pi * 400 * t) * 8000).astype(np.int16)
    x = mono if channels == 1 else np.stack([mono, mono], axis=1)
    chunks = [codec.encode(x[i : i + n]) for i in range(0, len(x), n)]
    tail = codec.flush()
    assert all(isinstance(c, bytes) for c in [*chunks, tail])
    if name == "opus":  # raw packets are decoded one at a time, never concatenated
        assert tail == b""
        parts = [codec.decode(p) for p in chunks]
    else:
        parts = [codec.decode(b"".join(chunks) + tail)]
    y = np.concatenate([*parts, codec.flush_decoded()])
    assert y.dtype == np.int16
    assert y.shape[1:] == x.shape[1:]
    assert len(y) >= len(x)
    codec.reset()
    empty = codec.flush_decoded()
    assert empty.shape == (0, *x.shape[1:]) and empty.dtype == np.int16


def test_stateful_flags() -> None:
    assert get_codec("g711a").stateful is False
    assert get_codec("g711u").stateful is False
    assert get_codec("pcm", bit_depth=16).stateful is True
    assert get_codec("pcm", bit_depth=8).stateful is False
    assert get_codec("mp3").stateful is True
    assert get_codec("opus").stateful is True


def test_unknown_name_lists_supported() -> None:
    with pytest.raises(UnsupportedCodec) as info:
        get_codec("aac")
    for name in CODECS:
        assert name in str(info.value)
    with pytest.raises(UnsupportedCodec):
        get_codec("PCM")  # wire values are lower case


@pytest.mark.parametrize(
    ("name", "kwargs", "must_mention"),
    [
        ("g711a", {"sample_rate": 16000}, "(8000,)"),
        ("g711u", {"channels": 2}, "channels in (1,)"),
        ("pcm", {"sample_rate": 11025}, "22050"),
        ("pcm", {"bit_depth": 32}, "(8, 16, 24)"),
        ("mp3", {"sample_rate": 96000}, "44100"),
        ("mp3", {"bit_depth": 24}, "bit_depth in (16,)"),
        ("opus", {"sample_rate": 44100}, "(8000, 12000, 16000, 24000, 48000)"),
        ("opus", {"frame_size_ms": 30}, "2.5"),
        ("opus", {"bitrate": 1}, "bitrate"),
        ("mp3", {"bitrate": 50000}, "48000"),
        ("pcm", {"bitrate": 48000}, "option 'bitrate'"),
        ("opus", {"skip_leading": 3}, "frame_size_ms, bitrate, use_cbr, application"),
    ],
)
def test_unsupported_message_lists_what_is_supported(
    name: str, kwargs: dict[str, int], must_mention: str
) -> None:
    with pytest.raises(UnsupportedCodec) as info:
        get_codec(name, **kwargs)
    assert must_mention in str(info.value)
    assert isinstance(info.value, CodecError)


def test_options_reach_the_codec() -> None:
    opus = get_codec("opus", sample_rate=16000, frame_size_ms=10, bitrate=24000, use_cbr=True)
    packets = {len(opus.encode(np.zeros(160, dtype=np.int16))) for _ in range(3)}
    assert packets == {24000 // 8 // 100}
    mp3 = get_codec("mp3", sample_rate=24000, bitrate=32000, skip_leading=1105)
    assert getattr(mp3, "bitrate", None) == 32000
    assert getattr(mp3, "skip_leading", None) == 1105


def test_describe() -> None:
    assert describe("pcm").startswith("pcm: sample_rate in (8000, 16000")
    with pytest.raises(UnsupportedCodec):
        describe("flac")
