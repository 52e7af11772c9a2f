"""Codec rows of ``voicegw bench``: G.711 per frame, and bulk throughput of every codec.

* G.711 per 20 ms frame (160 samples): :class:`~voicegw.codecs.g711.G711Codec` against
  ``audioop`` (stdlib up to Python 3.12; ``audioop-lts`` after), which is the baseline.
* Bulk, over ``bulk_seconds`` of audio, as x realtime: G.711 in one call (ours, ``audioop``, and a
  plain-Python reference loop timed over a short slice and extrapolated); MP3 and Opus decoding
  fed as a stream of network deltas; MP3 encoding in 20 ms chunks; resampling 24 -> 48 kHz.
  Each is compared with the bare library call doing the same work.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final

import av
import lameenc
import numpy as np
import soxr

from .audio import Samples
from .bench_signal import Signal, frames, load_audioop
from .bench_timing import BulkProbe, Context, Probe, RowSpec, Stats, Target
from .codecs import get_codec
from .dsp import resample

__all__ = ["build_bulk", "build_g711_frame", "py_alaw", "py_ulaw"]

#: G.711 per frame may cost at most this many times ``audioop``.
FRAME_TARGET: Final = Target("<=", 3.0, "ratio", "<= 3x audioop")
#: G.711 in bulk must be at least as fast as ``audioop``.
BULK_TARGET: Final = Target(">=", 1.0, "ratio", ">= audioop")
#: Streaming MP3 and Opus decoding must run this many times faster than realtime.
DECODE_TARGET: Final = Target(">=", 500.0, "median", ">= 500x realtime")
MP3_RATE: Final = 44100
MP3_BITRATE: Final = 48000
_SEG_AEND: Final = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_SEG_UEND: Final = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _seg(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return 8


def py_alaw(sample: int) -> int:
    """A-law code of one int16 sample: the plain-Python reference (Sun ``g711.c``)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    seg = _seg(value, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    quant = (value >> 1) if seg < 2 else (value >> seg)
    return ((seg << 4) | (quant & 0x0F)) ^ mask


def py_ulaw(sample: int) -> int:
    """µ-law code of one int16 sample: the plain-Python reference (Sun ``g711.c``)."""
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 0x21
    seg = _seg(value, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def _py_alaw_decode(code: int) -> int:
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108 if seg == 1 else (t + 0x108) << (seg - 1))
    return t if code & 0x80 else -t


def _py_ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return (0x84 - t) if code & 0x80 else (t - 0x84)


def _py_encode(fn: Callable[[int], int]) -> Callable[[list[int]], bytes]:
    return lambda xs: bytes([fn(x) for x in xs])


def _py_decode(fn: Callable[[int], int]) -> Callable[[bytes], list[int]]:
    return lambda data: [fn(c) for c in data]


def _width2(fn: Callable[[bytes, int], object]) -> Callable[[bytes], object]:
    """``fn(data, 2)``: an ``audioop`` function applied to 16-bit samples."""
    return lambda data: fn(data, 2)


def build_g711_frame(
    signal: Signal, ctx: Context
) -> tuple[list[Callable[[], None]], list[RowSpec]]:
    """G.711 encode and decode of one 20 ms frame: ours against ``audioop``."""
    audioop = load_audioop()
    pcm = frames(signal.at(8000), 160)
    probes: list[Probe] = []
    rows: list[RowSpec] = []
    for law in ("a", "u"):
        codec = get_codec(f"g711{law}")
        coded = [codec.encode(x) for x in pcm]
        for op in ("encode", "decode"):
            ours = Probe(
                f"g711{law} {op}",
                codec.encode if op == "encode" else codec.decode,
                pcm if op == "encode" else coded,
            )
            probes.append(ours)
            base: dict[str, Callable[[], Stats]] = {}
            target = None
            if audioop is not None:
                fn = getattr(audioop, f"lin2{law}law" if op == "encode" else f"{law}law2lin")
                items: list[Any] = [x.tobytes() for x in pcm] if op == "encode" else coded
                ref = Probe(f"audioop g711{law} {op}", _width2(fn), items)
                probes.append(ref)
                base["audioop"] = ctx.cost(ref)
                target = FRAME_TARGET
            rows.append(
                RowSpec(
                    section="g711-frame",
                    key=f"g711-frame.{law}law-{op}",
                    name=f"g711{law} {op}, 160 samples",
                    unit="us/frame",
                    measure=ctx.cost(ours),
                    baseline_name="audioop" if audioop is not None else "none (no audioop)",
                    baseline=base,
                    target=target,
                    note=f"G711Codec.{op} per 20 ms frame",
                )
            )
    return [ctx.per_call(p) for p in probes], rows


def _stream_chunks(data: bytes, seed: int) -> list[bytes]:
    sizes = np.random.default_rng(seed).integers(1, 3001, size=len(data) // 1000 + 10)
    out: list[bytes] = []
    pos = 0
    for size in sizes.tolist():
        if pos >= len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        out.append(data[pos:])
    return out


class _Bulk:
    """Collects bulk probes and turns pairs of them into rows."""

    def __init__(self, ctx: Context, seconds: float) -> None:
        self.ctx = ctx
        self.seconds = seconds
        self.probes: list[BulkProbe] = []
        self.rows: list[RowSpec] = []

    def probe(self, name: str, op: Callable[[], object], scale: float = 1.0) -> BulkProbe:
        probe = BulkProbe(name, op, scale)
        self.probes.append(probe)
        return probe

    def row(
        self,
        key: str,
        name: str,
        ours: BulkProbe,
        base_name: str,
        base: BulkProbe | None,
        target: Target | None,
        note: str,
    ) -> None:
        baseline = {} if base is None else {base_name: self.ctx.realtime(base, self.seconds)}
        self.rows.append(
            RowSpec(
                section="bulk",
                key=f"bulk.{key}",
                name=name,
                unit="x realtime",
                measure=self.ctx.realtime(ours, self.seconds),
                baseline_name=base_name if base is not None else f"none ({base_name})",
                baseline=baseline,
                target=target if base is not None or (target and target.on == "median") else None,
                better="higher",
                note=note,
            )
        )


def build_bulk(
    signal: Signal, ctx: Context, seed: int, slice_s: float
) -> tuple[list[Callable[[], None]], list[RowSpec]]:
    """Bulk throughput probes over ``ctx.bulk_seconds`` of audio.

    Args:
        signal: the test utterance (looped to the bulk length).
        ctx: run settings.
        seed: seeds the MP3 delta sizes.
        slice_s: length of the slice the plain-Python G.711 loop runs over, s.
    """
    audioop = load_audioop()
    secs = ctx.bulk_seconds
    bulk = _Bulk(ctx, secs)
    _g711(bulk, signal.looped(8000, secs), audioop, slice_s)
    _mp3(bulk, signal.looped(MP3_RATE, secs), seed)
    _opus(bulk, signal.looped(24000, secs))
    x24 = signal.looped(24000, secs)
    x24f = x24.astype(np.float32)
    ours = bulk.probe("resample", lambda: resample(x24, 24000, 48000))
    bare = bulk.probe("soxr.resample", lambda: soxr.resample(x24f, 24000, 48000, "HQ"))
    bulk.row(
        "resample-24k-48k",
        "resample 24k->48k, one call",
        ours,
        "soxr.resample float32",
        bare,
        None,
        "dsp.resample (int16 in/out, HQ)",
    )
    return [ctx.bulk(p) for p in bulk.probes], bulk.rows


def _g711(bulk: _Bulk, x8: Samples, audioop: Any | None, slice_s: float) -> None:
    xb = x8.tobytes()
    n_slice = max(160, min(len(x8), round(8000 * slice_s)))
    scale = len(x8) / n_slice
    head = [int(v) for v in x8[:n_slice]]
    for law, py_enc, py_dec in (("a", py_alaw, _py_alaw_decode), ("u", py_ulaw, _py_ulaw_decode)):
        codec = get_codec(f"g711{law}")
        coded = codec.encode(x8)
        exact = _py_encode(py_enc)(head) == coded[:n_slice]
        exact = (
            exact and _py_decode(py_dec)(coded[:n_slice]) == codec.decode(coded[:n_slice]).tolist()
        )
        for op in ("encode", "decode"):
            arg: Any = x8 if op == "encode" else coded
            ours = bulk.probe(f"g711{law} {op}", partial(getattr(codec, op), arg))
            ref: BulkProbe | None = None
            if audioop is not None:
                fn = getattr(audioop, f"lin2{law}law" if op == "encode" else f"{law}law2lin")
                src = xb if op == "encode" else coded
                ref = bulk.probe(f"audioop {law} {op}", partial(fn, src, 2))
            what = "audioop" if audioop is not None else "audioop not importable"
            key = f"g711{law}-{op}"
            bulk.row(
                key,
                f"g711{law} {op}, ours (G711Codec)",
                ours,
                what,
                ref,
                BULK_TARGET,
                f"G711Codec.{op} on {bulk.seconds:g} s in one call",
            )
            py_op: Callable[[], object] = (
                partial(_py_encode(py_enc), head)
                if op == "encode"
                else partial(_py_decode(py_dec), coded[:n_slice])
            )
            py = bulk.probe(f"python {law} {op}", py_op, scale)
            bulk.row(
                f"{key}-python",
                f"g711{law} {op}, plain-Python loop",
                py,
                what,
                ref,
                None,
                f"{n_slice} samples timed, x{scale:.0f} extrapolated; bit-exact with ours: {exact}",
            )


def _mp3(bulk: _Bulk, x: Samples, seed: int) -> None:
    enc = get_codec("mp3", MP3_RATE, bitrate=MP3_BITRATE)
    stream = enc.encode(x) + enc.flush()
    chunks = _stream_chunks(stream, seed)

    def ours() -> None:
        dec = get_codec("mp3", MP3_RATE)
        for chunk in chunks:
            dec.decode(chunk)
        dec.flush_decoded()

    def bare() -> None:
        ctx: Any = av.CodecContext.create("mp3", "r")
        for chunk in chunks:
            for packet in ctx.parse(chunk):
                for frame in ctx.decode(packet):
                    frame.to_ndarray()

    bulk.row(
        "mp3-decode",
        "mp3 decode, streamed deltas",
        bulk.probe("mp3 decode", ours),
        "PyAV parse+decode",
        bulk.probe("av mp3 decode", bare),
        DECODE_TARGET,
        "44.1 kHz 48 kbps, deltas of 1-3000 B; Mp3Codec.decode",
    )
    pcm = frames(x, MP3_RATE // 50)
    raw = [f.tobytes() for f in pcm]

    def ours_enc() -> None:
        codec = get_codec("mp3", MP3_RATE, bitrate=MP3_BITRATE)
        for f in pcm:
            codec.encode(f)
        codec.flush()

    def bare_enc() -> None:
        lame: Any = lameenc.Encoder()
        lame.set_bit_rate(MP3_BITRATE // 1000)
        lame.set_in_sample_rate(MP3_RATE)
        lame.set_out_sample_rate(MP3_RATE)
        lame.set_channels(1)
        lame.set_quality(2)
        for b in raw:
            lame.encode(b)
        lame.flush()

    bulk.row(
        "mp3-encode",
        "mp3 encode, 20 ms chunks",
        bulk.probe("mp3 encode", ours_enc),
        "lameenc",
        bulk.probe("lameenc", bare_enc),
        None,
        "44.1 kHz 48 kbps quality 2; Mp3Codec.encode",
    )


def _opus(bulk: _Bulk, x24: Samples) -> None:
    enc: Any = get_codec("opus", 24000, frame_size_ms=60)
    packets: list[bytes] = enc.encode_frames(x24)

    def ours() -> None:
        dec = get_codec("opus", 24000)
        for p in packets:
            dec.decode(p)
        dec.flush_decoded()

    def bare() -> None:
        ctx: Any = av.CodecContext.create("libopus", "r")
        ctx.sample_rate = 48000
        ctx.layout = "mono"
        for p in packets:
            for frame in ctx.decode(av.Packet(p)):
                frame.to_ndarray()

    bulk.row(
        "opus-decode",
        "opus decode, 60 ms packets",
        bulk.probe("opus decode", ours),
        "libopus via PyAV (48 kHz)",
        bulk.probe("av opus decode", bare),
        DECODE_TARGET,
        "24 kHz packets; OpusCodec.decode (48 kHz decode + decimation to 24 kHz)",
    )
