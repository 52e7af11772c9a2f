"""The uplink and downlink audio chains between device samples and API payloads.

Uplink: device frames (any rate, 1-2 channels) -> mono -> streaming resampler -> FIFO framing
to the configured frame length -> input codec -> one payload per ``input_audio_buffer.append``.

Downlink: each ``conversation.audio.delta`` payload, decoded in bulk (a delta holds up to
~250 ms; it is never split frame by frame) -> streaming resampler to the speaker rate -> mono
int16 for the playout buffer.

Pure: no asyncio, no devices. Stateful codecs and resamplers keep their state between calls;
:meth:`Downlink.reset` drops it when a reply is cancelled, so the next reply starts clean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .audio import Samples
from .codecs import get_codec
from .codecs.opus import NATIVE_DECODE_RATE
from .dsp import StreamResampler, to_mono

__all__ = ["Downlink", "Uplink"]


class Uplink:
    """Device frames in, encoded API payloads out."""

    def __init__(
        self,
        *,
        device_rate: int,
        device_channels: int,
        codec: str,
        rate: int,
        frame_ms: float,
        channel: int | None = None,
    ) -> None:
        opts: dict[str, Any] = {}
        if codec == "opus":
            opts["frame_size_ms"] = frame_ms
        self.codec = get_codec(codec, sample_rate=rate, channels=1, **opts)
        self.device_channels = device_channels
        self.channel = channel
        self.resampler = StreamResampler(device_rate, rate, channels=1)
        self.frame = round(rate * frame_ms / 1000)
        self._fifo: Samples = np.zeros(0, dtype=np.int16)

    def process(self, frame: Samples) -> list[bytes]:
        """Convert one device frame; returns zero or more payloads of exactly one frame each."""
        return self.encode(self.convert(frame))

    def convert(self, frame: Samples) -> Samples:
        """Device frame -> mono at the API rate (any length: the resampler is streaming).

        The result is what a local VAD, the echo guard and the pre-roll work on, so the
        downmix and the resampling happen once per frame.
        """
        mono = to_mono(frame, self.channel) if frame.ndim == 2 else frame
        return self.resampler.process(mono)

    def encode(self, samples: Samples) -> list[bytes]:
        """API-rate mono samples -> payloads of exactly one frame each (the rest is kept)."""
        out = samples
        if len(out):
            self._fifo = np.concatenate((self._fifo, out)) if len(self._fifo) else out
        payloads: list[bytes] = []
        n = self.frame
        while len(self._fifo) >= n:
            payloads.append(self.codec.encode(self._fifo[:n]))
            self._fifo = self._fifo[n:]
        return payloads

    def reset(self) -> None:
        """Drop the partial frame and codec state (start of a new utterance).

        The resampler keeps its state: the device stream is continuous across utterances.
        """
        self._fifo = np.zeros(0, dtype=np.int16)
        self.codec.reset()


class Downlink:
    """API payloads in, speaker-rate mono samples out."""

    def __init__(self, *, codec: str, rate: int, sink_rate: int, **opts: Any) -> None:
        self._name = codec
        if codec == "opus" and sink_rate == NATIVE_DECODE_RATE:
            # libopus decodes at 48 kHz natively: a 48 kHz speaker takes that as it is, with
            # no decimation to the nominal rate and no resampling back up.
            opts = {**opts, "decode_rate": NATIVE_DECODE_RATE}
        self._opts = opts
        self.codec = get_codec(codec, sample_rate=rate, channels=1, **opts)
        self._rate = int(getattr(self.codec, "decode_rate", None) or rate)
        self.sink_rate = sink_rate
        self.resampler = StreamResampler(self._rate, sink_rate, channels=1)

    def decode(self, payload: bytes) -> Samples:
        """Decode one delta's payload; may return fewer samples while codec state fills."""
        pcm = self.codec.decode(payload)
        if pcm.ndim == 2:
            pcm = to_mono(pcm, None)
        return self.resampler.process(pcm)

    def drain(self) -> Samples:
        """Flush codec and resampler tails at the end of a reply."""
        tail = self.codec.flush_decoded()
        if tail.ndim == 2:
            tail = to_mono(tail, None)
        out = self.resampler.process(tail) if len(tail) else np.zeros(0, dtype=np.int16)
        rest = self.resampler.flush()
        self.resampler = StreamResampler(self._rate, self.sink_rate, channels=1)
        return np.concatenate((out, rest)) if len(rest) else out

    def reset(self) -> None:
        """Forget everything (barge-in): the next payload starts a new stream."""
        self.codec.reset()
        self.resampler = StreamResampler(self._rate, self.sink_rate, channels=1)
