"""Uplink and downlink rows of ``voicegw bench``: the per-frame hot paths and their floors.

Uplink, per 20 ms device frame (48 kHz stereo int16), the gateway's own path: one
:meth:`~voicegw.chains.Uplink.convert` to API-rate mono, the :class:`~voicegw.echo.EchoGuard`
gate and :class:`~voicegw.vad.Vad` on that mono stream, :meth:`~voicegw.chains.Uplink.encode`,
and for each payload the ``input_audio_buffer.append`` frame the session writes
(:func:`~voicegw.protocol.wire.encode_append` with the session's counter-based ids).

Downlink, per ``conversation.audio.delta`` frame: :func:`~voicegw.protocol.wire.decode_server`,
``.audio``, :meth:`~voicegw.chains.Downlink.decode` to 48 kHz mono and
:meth:`~voicegw.playout.PlayoutBuffer.write`; reported per 20 ms of audio carried.

Each row's baseline is the *floor*: the sum of the bare library calls a minimal pipeline needs
on the same data (environment notes, section 5): one numpy downmix, one libsoxr stream call per
output rate (int16 in and out, as cheap as libsoxr gets), webrtcvad on a 16 kHz frame, the codec
call (``audioop`` for G.711 when importable, ``bytes`` conversion for PCM, libopus/FFmpeg through
PyAV for Opus and MP3), base64 plus orjson for the event, and a deque append for the queue.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any, Final

import av
import numpy as np
import orjson
import soxr
import webrtcvad

from .audio import Samples
from .bench_signal import Signal, frames, load_audioop
from .bench_timing import Context, Probe, RowSpec, Stats, Target
from .chains import Downlink, Uplink
from .codecs import get_codec
from .codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .playout import PlayoutBuffer
from .protocol.events import ConversationAudioDelta
from .protocol.objects import Message
from .protocol.wire import decode_server, encode
from .vad import Vad

__all__ = ["build_downlink", "build_uplink", "delta_frame"]

DEVICE_RATE: Final = 48000
FRAME: Final = 960  # 20 ms at 48 kHz
UPLINK_TARGET: Final = Target("<=", 40.0, "median", "<= 40 us/frame")
DOWNLINK_TARGET: Final = Target("<=", 20.0, "median", "<= 20 us/20ms")
#: (key, name, codec, rate) of each input format.
UPLINK_CODECS: Final = (
    ("pcm16k", "pcm 16 kHz", "pcm", 16000),
    ("pcm24k", "pcm 24 kHz", "pcm", 24000),
    ("g711a", "g711a 8 kHz", "g711a", 8000),
    ("g711u", "g711u 8 kHz", "g711u", 8000),
    ("opus16k", "opus 16 kHz 20 ms", "opus", 16000),
)
#: (key, name, codec) of each output format.
DOWNLINK_CODECS: Final = (
    ("pcm24k", "pcm 24 kHz", "pcm"),
    ("g711a", "g711a 8 kHz", "g711a"),
    ("g711u", "g711u 8 kHz", "g711u"),
    ("opus24k", "opus 24 kHz 60 ms", "opus"),
    ("mp3", "mp3 44.1 kHz", "mp3"),
)
MP3_BITRATE: Final = 48000


class _Floors:
    """Floor probes, created once per distinct (kind, input) and shared between rows."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.probes: dict[str, Probe] = {}

    def get(self, key: str, factory: Callable[..., Probe], *args: Any) -> Callable[[], Stats]:
        """The cost of the probe ``factory(*args)``, made the first time ``key`` is asked for."""
        if key not in self.probes:
            self.probes[key] = factory(*args)
        return self.ctx.cost(self.probes[key])


def _soxr_probe(
    in_rate: int, out_rate: int, items: list[Samples], units: list[float] | None = None
) -> Probe:
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
    return Probe(f"soxr {in_rate}->{out_rate}", stream.resample_chunk, items, units)


