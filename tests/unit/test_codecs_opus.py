"""Opus (RFC 6716): one raw packet per frame, TOC durations, delay, second-decoder parity."""

from __future__ import annotations

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.codecs import describe, get_codec
from voicegw.codecs.base import frame_to_samples
from voicegw.codecs.opus import (
    DECIMATOR_DELAY,
    FRAME_SIZES_MS,
    NATIVE_DECODE_RATE,
    OPUS_RATES,
    OpusCodec,
    _Decimator,
    _frame_array,
)
from voicegw.errors import CodecError, UnsupportedCodec


def toc_duration_ms(packet: bytes) -> float:
    """Packet duration from the TOC byte and frame count (RFC 6716 sections 3.1 and 3.2)."""
    config, code = packet[0] >> 3, packet[0] & 0x3
    if config < 12:  # SILK-only: 10, 20, 40, 60 ms
        frame_ms = (10.0, 20.0, 40.0, 60.0)[config % 4]
    elif config < 16:  # Hybrid: 10, 20 ms
        frame_ms = (10.0, 20.0)[config % 2]
    else:  # CELT-only: 2.5, 5, 10, 20 ms
        frame_ms = (2.5, 5.0, 10.0, 20.0)[config % 4]
    count = 1 if code == 0 else 2 if code in (1, 2) else packet[1] & 0x3F
    return frame_ms * count


