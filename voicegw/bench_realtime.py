"""Realtime rows of ``voicegw bench``: the RTC media path, per frame and end to end.

A Realtime room carries audio as WebRTC media (Opus over RTP), not as JSON events. Rows:

* ``realtime.uplink``, per 20 ms device frame (48 kHz stereo int16): the gateway's own code,
  ``Uplink.convert`` to 48 kHz mono and ``RealtimeGateway._mic_frame`` (speech level, echo
  guard, :meth:`~voicegw.io.webrtc.AiortcTransport.send_audio` into its
  :class:`~voicegw.io.webrtc.FrameQueue`), then the outbound track's ``recv`` (pop, wrap in an
  ``av.AudioFrame``) driven without its pacing sleep. The speaker is idle, so the echo guard
  passes the frame, as while the user talks. No network, no Opus.
* ``realtime.downlink``, per agent frame as aiortc delivers it (s16 stereo 48 kHz, 960
  samples, made by aiortc's own Opus decoder from the test signal):
  :func:`~voicegw.io.webrtc.track_to_mono`, a :class:`~voicegw.dsp.StreamResampler` to a
  24 kHz speaker and :meth:`~voicegw.player.Player.write`. The asyncio hop from the
  transport's pump to its ``audio()`` iterator is left out (``realtime.e2e-down`` has it).
* ``realtime.opus``, per 20 ms: one encode and one decode with aiortc's ``OpusEncoder`` and
  ``OpusDecoder`` (PyAV's libopus, 48 kHz stereo, 96 kbps, ``voip``; the encoder first makes
  the mono track frame stereo with PyAV's resampler): a device's microphone out and agent in.
  Baseline: the bare PyAV codec calls, same settings, on ready-made stereo frames.
* ``realtime.e2e`` and ``realtime.e2e-down``, wall time over real aiortc on loopback: an
  :class:`~voicegw.io.webrtc.AiortcTransport` joins, through its own HTTP signalling, a bench
  room made of the transport's pieces as the emulator's rooms are. A 1 ms click in otherwise
  silent audio is timed from ``send_audio`` to the room's decoded frame carrying it, and from
  the room's ``FrameQueue.push`` (how the emulator sends agent audio) to the transport's
  ``audio()`` iterator. Each click goes a random 20-60 ms after the previous one was heard, at
  a random phase of the 20 ms track clock. Baseline: the data channel's round trip on the same
  connection (``send_message``, echoed by the room, out of ``messages()``), between clicks.
  Each round opens a new connection (:mod:`voicegw.bench_realtime_e2e` has the details).

Targets. One way, aiortc 1.16's receiver holds an audio frame until four later ones have
arrived (``JitterBuffer(capacity=16, prefetch=4)``: 80 ms), and a frame handed to a track waits
for its next 20 ms tick (10 ms on average); Opus, loopback RTP and the decoder thread add a
millisecond or two. ``<= 100 ms`` median is that structure plus 10 ms: a backlog in the
``FrameQueue`` (20 ms per queued frame) misses it. Per frame, both directions get the chat
uplink's budget, 40 µs per 20 ms (0.2 % of the period): each moves one 48 kHz stereo frame, as
the chat uplink does, with no codec and no JSON. ``realtime.opus`` is informative: the codec
and its wrapper are aiortc's.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import Any, Final

import av
import numpy as np

from .audio import Samples
from .bench_paths import _downmix, _Floors, _soxr_probe
from .bench_realtime_e2e import FRAME, RATE, WARMUP_CLICKS, E2e
from .bench_signal import Signal, frames
from .bench_timing import Context, Probe, RowSpec, Target
from .chains import Uplink
from .clock import SystemClock
from .config import CloudConfig, Config, TurnConfig
from .player import PLAY_PERIOD_S, Player
from .tools import DeviceState

__all__ = ["build_realtime"]

SPEAKER_RATE: Final = 24000
UPLINK_TARGET: Final = Target("<=", 40.0, "median", "<= 40 us/frame")
DOWNLINK_TARGET: Final = Target("<=", 40.0, "median", "<= 40 us/20ms")
E2E_TARGET: Final = Target("<=", 100.0, "median", "<= 100 ms (80 prefetch + 20)")


# ---------------------------------------------------------------------------- per frame


class _NullSource:
    """A device microphone that is never read (the bench feeds frames itself)."""

    rate = RATE
    channels = 2

    async def frames(self) -> AsyncIterator[Samples]:
        empty: tuple[Samples, ...] = ()
        for frame in empty:  # pragma: no cover - an empty stream
            yield frame


class _NullSink:
    rate = SPEAKER_RATE

    def write(self, samples: Samples) -> None:  # pragma: no cover - never played
        return None


def _pull(track: Any) -> Any:
    """One outbound frame from a source track's ``recv``, which must not wait."""
    coro = track.recv()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("realtime bench: the outbound track waited for its next tick")