def _opus_encoder(rate: int) -> Callable[[Samples], object]:
    ctx: Any = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = 48000
    ctx.time_base = Fraction(1, rate)
    ctx.options = {"frame_duration": "20", "application": "voip", "vbr": "on"}
    ctx.open()
    pts = 0

    def op(x: Samples) -> object:
        nonlocal pts
        frame: Any = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        pts += len(x)
        return ctx.encode(frame)

    return op


_EVENT_ID: Final = "00000000-0000-4000-8000-000000000000"


def _event_dict(payload: bytes) -> bytes:
    """The bare event: base64 of the payload in an envelope serialised by orjson."""
    b64 = base64.b64encode(payload).decode()
    doc = {"event_type": "input_audio_buffer.append", "id": _EVENT_ID, "data": {"delta": b64}}
    return orjson.dumps(doc)


def _uplink_op(codec: str, rate: int) -> Callable[[Samples], None]:
    from .echo import EchoGuard
    from .protocol.outputs import _EventIds
    from .protocol.wire import encode_append

    vad = Vad(rate, 1)
    guard = EchoGuard("half_duplex")
    ids = _EventIds()
    up = Uplink(device_rate=DEVICE_RATE, device_channels=2, codec=codec, rate=rate, frame_ms=20)
    now = 0.0

    def op(frame: Samples) -> None:
        nonlocal now
        now += 0.02
        mono = up.convert(frame)
        gated = guard.gate(mono, now)
        if gated is None:
            gated = mono
        vad.process(gated, now)
        for payload in up.encode(gated):
            encode_append(ids.next(), payload)

    return op


def _downmix(f: Samples) -> Samples:
    out: Samples = np.right_shift(np.add(f[:, 0], f[:, 1], dtype=np.int32), 1).astype(np.int16)
    return out


