"""Raw Opus packets (RFC 6716) through libopus in PyAV, one packet per frame, no Ogg.

Follows RFC 6716 "Definition of the Opus Audio Codec" and the Coze voice WebSocket reference:
``input_audio.codec: "opus"`` with ``format: "pcm"`` carries one raw Opus packet per event, and
``output_audio.opus_config`` sets ``bitrate`` (default 48000), ``use_cbr`` (default false) and
``frame_size_ms`` (2.5, 5, 10, 20, 40 or 60; Coze's output default is 10 ms). The encoder runs
at any Opus API rate (8000, 12000, 16000, 24000, 48000 Hz).

libopus in FFmpeg always decodes at 48 kHz (the RFC 6716 reference rate), so for lower rates
the 48 kHz output goes through a linear-phase FIR decimator (Kaiser-windowed sinc) with a
fixed delay of :data:`DECIMATOR_DELAY` output samples. Every Opus packet lasts a multiple of
2.5 ms, so each :meth:`OpusCodec.decode` call returns exactly the packet's duration in samples.

Delay: decoded audio lags encoder input by the encoder lookahead (libopus
``OPUS_GET_LOOKAHEAD``: 2.5 ms + 4 ms, or 2.5 ms with ``application="lowdelay"``), because
raw packets carry no Ogg "pre-skip", plus the decimator delay (:attr:`OpusCodec.decoder_delay`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Final

import av
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from voicegw.audio import Samples
from voicegw.codecs.base import Codec, check_samples, empty_samples, frame_to_samples
from voicegw.errors import CodecError, UnsupportedCodec

__all__ = [
    "APPLICATIONS",
    "DECIMATOR_DELAY",
    "FRAME_SIZES_MS",
    "OPUS_RATES",
    "OpusCodec",
]

#: Sample rates the Opus API accepts (RFC 6716 section 2).
OPUS_RATES: Final = (8000, 12000, 16000, 24000, 48000)
#: Frame durations Coze's ``opus_config.frame_size_ms`` allows (RFC 6716 section 2.1.4).
FRAME_SIZES_MS: Final = (2.5, 5.0, 10.0, 20.0, 40.0, 60.0)
#: libopus applications: speech-tuned, general audio, and restricted low delay (CELT only).
APPLICATIONS: Final = ("voip", "audio", "lowdelay")
#: Output samples of delay added when decoding to a rate below 48 kHz.
DECIMATOR_DELAY: Final = 32

_DECODE_RATE: Final = 48000
_MIN_BITRATE, _MAX_BITRATE = 6000, 510000  # libopus OPUS_SET_BITRATE range


class _Decimator:
    """Low-pass then keep every ``factor``-th sample, with a constant integer output delay."""

    def __init__(self, factor: int, channels: int) -> None:
        taps = 2 * DECIMATOR_DELAY * factor + 1
        n = np.arange(taps) - DECIMATOR_DELAY * factor
        cutoff = 0.95 * 0.5 / factor  # cycles per input sample, just below output Nyquist
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 6.76)  # about 70 dB stopband
        self._h: NDArray[np.float32] = (h / h.sum()).astype(np.float32)
        self.factor = factor
        self.channels = channels
        self._history = np.zeros((taps - 1, channels), dtype=np.float32)
        self._phase = 0

    def reset(self) -> None:
        self._history[:] = 0.0
        self._phase = 0

    def process(self, x: NDArray[np.int16]) -> Samples:
        """Filter ``x`` (shape ``(n, channels)``) and return the decimated int16 output."""
        buf = np.concatenate((self._history, x.astype(np.float32)))
        windows = sliding_window_view(buf, self._h.shape[0], axis=0)[self._phase :: self.factor]
        y = windows @ self._h
        keep = self._history.shape[0]
        self._phase = self._phase + windows.shape[0] * self.factor - (buf.shape[0] - keep)
        self._history = buf[buf.shape[0] - keep :]
        out: Samples = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        return out

    def flush(self) -> Samples:
        """Push zeros through to release the last :data:`DECIMATOR_DELAY` samples, then reset."""
        out = self.process(np.zeros((DECIMATOR_DELAY * self.factor, self.channels), np.int16))
        self.reset()
        return out


class OpusCodec(Codec):
    """Opus encoder (one raw packet per frame) and per-packet decoder.

    Args:
        sample_rate: one of :data:`OPUS_RATES`, for both encoder input and decoder output.
        channels: 1 or 2.
        frame_size_ms: frame duration for :meth:`encode`, one of :data:`FRAME_SIZES_MS`.
        bitrate: target bit rate in bit/s (6000-510000).
        use_cbr: constant bit rate (every packet the same size) instead of VBR.
        application: one of :data:`APPLICATIONS`.

    Raises:
        UnsupportedCodec: any parameter outside the ranges above.
    """

    name = "opus"

    def __init__(
        self,
        sample_rate: int = 24000,
        channels: int = 1,
        *,
        frame_size_ms: float = 20.0,
        bitrate: int = 48000,
        use_cbr: bool = False,
        application: str = "voip",
    ) -> None:
        if sample_rate not in OPUS_RATES:
            raise UnsupportedCodec(
                f"opus sample rate must be one of {OPUS_RATES}, got {sample_rate}"
            )
        if channels not in (1, 2):
            raise UnsupportedCodec(f"opus channels must be 1 or 2, got {channels}")
        if frame_size_ms not in FRAME_SIZES_MS:
            raise UnsupportedCodec(
                f"opus frame_size_ms must be one of {FRAME_SIZES_MS}, got {frame_size_ms}"
            )
        if not _MIN_BITRATE <= bitrate <= _MAX_BITRATE:
            raise UnsupportedCodec(
                f"opus bitrate must be {_MIN_BITRATE}..{_MAX_BITRATE} bit/s, got {bitrate}"
            )
        if application not in APPLICATIONS:
            raise UnsupportedCodec(
                f"opus application must be one of {APPLICATIONS}, got {application!r}"
            )
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_size_ms = float(frame_size_ms)
        self.frame_samples = round(sample_rate * self.frame_size_ms / 1000)
        self.bitrate = bitrate
        self.use_cbr = use_cbr
        self.application = application
        self._layout = "mono" if channels == 1 else "stereo"
        self._encoder: Any = None
        self._pts = 0
        self._pending: list[Samples] = []
        self._pending_len = 0
        self._decoder: Any = None
        self._decimator_primed = False
        factor = _DECODE_RATE // sample_rate
        self._decimator = _Decimator(factor, channels) if factor > 1 else None

    @property
    def lookahead(self) -> int:
        """Encoder lookahead in samples at ``sample_rate`` (libopus ``OPUS_GET_LOOKAHEAD``)."""
        extra = 0 if self.application == "lowdelay" else self.sample_rate // 250
        return self.sample_rate // 400 + extra

    @property
    def decoder_delay(self) -> int:
        """Samples of delay :meth:`decode` adds on top of the packets' own timing."""
        return 0 if self._decimator is None else DECIMATOR_DELAY

    # -- encoding -------------------------------------------------------------------------

    def _new_encoder(self) -> Any:
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = self.sample_rate
        ctx.layout = self._layout
        ctx.format = "s16"
        ctx.bit_rate = self.bitrate
        ctx.time_base = Fraction(1, self.sample_rate)
        ctx.options = {
            "frame_duration": f"{self.frame_size_ms:g}",
            "application": self.application,
            "vbr": "off" if self.use_cbr else "on",
        }
        try:
            ctx.open()
        except av.FFmpegError as exc:
            raise CodecError(f"cannot open libopus encoder: {exc}") from exc
        self._pts = 0
        return ctx

    def _encode_one(self, frame_samples: Samples | None) -> list[bytes]:
        if self._encoder is None:
            self._encoder = self._new_encoder()
        frame = None
        if frame_samples is not None:
            frame = av.AudioFrame.from_ndarray(
                frame_samples.reshape(1, -1), format="s16", layout=self._layout
            )
            frame.sample_rate = self.sample_rate
            frame.pts = self._pts
            self._pts += self.frame_samples
        try:
            return [bytes(p) for p in self._encoder.encode(frame)]
        except av.FFmpegError as exc:
            raise CodecError(f"opus encode failed: {exc}") from exc

    def encode(self, samples: Samples) -> bytes:
        """Encode exactly one frame (``frame_samples`` samples) into one raw Opus packet.

        Raises:
            CodecError: bad array, wrong number of samples, or libopus failed.
        """
        samples = check_samples(samples, self.channels)
        if samples.shape[0] != self.frame_samples:
            raise CodecError(
                f"opus encode needs exactly {self.frame_samples} samples "
                f"({self.frame_size_ms:g} ms at {self.sample_rate} Hz), got {samples.shape[0]}"
            )
        packets = self._encode_one(samples)
        if len(packets) != 1:
            raise CodecError(f"libopus returned {len(packets)} packets for one frame")
        return packets[0]

    def encode_frames(self, samples: Samples) -> list[bytes]:
        """Encode any number of samples; returns one packet per complete frame.

        Samples that do not fill a frame are kept for the next call (or :meth:`flush`).
        """
        samples = check_samples(samples, self.channels)
        if self._pending:
            self._pending.append(samples)
            samples = np.concatenate(self._pending)
            self._pending, self._pending_len = [], 0
        n = self.frame_samples
        whole = samples.shape[0] - samples.shape[0] % n
        if whole != samples.shape[0]:
            self._pending = [samples[whole:].copy()]
            self._pending_len = samples.shape[0] - whole
        return [self.encode(samples[i : i + n]) for i in range(0, whole, n)]

    def _pad_pending(self) -> Samples | None:
        if not self._pending_len:
            return None
        shape = (self.frame_samples, *self._pending[0].shape[1:])
        frame = np.zeros(shape, dtype=np.int16)
        frame[: self._pending_len] = np.concatenate(self._pending)
        self._pending, self._pending_len = [], 0
        return frame

    def flush(self) -> bytes:
        """Encode the samples held by :meth:`encode_frames`, zero-padded to one frame.

        Returns one packet, or ``b""`` if nothing is held. The encoder keeps running; use
        :meth:`flush_frames` to also emit the encoder's lookahead at the end of a stream.
        """
        frame = self._pad_pending()
        return b"" if frame is None else self.encode(frame)

    def flush_frames(self) -> list[bytes]:
        """End the encoded stream: the padded held samples plus the packets that carry the
        encoder's lookahead, so the decoder outputs all input. The next encode starts anew."""
        packets = [] if (frame := self._pad_pending()) is None else [self.encode(frame)]
        if self._encoder is not None:
            packets.extend(self._encode_one(None))
            self._encoder = None
        return packets

    # -- decoding -------------------------------------------------------------------------

    def decode(self, data: bytes) -> Samples:
        """Decode exactly one raw Opus packet (an empty ``data`` decodes to nothing).

        Returns:
            The packet's duration in samples at ``sample_rate``, delayed by
            :attr:`decoder_delay`.

        Raises:
            CodecError: the packet is corrupt.
        """
        if not data:
            return empty_samples(self.channels)
        if self._decoder is None:
            self._decoder = av.CodecContext.create("libopus", "r")
            self._decoder.sample_rate = _DECODE_RATE
            self._decoder.layout = self._layout
        try:
            frames = self._decoder.decode(av.Packet(bytes(data)))
        except av.FFmpegError as exc:
            raise CodecError(f"opus decode failed: {exc}") from exc
        parts = [frame_to_samples(f) for f in frames]
        if not parts:
            return empty_samples(self.channels)
        pcm = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self._decimator is None:
            return pcm
        self._decimator_primed = True
        out = self._decimator.process(pcm.reshape(pcm.shape[0], -1))
        return out.reshape(-1) if self.channels == 1 else out

    def flush_decoded(self) -> Samples:
        """Return the decimator's last :attr:`decoder_delay` samples and end the stream."""
        self._decoder = None
        if self._decimator is None or not self._decimator_primed:
            return empty_samples(self.channels)
        self._decimator_primed = False
        out = self._decimator.flush()
        return out.reshape(-1) if self.channels == 1 else out

    def reset(self) -> None:
        """Drop encoder, decoder and buffered samples; the next call starts a new stream."""
        self._encoder = None
        self._decoder = None
        self._pending, self._pending_len = [], 0
        if self._decimator is not None:
            self._decimator.reset()
        self._decimator_primed = False

    @property
    def stateful(self) -> bool:
        """Always ``True``: Opus predicts each frame from the previous ones."""
        return True