def _uplink_op() -> Callable[[Samples], object]:
    from .io.webrtc import AiortcTransport, make_source_track
    from .realtime_gateway import RealtimeGateway

    config = Config(cloud=CloudConfig(api="realtime"), turn=TurnConfig(mode="server_vad"))
    gateway = RealtimeGateway(config, "bench", source=_NullSource(), sink=_NullSink())
    transport = AiortcTransport(RATE)
    gateway.transport = transport
    uplink = Uplink(
        device_rate=RATE, device_channels=2, codec="pcm", rate=RATE, frame_ms=PLAY_PERIOD_S * 1000
    )
    ticks = itertools.count()
    # A clock a second ahead at every call: each frame is overdue, so the track never sleeps
    # (it restarts its timeline instead), and the row times its work, not its pacing.
    track: Any = make_source_track(RATE, transport.outbound, clock=lambda: float(next(ticks)))
    _pull(track)
    mic_frame = gateway._mic_frame
    now = 0.0

    def op(frame: Samples) -> object:
        nonlocal now
        now += PLAY_PERIOD_S
        mic_frame(uplink.convert(frame), now)
        return _pull(track)

    return op


def _level(x: Samples) -> float:
    y = x.astype(np.float32)
    return float(np.dot(y, y))


def _queue_floor() -> Callable[[object], object]:
    q: deque[object] = deque()

    def op(x: object) -> object:
        q.append(x)
        return q.popleft()

    return op


def _wrap(x: Samples) -> object:
    return av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")


def _track_frames(mono: Samples) -> list[Any]:
    """``mono`` (48 kHz) as the outbound track sends it: mono s16 frames of 960 samples."""
    out = []
    for i, x in enumerate(frames(mono, FRAME)):
        f: Any = _wrap(x)
        f.sample_rate = RATE
        f.pts = i * FRAME
        f.time_base = Fraction(1, RATE)
        out.append(f)
    return out


def _aiortc_codecs() -> tuple[Any, Any, Any]:
    from aiortc.codecs.opus import OpusDecoder, OpusEncoder
    from aiortc.jitterbuffer import JitterFrame

    return OpusEncoder(), OpusDecoder(), JitterFrame


def _agent_frames(mono: Samples) -> list[Any]:
    """``mono`` through aiortc's Opus encoder and decoder: frames as the remote track yields."""
    enc, dec, jitter_frame = _aiortc_codecs()
    out: list[Any] = []
    for f in _track_frames(mono):
        payloads, ts = enc.encode(f)
        for p in payloads:
            out += dec.decode(jitter_frame(p, ts))
    if not out or out[0].format.name != "s16" or out[0].samples != FRAME:
        raise RuntimeError("realtime bench: aiortc's decoder did not yield s16 20 ms frames")
    return out