def build_uplink(signal: Signal, ctx: Context) -> tuple[list[Callable[[], None]], list[RowSpec]]:
    """Uplink probes (one per input codec) and the floor probes they are compared with."""
    audioop = load_audioop()
    stereo = frames(signal.stereo48k(), FRAME)
    mono = [_downmix(f) for f in stereo]
    vad16 = [f.tobytes() for f in frames(signal.at(16000), 320)]
    floors = _Floors(ctx)
    downmix = floors.get("downmix", Probe, "downmix", _downmix, stereo)
    engine = webrtcvad.Vad(2)
    classify = floors.get(
        "webrtcvad", Probe, "webrtcvad", lambda b: engine.is_speech(b, 16000), vad16
    )
    probes: list[Probe] = []
    rows: list[RowSpec] = []
    for key, name, codec, rate in UPLINK_CODECS:
        probe = Probe(f"uplink {name}", _uplink_op(codec, rate), stereo)
        probes.append(probe)
        up = _fresh_uplink(codec, rate)
        payloads = [p for f in stereo for p in up.process(f)]
        at_rate = frames(signal.at(rate), rate // 50)
        parts: dict[str, Callable[[], Stats]] = {"downmix (numpy)": downmix}
        for r in sorted({rate, 16000}):
            parts[f"resample 48k->{r // 1000}k (soxr int16)"] = floors.get(
                f"rs48-{r}", _soxr_probe, DEVICE_RATE, r, mono
            )
        parts["webrtcvad 16k 20 ms"] = classify
        parts[f"codec: {_codec_floor_name(codec, audioop)}"] = floors.get(
            f"enc-{codec}-{rate}", _encode_floor, codec, rate, at_rate, audioop
        )
        parts["event: base64 + orjson"] = floors.get(
            f"event-{key}", Probe, "event", _event_dict, payloads
        )
        target = None if codec == "opus" else UPLINK_TARGET
        note = (
            "48 kHz stereo capture -> Uplink.convert + EchoGuard.gate + Vad.process (API rate) "
            "+ Uplink.encode + wire.encode_append"
        )
        rows.append(
            RowSpec(
                section="uplink",
                key=f"uplink.{key}",
                name=name,
                unit="us/frame",
                measure=ctx.cost(probe),
                baseline_name="floor: sum of building blocks",
                baseline=parts,
                target=target,
                note=note,
            )
        )
    rounds = [ctx.per_call(p) for p in [*probes, *floors.probes.values()]]
    return rounds, rows


def _fresh_uplink(codec: str, rate: int) -> Uplink:
    return Uplink(device_rate=DEVICE_RATE, device_channels=2, codec=codec, rate=rate, frame_ms=20)


def _codec_floor_name(codec: str, audioop: Any | None) -> str:
    if codec == "pcm":
        return "ndarray.tobytes"
    if codec == "opus":
        return "libopus via PyAV"
    return "audioop" if audioop is not None else "numpy LUT"


def _encode_floor(codec: str, rate: int, at_rate: list[Samples], audioop: Any | None) -> Probe:
    name = f"encode {codec} {rate}"
    if codec == "pcm":
        return Probe(name, lambda x: x.tobytes(), at_rate)
    if codec == "opus":
        return Probe(name, _opus_encoder(rate), at_rate)
    if audioop is not None:
        fn = audioop.lin2alaw if codec == "g711a" else audioop.lin2ulaw
        return Probe(name, lambda b: fn(b, 2), [x.tobytes() for x in at_rate])
    lut = alaw_encode if codec == "g711a" else ulaw_encode
    return Probe(name, lut, at_rate)


# ---------------------------------------------------------------------------- downlink


def delta_frame(payload: bytes, chat_id: str = "chat-1", seq: int = 0) -> str:
    """A ``conversation.audio.delta`` server frame carrying ``payload``, as the service sends."""
    message = Message(
        id="msg-answer",
        conversation_id="conv-1",
        bot_id="bot-1",
        chat_id=chat_id,
        section_id="conv-1",
        role="assistant",
        type="answer",
        content=base64.b64encode(payload).decode(),
        content_type="audio",
    )
    return encode(ConversationAudioDelta(id=f"evt-{seq}", message=message))


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    return out


def _downlink_payloads(
    signal: Signal, codec: str, seed: int
) -> tuple[int, list[bytes], list[float], str]:
    """(rate, payloads, units of 20 ms per payload, description) of one output format."""
    if codec == "pcm":
        data = signal.at(24000).tobytes()
        payloads = [data[i : i + 12000] for i in range(0, len(data) - 11999, 12000)]
        return 24000, payloads, [12.5] * len(payloads), "250 ms deltas of 12000 B"
    if codec in ("g711a", "g711u"):
        data = get_codec(codec).encode(signal.at(8000))
        payloads = [data[i : i + 2000] for i in range(0, len(data) - 1999, 2000)]
        return 8000, payloads, [12.5] * len(payloads), "250 ms deltas of 2000 B"
    if codec == "opus":
        enc: Any = get_codec("opus", 24000, frame_size_ms=60)
        packets: list[bytes] = enc.encode_frames(signal.at(24000))
        return 24000, packets, [3.0] * len(packets), "one 60 ms packet per delta"
    mp3 = get_codec("mp3", 44100, bitrate=MP3_BITRATE)
    data = mp3.encode(signal.at(44100)) + mp3.flush()
    sizes = np.random.default_rng(seed).integers(1, 3001, size=len(data)).tolist()
    payloads = _split(data, sizes)
    units = [len(p) * 8 / MP3_BITRATE / 0.02 for p in payloads]
    return 44100, payloads, units, "48 kbps stream cut at random byte offsets (1-3000 B)"


def _decode_floor(codec: str, audioop: Any | None) -> Callable[[bytes], object]:
    if codec == "pcm":
        return lambda b: np.frombuffer(b, dtype="<i2")
    if codec in ("g711a", "g711u"):
        if audioop is not None:
            fn = audioop.alaw2lin if codec == "g711a" else audioop.ulaw2lin
            return lambda b: fn(b, 2)
        return alaw_decode if codec == "g711a" else ulaw_decode
    ctx: Any = av.CodecContext.create("libopus" if codec == "opus" else "mp3", "r")
    if codec == "opus":
        ctx.sample_rate = 48000
        ctx.layout = "mono"
        return lambda b: [f.to_ndarray() for f in ctx.decode(av.Packet(b))]
    return lambda b: [f.to_ndarray() for p in ctx.parse(b) for f in ctx.decode(p)]


def build_downlink(
    signal: Signal, ctx: Context, seed: int
) -> tuple[list[Callable[[], None]], list[RowSpec]]:
    """Downlink probes (one per output codec) and their floor probes."""
    audioop = load_audioop()
    floors = _Floors(ctx)
    queue: deque[object] = deque()
    enqueue = floors.get("deque", partial(Probe, between=queue.clear), "deque", queue.append, [0])
    probes: list[Probe] = []
    rows: list[RowSpec] = []
    for key, name, codec in DOWNLINK_CODECS:
        rate, payloads, units, how = _downlink_payloads(signal, codec, seed)
        texts = [delta_frame(p, seq=i) for i, p in enumerate(payloads)]
        op, reset = _downlink_op(codec, rate)
        probe = Probe(f"downlink {name}", op, texts, units, between=reset)
        probes.append(probe)
        parts: dict[str, Callable[[], Stats]] = {}
        parts["event: orjson.loads + b64decode"] = floors.get(
            f"parse-{key}", Probe, "parse", _parse_floor, texts, units
        )
        parts[f"codec: {_decode_floor_name(codec, audioop)}"] = floors.get(
            f"dec-{key}", Probe, "decode", _decode_floor(codec, audioop), payloads, units
        )
        if codec != "opus":  # libopus decodes at 48 kHz itself: no resampling is needed
            decoded = _per_payload(codec, rate, payloads)
            parts[f"resample {rate / 1000:g}k->48k (soxr int16)"] = floors.get(
                f"rs-{rate}", _soxr_probe, rate, DEVICE_RATE, decoded, units
            )
        parts["queue: deque.append"] = enqueue
        target = DOWNLINK_TARGET if codec in ("pcm", "g711a", "g711u") else None
        note = f"{how}; decode_server + .audio + Downlink.decode + PlayoutBuffer.write"
        rows.append(
            RowSpec(
                section="downlink",
                key=f"downlink.{key}",
                name=name,
                unit="us/20ms",
                measure=ctx.cost(probe),
                baseline_name="floor: sum of building blocks",
                baseline=parts,
                target=target,
                note=note,
            )
        )
    rounds = [ctx.per_call(p) for p in [*probes, *floors.probes.values()]]
    return rounds, rows


def _parse_floor(text: str) -> bytes:
    return base64.b64decode(orjson.loads(text)["data"]["content"])


def _downlink_op(codec: str, rate: int) -> tuple[Callable[[str], None], Callable[[], object]]:
    """The measured operation, and the untimed reset that keeps its playout buffer small."""
    opts: dict[str, Any] = {"frame_size_ms": 60} if codec == "opus" else {}
    down = Downlink(codec=codec, rate=rate, sink_rate=DEVICE_RATE, **opts)
    playout = PlayoutBuffer(DEVICE_RATE)

    def op(text: str) -> None:
        event = decode_server(text)
        assert isinstance(event, ConversationAudioDelta)
        samples = down.decode(event.audio)
        if len(samples):
            playout.write(samples)

    return op, playout.flush


def _per_payload(codec: str, rate: int, payloads: list[bytes]) -> list[Samples]:
    """What a fresh decoder returns for each payload, in order (int16 mono at ``rate``)."""
    dec = get_codec(codec, rate)
    return [np.ascontiguousarray(dec.decode(p).reshape(-1)) for p in payloads]


def _decode_floor_name(codec: str, audioop: Any | None) -> str:
    if codec == "pcm":
        return "np.frombuffer"
    if codec in ("opus", "mp3"):
        return f"{'libopus' if codec == 'opus' else 'FFmpeg mp3'} via PyAV"
    return "audioop" if audioop is not None else "numpy LUT"
