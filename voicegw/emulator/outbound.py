"""Encoding reply audio into ``conversation.audio.delta`` payloads (spec 2.2.2, 2.5.2, 2.5.4).

:class:`OutputPlan` reads the effective ``output_audio``; :func:`encode_reply` turns a reply's
sentences into per-sentence lists of :class:`Delta` (payload bytes plus the seconds of audio in
them), which :mod:`.pacing` then schedules.

Per codec:

* ``pcm``: s16le mono at ``pcm_config.sample_rate`` (any PCMConfig rate).
* ``g711a``/``g711u``: one byte per sample at 8000 Hz.
* ``opus``: one raw Opus packet per delta, ``opus_config.frame_size_ms`` each (default 10),
  at ``opus_config.sample_rate`` (default 24000, the rate [JS] decodes at), with ``bitrate``
  and ``use_cbr``. One encoder per reply; the last deltas carry the encoder's lookahead.
* ``mp3``: one continuous LAME stream per reply at ``mp3_config.sample_rate``; deltas are
  consecutive byte slices of it (about 250 ms each), split among sentences in proportion to
  their audio, so concatenating every delta gives a valid MP3 file. ``bit_rate`` snaps to the
  nearest MP3 bit rate not above it (the lowest one if it is below all); MP3 has no
  ``frame_size_ms``/``limit_config`` in the spec, so it always bursts.

Chunking for ``pcm`` and G.711: without ``frame_size_ms`` each sentence goes out in 250 ms
chunks, the last one shorter, as in recorded traffic (spec 2.4 D7). With ``frame_size_ms``
every delta carries exactly that much audio: each sentence is padded with silence to a whole
number of frames (INFERRED; it keeps the rule exact for the last delta too). Opus sentences
are padded the same way.

``speech_rate`` (-50..100: 0.5x..2x) changes speed by resampling, so pitch changes too
(an emulator shortcut); ``loudness_rate`` (-50..100: 0.5x..2x) scales the amplitude.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import Samples
from ..codecs import get_codec
from ..codecs.mp3 import MP3_BITRATES
from ..codecs.opus import OpusCodec
from ..dsp.channels import apply_gain
from ..dsp.resample import resample
from ..protocol.objects import OPUS_DEFAULTS, LimitConfig, OutputAudio
from .bots import Sentence
from .pacing import Limit
from .settings import MP3_DEFAULT_BIT_RATE

__all__ = ["BURST_CHUNK_S", "Delta", "OutputPlan", "encode_reply", "snap_mp3_bitrate"]

#: Audio per delta when no ``frame_size_ms`` is set (12000 bytes of 24 kHz PCM).
BURST_CHUNK_S = 0.25


@dataclass(frozen=True, slots=True)
class Delta:
    """One ``conversation.audio.delta`` payload and the seconds of audio it carries."""

    data: bytes
    duration_s: float


def snap_mp3_bitrate(rate: int, requested: int) -> int:
    """The MP3 bit rate LAME will use for ``requested`` bit/s at ``rate`` Hz."""
    allowed = MP3_BITRATES[rate]
    below = [b for b in allowed if b <= requested]
    return max(below) if below else min(allowed)


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How reply audio is encoded and paced, derived from an effective ``output_audio``."""

    codec: str = "pcm"
    rate: int = 24000
    frame_ms: float | None = None
    limit: Limit | None = None
    bitrate: int = 48000
    use_cbr: bool = False
    speed: float = 1.0
    gain: float = 1.0

    @classmethod
    def from_config(cls, out: OutputAudio) -> OutputPlan:
        """Read an effective ``output_audio`` (see :func:`.settings.effective`)."""
        codec = out.codec or "pcm"
        speed = 1.0 + (out.speech_rate or 0) / 100.0
        gain = 1.0 + (out.loudness_rate or 0) / 100.0
        if codec == "opus":
            oc = out.opus_config or OPUS_DEFAULTS
            return cls(
                codec,
                oc.sample_rate or 24000,
                oc.frame_size_ms or 10.0,
                _limit(oc.limit_config),
                oc.bitrate or 48000,
                bool(oc.use_cbr),
                speed,
                gain,
            )
        if codec == "mp3":
            mc = out.mp3_config
            rate = (mc.sample_rate if mc else None) or 44100
            bitrate = (mc.bit_rate if mc else None) or MP3_DEFAULT_BIT_RATE
            return cls(codec, rate, None, None, snap_mp3_bitrate(rate, bitrate), False, speed, gain)
        pc = out.pcm_config
        rate = 8000 if codec in ("g711a", "g711u") else ((pc.sample_rate if pc else None) or 24000)
        frame = pc.frame_size_ms if pc else None
        # A limit without a fixed frame size has no defined packet ([COMMUNITY], spec 2.5.4).
        limit = _limit(pc.limit_config) if pc and frame else None
        return cls(codec, rate, frame, limit, 48000, False, speed, gain)