def _downlink_op() -> tuple[Callable[[Any], object], Callable[[], object]]:
    from .dsp import StreamResampler
    from .io.webrtc import track_to_mono

    down = StreamResampler(RATE, SPEAKER_RATE, channels=1)
    player = Player(_NullSink(), SystemClock(), DeviceState())

    def op(frame: Any) -> object:
        player.write(down.process(track_to_mono(frame)))
        return None

    return op, player.buffer.flush


def _opus_op(items: list[Any]) -> Callable[[Any], object]:
    enc, dec, jitter_frame = _aiortc_codecs()
    pts = 0

    def op(frame: Any) -> object:
        nonlocal pts
        frame.pts = pts  # the track numbers its frames; PyAV's resampler insists on it
        pts += FRAME
        payloads, ts = enc.encode(frame)
        for p in payloads:
            dec.decode(jitter_frame(p, ts))
        return None

    for f in items[:3]:  # fill the resampler and the encoder's look-ahead
        op(f)
    return op


def _bare_opus(
    mono: Samples,
) -> tuple[Callable[[Any], Any], list[Any], Callable[[bytes], object], list[bytes]]:
    """The bare libopus encode and decode through PyAV, configured as aiortc configures them."""
    enc: Any = av.CodecContext.create("libopus", "w")
    enc.bit_rate = 96000
    enc.format = "s16"
    enc.layout = "stereo"
    enc.options = {"application": "voip"}
    enc.sample_rate = RATE
    enc.time_base = Fraction(1, RATE)
    stereo: list[Any] = []
    for x in frames(mono, FRAME):
        f: Any = av.AudioFrame.from_ndarray(
            np.repeat(x, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        f.sample_rate = RATE
        stereo.append(f)
    pts = 0

    def encode(frame: Any) -> Any:
        nonlocal pts
        frame.pts = pts
        pts += FRAME
        return enc.encode(frame)

    packets = [bytes(p) for f in stereo for p in encode(f)]
    dec: Any = av.CodecContext.create("libopus", "r")
    dec.format = "s16"
    dec.layout = "stereo"
    dec.sample_rate = RATE

    def decode(payload: bytes) -> object:
        return dec.decode(av.Packet(payload))

    return encode, stereo, decode, packets


# ---------------------------------------------------------------------------- rows


def build_realtime(
    signal: Signal, ctx: Context, clicks: int, seed: int = 1234
) -> tuple[list[Callable[[], None]], list[RowSpec]]:
    """Realtime probes, their floors, the e2e rounds, and the rows.

    Args:
        signal: the test utterance.
        ctx: the run's settings; the e2e clicks are spread over ``ctx.repeat`` rounds.
        clicks: clicks timed in all (0 leaves out the e2e rows).
        seed: seeds the spacing of the clicks.
    """
    mono = signal.at(RATE)
    stereo = frames(signal.stereo48k(), FRAME)
    floors = _Floors(ctx)
    rows: list[RowSpec] = []
    probes: list[Probe] = []

    up = Probe("realtime uplink", _uplink_op(), stereo)
    mono_frames = [_downmix(f) for f in stereo]
    probes.append(up)
    rows.append(
        RowSpec(
            section="realtime",
            key="realtime.uplink",
            name="mic frame -> RTC track frame",
            unit="us/frame",
            measure=ctx.cost(up),
            baseline_name="floor: sum of building blocks",
            baseline={
                "downmix (numpy)": floors.get("downmix", Probe, "downmix", _downmix, stereo),
                "level: float32 dot": floors.get("level", Probe, "level", _level, mono_frames),
                "queue: deque append + popleft": floors.get(
                    "queue", Probe, "queue", _queue_floor(), mono_frames
                ),
                "AudioFrame.from_ndarray (PyAV)": floors.get(
                    "wrap", Probe, "wrap", _wrap, mono_frames
                ),
            },
            target=UPLINK_TARGET,
            note=(
                "48 kHz stereo capture -> Uplink.convert (48 kHz mono) + "
                "RealtimeGateway._mic_frame (level, EchoGuard, AiortcTransport.send_audio) + "
                "the outbound track's recv "
                "(FrameQueue.pop + av.AudioFrame), no pacing sleep"
            ),
        )
    )

    agent = _agent_frames(mono)
    op, reset = _downlink_op()
    down = Probe("realtime downlink", op, agent, between=reset)
    probes.append(down)
    arrays = [f.to_ndarray().reshape(-1, 2) for f in agent]
    agent_mono = [_downmix(a) for a in arrays]
    queue: deque[object] = deque()
    rows.append(
        RowSpec(
            section="realtime",
            key="realtime.downlink",
            name="agent RTC frame -> playout buffer",
            unit="us/20ms",
            measure=ctx.cost(down),
            baseline_name="floor: sum of building blocks",
            baseline={
                "AudioFrame.to_ndarray (PyAV)": floors.get(
                    "to_ndarray", Probe, "to_ndarray", lambda f: f.to_ndarray(), agent
                ),
                "downmix (numpy)": floors.get("downmix-in", Probe, "downmix", _downmix, arrays),
                "resample 48k->24k (soxr int16)": floors.get(
                    "rs48-24", _soxr_probe, RATE, SPEAKER_RATE, agent_mono
                ),
                "queue: deque.append": floors.get(
                    "deque", lambda: Probe("deque", queue.append, [0], between=queue.clear)
                ),
            },
            target=DOWNLINK_TARGET,
            note=(
                "aiortc-decoded s16 stereo 48 kHz frame -> track_to_mono + StreamResampler "
                "(48 -> 24 kHz) + Player.write"
            ),
        )
    )

    track = _track_frames(mono)
    opus = Probe("realtime opus", _opus_op(track), track)
    probes.append(opus)
    encode, stereo48, decode, packets = _bare_opus(mono)
    opus_cost = ctx.cost(opus)

    def opus_detail() -> str:
        median = opus_cost().median
        return (
            f"{20_000 / median:,.0f}x realtime; {median / 200:.2f} % of one core per device "
            f"(one encode + one decode per 20 ms)"
        )

    rows.append(
        RowSpec(
            section="realtime",
            key="realtime.opus",
            name="opus encode + decode (aiortc)",
            unit="us/20ms",
            measure=opus_cost,
            baseline_name="bare codec: libopus via PyAV",
            baseline={
                "encode 48k stereo 96 kbps": floors.get("opus-enc", Probe, "enc", encode, stereo48),
                "decode 48k stereo": floors.get("opus-dec", Probe, "dec", decode, packets),
            },
            note=(
                "aiortc OpusEncoder.encode (mono -> stereo resampler, libopus) + OpusDecoder.decode"
            ),
            detail=opus_detail,
        )
    )
    rounds = [ctx.per_call(p) for p in [*probes, *floors.probes.values()]]
    if clicks <= 0:
        return rounds, rows

    e2e = E2e(-(-clicks // ctx.repeat), seed)
    rounds.append(e2e.round)
    baseline_name = "data-channel round trip, same connection"
    for key, name, rec, how in (
        (
            "realtime.e2e",
            "click: send_audio -> far side",
            e2e.up,
            "AiortcTransport.send_audio -> the room's decoded track frame",
        ),
        (
            "realtime.e2e-down",
            "click: far side -> audio()",
            e2e.down,
            "the room's FrameQueue.push -> AiortcTransport.audio()",
        ),
    ):
        rows.append(
            RowSpec(
                section="realtime",
                key=key,
                name=name,
                unit="ms",
                measure=rec.stats,
                baseline_name=baseline_name,
                baseline={"send_message -> echo -> messages()": e2e.rtt.stats},
                target=E2E_TARGET,
                note=(
                    f"wall time, one way: {how}; aiortc holds 4 frames (80 ms) in its jitter "
                    f"buffer; {WARMUP_CLICKS} warm-up clicks per connection discarded"
                ),
                detail=e2e.detail,
            )
        )
    return rounds, rows