def speechlike(rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    """Voiced-speech-like test signal: gliding F0 with 1/k harmonics below 0.45 * rate."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 1.5 * t)) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12) if k * 170 < 0.45 * rate)
    x = (np.asarray(x) * (0.55 + 0.45 * np.sin(2 * np.pi * 2.5 * t)) * 6000).astype(np.int16)
    if channels == 2:
        return np.stack([x, (x.astype(np.int32) * -1 // 2).astype(np.int16)], axis=1)
    return x


def decode_all(codec: OpusCodec, packets: list[bytes]) -> np.ndarray:
    return np.concatenate([*(codec.decode(p) for p in packets), codec.flush_decoded()])


def lag_and_snr(y: np.ndarray, x: np.ndarray, max_lag: int) -> tuple[int, float]:
    m = len(x) - max_lag
    xf = x[:m].astype(np.float64)
    scores = [np.dot(y[k : k + m].astype(np.float64), xf) for k in range(max_lag)]
    lag = int(np.argmax(scores))
    err = y[lag : lag + m].astype(np.float64) - xf
    return lag, float(10 * np.log10(np.sum(xf**2) / np.sum(err**2)))


# -- packets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", OPUS_RATES)
@pytest.mark.parametrize("frame_ms", FRAME_SIZES_MS)
def test_one_packet_per_frame_with_toc_duration(rate: int, frame_ms: float) -> None:
    codec = OpusCodec(rate, frame_size_ms=frame_ms)
    n = codec.frame_samples
    assert n == rate * frame_ms / 1000
    x = speechlike(rate, 0.24)
    packets = [codec.encode(x[i : i + n]) for i in range(0, len(x) - n + 1, n)]
    assert all(isinstance(p, bytes) and p for p in packets)
    assert {toc_duration_ms(p) for p in packets} == {frame_ms}


def test_wrong_frame_length_names_expected_and_got() -> None:
    codec = OpusCodec(16000, frame_size_ms=20)
    with pytest.raises(CodecError, match=r"exactly 320 samples \(20 ms at 16000 Hz\), got 319"):
        codec.encode(np.zeros(319, dtype=np.int16))
    with pytest.raises(CodecError):
        codec.encode(np.zeros((320, 2), dtype=np.int16))


@pytest.mark.parametrize("rate", [16000, 48000])
def test_cbr_packets_have_constant_size(rate: int) -> None:
    codec = OpusCodec(rate, frame_size_ms=20, bitrate=32000, use_cbr=True)
    sizes = {len(p) for p in codec.encode_frames(speechlike(rate, 0.5))}
    assert sizes == {32000 // 8 * 20 // 1000}


def test_vbr_packets_vary_with_content() -> None:
    codec = OpusCodec(24000, frame_size_ms=20, application="audio")
    loud = codec.encode_frames(speechlike(24000, 0.2))
    quiet = codec.encode_frames(np.zeros(12000, dtype=np.int16))
    assert min(len(p) for p in loud) > 40
    # once the encoder has settled on digital silence a frame costs a few bytes
    assert max(len(p) for p in quiet[-5:]) <= 10


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=12))
def test_encode_frames_buffers_remainder(sizes: list[int]) -> None:
    x = speechlike(24000, 0.5)
    reference = OpusCodec(24000, frame_size_ms=10)
    expected = [reference.encode(x[i : i + 240]) for i in range(0, len(x) - 239, 240)]
    codec = OpusCodec(24000, frame_size_ms=10)
    got: list[bytes] = []
    pos = 0
    for size in sizes:
        got += codec.encode_frames(x[pos : pos + size])
        pos += size
    got += codec.encode_frames(x[pos:])
    assert got == expected
    held = len(x) % 240
    assert (codec.flush() != b"") == (held > 0)
    assert codec.flush() == b""


def test_flush_frames_releases_the_lookahead() -> None:
    rate = 16000
    x = speechlike(rate, 0.31)  # not a whole number of 20 ms frames
    codec = OpusCodec(rate, frame_size_ms=20, application="audio", bitrate=64000)
    packets = codec.encode_frames(x) + codec.flush_frames()
    y = decode_all(OpusCodec(rate), packets)
    delay = codec.lookahead + DECIMATOR_DELAY
    assert len(y) >= len(x) + delay
    tail = y[delay + len(x) - 160 : delay + len(x)].astype(np.float64)
    assert np.sqrt(np.mean((tail - x[-160:]) ** 2)) < 0.2 * np.sqrt(np.mean(x[-160:] ** 2.0))
    # the encoder restarts: a second stream encodes identically
    assert codec.encode_frames(x) + codec.flush_frames() == packets


# -- decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", OPUS_RATES)
@pytest.mark.parametrize("application", ["audio", "voip", "lowdelay"])
def test_round_trip_lag_and_quality(rate: int, application: str) -> None:
    codec = OpusCodec(rate, frame_size_ms=20, bitrate=64000, application=application)
    x = speechlike(rate, 1.0)
    packets = codec.encode_frames(x)
    decoder = OpusCodec(rate)
    y = decode_all(decoder, packets)
    assert len(y) == len(packets) * codec.frame_samples + decoder.decoder_delay
    lag, snr = lag_and_snr(y, x, rate // 50)
    # RFC 6716 raw packets have no pre-skip: the lag is the encoder lookahead plus the
    # 48 kHz -> rate decimator delay. SILK (used by "voip") is a linear-predictive coder
    # that does not preserve phase exactly, so its peak may sit a few samples off.
    expected = codec.lookahead + decoder.decoder_delay
    slack = rate // 4000 + 1 if application == "voip" else 0
    assert abs(lag - expected) <= slack, (lag, expected)
    if application == "voip":
        # SILK matches the spectrum more than the waveform: check correlation, not SNR.
        m = len(x) - rate // 50
        corr = np.corrcoef(y[lag : lag + m].astype(np.float64), x[:m])[0, 1]
        assert corr > 0.8, corr
    else:
        assert snr > 25, snr


def test_each_packet_decodes_to_its_duration() -> None:
    for rate in (8000, 24000):
        for frame_ms in (2.5, 10.0, 60.0):
            enc = OpusCodec(rate, frame_size_ms=frame_ms)
            dec = OpusCodec(rate)
            x = speechlike(rate, 0.18)
            for p in enc.encode_frames(x):
                assert dec.decode(p).shape == (enc.frame_samples,)


@pytest.mark.parametrize("decode_rate", OPUS_RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_each_packet_decodes_to_its_duration_at_decode_rate(
    decode_rate: int, channels: int
) -> None:
    enc = OpusCodec(24000, channels, frame_size_ms=20)
    dec = OpusCodec(24000, channels, decode_rate=decode_rate)
    assert dec.decode_rate == decode_rate
    n = decode_rate // 50
    shape = (n,) if channels == 1 else (n, channels)
    for frame_ms in (2.5, 10.0, 60.0, 20.0):
        other = OpusCodec(24000, channels, frame_size_ms=frame_ms)
        for p in other.encode_frames(speechlike(24000, 0.12, channels)):
            y = dec.decode(p)
            assert y.dtype == np.int16
            assert y.shape[0] == round(decode_rate * frame_ms / 1000)
    for p in enc.encode_frames(speechlike(24000, 0.1, channels)):
        assert dec.decode(p).shape == shape
    assert dec.flush_decoded().shape[0] == dec.decoder_delay


def test_decode_rate_48000_returns_libopus_output_undecimated() -> None:
    enc = OpusCodec(24000, frame_size_ms=60)
    packets = enc.encode_frames(speechlike(24000, 1.0))
    native = get_codec("opus", 24000, decode_rate=NATIVE_DECODE_RATE)
    assert isinstance(native, OpusCodec)
    assert (native.sample_rate, native.decode_rate, native.decoder_delay) == (24000, 48000, 0)
    ys = [native.decode(p) for p in packets]
    assert all(y.shape == (2 * enc.frame_samples,) for y in ys)
    assert native.flush_decoded().shape == (0,)
    # the same samples a 48 kHz codec decodes, and the same as libopus's s16 output
    assert np.array_equal(np.concatenate(ys), decode_all(OpusCodec(48000), packets))
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate = 48000
    ctx.layout = "mono"
    bare = [frame_to_samples(f) for p in packets for f in ctx.decode(av.Packet(p))]
    assert np.array_equal(np.concatenate(ys), np.concatenate(bare))
    # and, filtered and decimated by the 24 kHz decoder, the same audio at half the rate
    y24 = decode_all(OpusCodec(24000), packets).astype(np.float64)
    y48 = np.concatenate(ys).astype(np.float64)
    lag, snr = lag_and_snr(y24, y48[::2], 100)
    assert lag == DECIMATOR_DELAY and snr > 20, (lag, snr)


def test_decode_rate_is_independent_of_the_encoder_rate() -> None:
    packets = OpusCodec(48000, frame_size_ms=20, application="audio").encode_frames(
        speechlike(48000, 0.5)
    )
    a = decode_all(OpusCodec(48000, decode_rate=16000), packets)
    b = decode_all(OpusCodec(16000), packets)
    assert np.array_equal(a, b)
    assert OpusCodec(16000).decode_rate == 16000


def test_decode_rate_is_validated() -> None:
    with pytest.raises(UnsupportedCodec, match="decode_rate"):
        OpusCodec(24000, decode_rate=44100)
    with pytest.raises(UnsupportedCodec, match="decode_rate"):
        get_codec("opus", 24000, decode_rate=22050)
    assert "decode_rate" in describe("opus")


def reference_decimate(x: np.ndarray, factor: int) -> np.ndarray:
    """Direct float64 form of the decimator: Kaiser-windowed sinc, zero history, zero flush."""
    taps = 2 * DECIMATOR_DELAY * factor + 1
    n = np.arange(taps) - DECIMATOR_DELAY * factor
    cutoff = 0.95 * 0.5 / factor
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 6.76)
    h = h / h.sum()
    pad = np.zeros((taps - 1, x.shape[1]))
    tail = np.zeros((DECIMATOR_DELAY * factor, x.shape[1]))
    buf = np.concatenate((pad, x.astype(np.float64), tail))
    count = (buf.shape[0] - taps) // factor + 1
    y = np.stack([h @ buf[k * factor : k * factor + taps] for k in range(count)])
    return np.clip(np.rint(y * 32768), -32768, 32767)


@pytest.mark.parametrize("factor", [2, 3, 4, 6])
@pytest.mark.parametrize("channels", [1, 2])
def test_decimator_matches_direct_fir(factor: int, channels: int) -> None:
    rng = np.random.default_rng(factor * 10 + channels)
    x = (rng.standard_normal((6000, channels)) * 0.3).astype(np.float32)
    x[100:140] = 1.5  # overshoot beyond full scale must saturate
    expected = reference_decimate(x, factor)
    dec = _Decimator(factor, channels)
    # uneven chunks, including ones too short to produce any output
    sizes = [1, 7, 120, 2880, 333, 5, 960, 17, 600]
    parts, pos, i = [], 0, 0
    while pos < len(x):
        size = sizes[i % len(sizes)]
        parts.append(dec.process(x[pos : pos + size]))
        pos += size
        i += 1
    parts.append(dec.flush())
    got = np.concatenate(parts).astype(np.float64)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1
    assert got.max() == 32767
    # after flush the decimator starts clean: int16 input is the same signal in other units
    x16 = np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)
    as_int = np.concatenate([dec.process(x16), dec.flush()])
    as_float = np.concatenate([dec.process(x16 / np.float32(32768)), dec.flush()])
    assert np.array_equal(as_int, as_float)


def test_frame_array_reads_packed_and_planar_frames() -> None:
    packets = OpusCodec(48000, 2, frame_size_ms=20).encode_frames(speechlike(48000, 0.1, 2))
    for name, fmt in (("libopus", None), ("libopus", "flt"), ("opus", None)):
        ctx = av.CodecContext.create(name, "r")
        ctx.sample_rate = 48000
        ctx.layout = "stereo"
        if fmt:
            ctx.options = {"request_sample_fmt": fmt}
        for frame in (f for p in packets for f in ctx.decode(av.Packet(p))):
            arr = frame.to_ndarray()
            want = arr.T if frame.format.is_planar else arr.reshape(-1, 2)
            got = _frame_array(frame, 2)
            assert got.shape == (frame.samples, 2)
            assert np.array_equal(got, want), frame.format.name


def test_lower_rate_decoder_passes_band_and_rejects_aliases() -> None:
    # A 48 kHz stream decoded at 16 kHz: 2 kHz must pass, 12 kHz must not fold to 4 kHz.
    t = np.arange(48000) / 48000
    levels = {}
    for freq in (2000, 12000):
        x = (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)
        enc = OpusCodec(48000, frame_size_ms=20, bitrate=128000, application="audio")
        y = decode_all(OpusCodec(16000), enc.encode_frames(x))[4000:12000].astype(np.float64)
        with np.errstate(divide="ignore"):  # all-zero output is -inf dB
            levels[freq] = 20 * np.log10(np.sqrt(np.mean(y**2)) / (10000 / np.sqrt(2)))
    assert abs(levels[2000]) < 1.0, levels
    assert levels[12000] < -50, levels


def test_stereo_keeps_channels_apart() -> None:
    x = speechlike(48000, 0.5, channels=2)
    codec = OpusCodec(48000, 2, frame_size_ms=20, bitrate=128000, application="audio")
    y = decode_all(OpusCodec(48000, 2), codec.encode_frames(x))
    assert y.shape[1] == 2
    lag = codec.lookahead
    m = len(x) - lag
    left = np.corrcoef(y[lag : lag + m, 0], x[:m, 0])[0, 1]
    right = np.corrcoef(y[lag : lag + m, 1], x[:m, 1])[0, 1]
    assert left > 0.9 and right > 0.9  # the right channel is the inverted left: sign kept


@pytest.mark.parametrize(("bitrate", "mode"), [(64000, "celt"), (16000, "silk")])
def test_matches_ffmpeg_native_decoder(bitrate: int, mode: str) -> None:
    codec = OpusCodec(48000, frame_size_ms=20, bitrate=bitrate, application="voip")
    packets = codec.encode_frames(speechlike(48000, 1.0))
    ours = decode_all(OpusCodec(48000), packets).astype(np.float64)
    native = av.CodecContext.create("opus", "r")
    native.sample_rate = 48000
    native.layout = "mono"
    theirs = np.concatenate(
        [frame_to_samples(f) for p in packets for f in native.decode(av.Packet(p))]
    ).astype(np.float64)
    if mode == "celt":
        # CELT decoding is specified sample by sample; the two decoders agree to rounding.
        assert len(ours) == len(theirs)
        assert np.max(np.abs(ours - theirs)) <= 2
    else:
        # FFmpeg resamples SILK output to 48 kHz with its own filter: a small shift.
        m = len(theirs) - 2000
        shifts = range(-20, 21)
        scores = [np.dot(ours[1000 + s : 1000 + s + m], theirs[1000 : 1000 + m]) for s in shifts]
        s = shifts[int(np.argmax(scores))]
        err = ours[1000 + s : 1000 + s + m] - theirs[1000 : 1000 + m]
        assert np.sum(theirs[1000 : 1000 + m] ** 2) / np.sum(err**2) > 10**2.5  # > 25 dB


def test_corrupt_packet_raises_codec_error() -> None:
    with pytest.raises(CodecError):
        OpusCodec(24000).decode(b"\xff\xff\xff")


def test_empty_packet_and_flush_without_data() -> None:
    codec = OpusCodec(16000)
    assert codec.decode(b"").shape == (0,)
    assert codec.flush_decoded().shape == (0,)
    assert codec.flush() == b""
    assert codec.flush_frames() == []
    assert OpusCodec(16000, 2).decode(b"").shape == (0, 2)


def test_reset_restarts_encoder_and_decoder() -> None:
    x = speechlike(24000, 0.2)
    codec = OpusCodec(24000, frame_size_ms=20)
    first = codec.encode_frames(x)
    codec.encode_frames(x[:100])
    codec.reset()
    assert codec.encode_frames(x) == first
    dec = OpusCodec(24000)
    out1 = decode_all(dec, first)
    dec.decode(first[0])
    dec.reset()
    assert np.array_equal(decode_all(dec, first), out1)


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"sample_rate": 44100},
        {"sample_rate": 22050},
        {"channels": 3},
        {"frame_size_ms": 30},
        {"bitrate": 1000},
        {"application": "music"},
    ],
)
def test_rejects_unsupported(kwargs: dict[str, object]) -> None:
    with pytest.raises(UnsupportedCodec):
        OpusCodec(**kwargs)  # type: ignore[arg-type]