def _limit(lc: LimitConfig | None) -> Limit | None:
    if lc is None or not lc.period or not lc.max_frame_num:
        return None
    return Limit(float(lc.period), lc.max_frame_num)


def _prepare(sentences: Sequence[Sentence], plan: OutputPlan) -> list[Samples]:
    out = []
    for s in sentences:
        audio = s.audio
        if plan.speed != 1.0:
            audio = resample(audio, max(1, round(s.rate * plan.speed)), s.rate)
        audio = resample(audio, s.rate, plan.rate)
        if plan.gain != 1.0:
            audio = apply_gain(audio, plan.gain)
        out.append(np.ascontiguousarray(audio, dtype=np.int16))
    return out


def _pad(audio: Samples, frame: int) -> Samples:
    extra = -audio.shape[0] % frame
    return np.concatenate((audio, np.zeros(extra, dtype=np.int16))) if extra else audio


def encode_reply(sentences: Sequence[Sentence], plan: OutputPlan) -> list[list[Delta]]:
    """Encode each sentence's audio; returns one list of deltas per sentence, in order.

    Raises:
        voicegw.errors.CodecError: the codec failed (never for valid plans).
    """
    audio = _prepare(sentences, plan)
    if plan.codec == "mp3":
        return _mp3(audio, plan)
    if plan.codec == "opus":
        return _opus(audio, plan)
    codec = get_codec(plan.codec, plan.rate)
    frame_s = (plan.frame_ms or BURST_CHUNK_S * 1000) / 1000.0
    frame = max(1, round(frame_s * plan.rate))
    result = []
    for a in audio:
        if plan.frame_ms:
            a = _pad(a, frame)
        result.append(
            [
                Delta(codec.encode(a[i : i + frame]), min(frame, a.shape[0] - i) / plan.rate)
                for i in range(0, a.shape[0], frame)
            ]
        )
    return result


def _opus(audio: list[Samples], plan: OutputPlan) -> list[list[Delta]]:
    frame_ms = plan.frame_ms or 10.0
    codec = get_codec(
        "opus", plan.rate, frame_size_ms=frame_ms, bitrate=plan.bitrate, use_cbr=plan.use_cbr
    )
    frame = round(plan.rate * frame_ms / 1000)
    result = []
    for a in audio:
        a = _pad(a, frame)
        result.append(
            [
                Delta(codec.encode(a[i : i + frame]), frame_ms / 1000)
                for i in range(0, a.shape[0], frame)
            ]
        )
    tail = codec.flush_frames() if isinstance(codec, OpusCodec) else []
    if result:
        result[-1].extend(Delta(p, frame_ms / 1000) for p in tail)
    return result


def _mp3(audio: list[Samples], plan: OutputPlan) -> list[list[Delta]]:
    codec = get_codec("mp3", plan.rate, bitrate=plan.bitrate)
    stream = b"".join(codec.encode(a) for a in audio) + codec.flush()
    byte_rate = plan.bitrate / 8.0
    chunk = max(1, round(byte_rate * BURST_CHUNK_S))
    total = sum(a.shape[0] for a in audio) or 1
    cuts = [0]
    seen = 0
    for a in audio:
        seen += a.shape[0]
        cuts.append(len(stream) if seen >= total else round(len(stream) * seen / total))
    result = []
    for lo, hi in itertools.pairwise(cuts):
        part = stream[lo:hi]
        result.append(
            [
                Delta(part[i : i + chunk], len(part[i : i + chunk]) / byte_rate)
                for i in range(0, len(part), chunk)
            ]
        )
    return result
