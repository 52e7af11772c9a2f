"""Raw Opus packets (RFC 6716) through libopus in PyAV, one packet per frame, no Ogg.

Follows RFC 6716 "Definition of the Opus Audio Codec" and the Coze voice WebSocket reference:
``input_audio.codec: "opus"`` with ``format: "pcm"`` carries one raw Opus packet per event, and
``output_audio.opus_config`` sets ``bitrate`` (default 48000), ``use_cbr`` (default false) and
``frame_size_ms`` (2.5, 5, 10, 20, 40 or 60; Coze's output default is 10 ms). The encoder runs
at any Opus API rate (8000, 12000, 16000, 24000, 48000 Hz).

libopus in FFmpeg always decodes at 48 kHz (the RFC 6716 reference rate). The decoder's output
rate is ``OpusCodec(..., decode_rate=...)`` (default: the codec's ``sample_rate``):

* ``decode_rate=48000`` (:data:`NATIVE_DECODE_RATE`) returns libopus's int16 output as is, with
  no filtering and no added delay. Use it when the device runs at 48 kHz: it skips both the
  decimation here and a later 24k -> 48k resampling.
* A lower rate has libopus output float samples, which go through a linear-phase FIR decimator
  (Kaiser-windowed sinc, about 70 dB stopband) with a fixed delay of :data:`DECIMATOR_DELAY`
  output samples, and are rounded to int16 once at the end. The FIR runs as one
  block-Toeplitz matrix product per packet (BLAS), not as one dot product per output sample.

Every Opus packet lasts a multiple of 2.5 ms, so each :meth:`OpusCodec.decode` call returns
exactly the packet's duration in samples at :attr:`OpusCodec.decode_rate`.

Cost per 60 ms packet at 24 kHz (timeit, one core, Python 3.11, numpy 2.4 with OpenBLAS;
libopus's own decoding is about 90 µs of it):

==========================================  ==================  ===============
path                                        µs per packet       x realtime
==========================================  ==================  ===============
decimator alone, 2880 -> 1440 samples       14 (was 36)         -
decode to 24, 16 or 8 kHz                   105-108 (was 156)   about 560 (380)
decode at 48 kHz (``decode_rate=48000``)    93                  about 640
==========================================  ==================  ===============

A libsoxr ``ResampleStream`` (HQ) costs about the same (8-10 µs per 60 ms packet plus the
int16 conversion) but returns output in irregular bursts: keeping every packet at its exact
length would need an output FIFO primed with 490-920 samples (20-38 ms at 24 kHz) instead of
the decimator's 32.

Delay: decoded audio lags encoder input by the encoder lookahead (libopus
``OPUS_GET_LOOKAHEAD``: 2.5 ms + 4 ms, or 2.5 ms with ``application="lowdelay"``), because
raw packets carry no Ogg "pre-skip", plus the decimator delay (:attr:`OpusCodec.decoder_delay`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Final

import av
import numpy as np
from numpy.typing import NDArray

from voicegw.audio import Samples
from voicegw.codecs.base import Codec, check_samples, empty_samples
from voicegw.dsp.convert import float_to_int16
from voicegw.errors import CodecError, UnsupportedCodec

__all__ = [
    "APPLICATIONS",
    "DECIMATOR_DELAY",
    "FRAME_SIZES_MS",
    "NATIVE_DECODE_RATE",
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

#: The rate libopus decodes at in FFmpeg; ``decode_rate=NATIVE_DECODE_RATE`` skips decimation.
NATIVE_DECODE_RATE: Final = 48000

_BLOCK: Final = 16  # decimator outputs per matrix row
_INT16_SCALE: Final = np.float32(1.0 / 32768.0)
_FRAME_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "s16": np.dtype(np.int16),
    "s16p": np.dtype(np.int16),
    "flt": np.dtype(np.float32),
    "fltp": np.dtype(np.float32),
}
_MIN_BITRATE, _MAX_BITRATE = 6000, 510000  # libopus OPUS_SET_BITRATE range


class _Decimator:
    """Low-pass then keep every ``factor``-th sample, with a constant integer output delay.

    Input is float in [-1, 1) as libopus produces it (or int16, scaled on the way in); output
    is int16. The FIR is applied as a block-Toeplitz matrix product: each row of the left
    operand is one stretch of input that yields :data:`_BLOCK` consecutive outputs, so one
    BLAS call filters a whole packet.
    """

    def __init__(self, factor: int, channels: int) -> None:
        taps = 2 * DECIMATOR_DELAY * factor + 1
        n = np.arange(taps) - DECIMATOR_DELAY * factor
        cutoff = 0.95 * 0.5 / factor  # cycles per input sample, just below output Nyquist
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 6.76)  # about 70 dB stopband
        h = (h / h.sum()).astype(np.float32) * np.float32(32768.0)  # to int16 units
        width = (_BLOCK - 1) * factor + taps
        matrix = np.zeros((width, _BLOCK), dtype=np.float32)
        for j in range(_BLOCK):
            matrix[j * factor : j * factor + taps, j] = h
        self._matrix: NDArray[np.float32] = matrix
        self._width = width
        self.taps = taps
        self.factor = factor
        self.channels = channels
        self._history = np.zeros((taps - 1, channels), dtype=np.float32)
        self._phase = 0

    def reset(self) -> None:
        self._history = np.zeros_like(self._history)
        self._phase = 0

    def _filter(self, buf: NDArray[np.float32], channel: int, n_out: int) -> NDArray[np.float32]:
        """``n_out`` outputs of one channel of ``buf`` (C-contiguous, shape ``(n, channels)``)."""
        factor, ch, size = self.factor, self.channels, buf.itemsize
        rows = n_out // _BLOCK
        rest = n_out - rows * _BLOCK
        start = self._phase
        parts: list[NDArray[np.float32]] = []
        if rows:
            stretches = np.ndarray(
                (rows, self._width),
                dtype=np.float32,
                buffer=buf,
                offset=(start * ch + channel) * size,
                strides=(_BLOCK * factor * ch * size, ch * size),
            )
            parts.append((np.ascontiguousarray(stretches) @ self._matrix).reshape(-1))
            start += rows * _BLOCK * factor
        if rest:
            width = (rest - 1) * factor + self.taps
            parts.append(buf[start : start + width, channel] @ self._matrix[:width, :rest])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)

    def process(self, x: NDArray[Any]) -> Samples:
        """Filter ``x`` (shape ``(n, channels)``) and return the decimated int16 output."""
        keep = self._history.shape[0]
        total = keep + x.shape[0]
        buf = np.empty((total, self.channels), dtype=np.float32)
        buf[:keep] = self._history
        if x.dtype == np.int16:
            np.multiply(x, _INT16_SCALE, out=buf[keep:])
        else:
            buf[keep:] = x
        span = total - self.taps - self._phase
        n_out = span // self.factor + 1 if span >= 0 else 0
        if self.channels == 1:
            y = self._filter(buf, 0, n_out).reshape(-1, 1)
        else:
            y = np.empty((n_out, self.channels), dtype=np.float32)
            for c in range(self.channels):
                y[:, c] = self._filter(buf, c, n_out)
        self._phase += n_out * self.factor - (total - keep)
        self._history = buf[total - keep :]
        return float_to_int16(y, overwrite=True)

    def flush(self) -> Samples:
        """Push zeros through to release the last :data:`DECIMATOR_DELAY` samples, then reset."""
        out = self.process(np.zeros((DECIMATOR_DELAY * self.factor, self.channels), np.float32))
        self.reset()
        return out


def _frame_array(frame: Any, channels: int) -> NDArray[Any]:
    """A decoded frame's samples as ``(n, channels)``, float32 or int16 as decoded.

    Packed formats give a read-only view of the frame's buffer (valid while the array lives,
    as it holds a reference to the frame); planar formats give a new array.
    """
    fmt = frame.format
    dtype = _FRAME_DTYPES.get(fmt.name)
    if dtype is None:
        raise CodecError(f"unexpected decoded sample format {fmt.name}")
    n = frame.samples
    planes = frame.planes
    if fmt.is_planar:
        return np.stack([np.frombuffer(p, dtype, n) for p in planes[:channels]], axis=1)
    return np.frombuffer(planes[0], dtype, n * channels).reshape(n, channels)


def _to_samples(x: NDArray[Any], channels: int) -> Samples:
    """A new int16 array, ``(n,)`` for mono, from :func:`_frame_array` output."""
    out: Samples = (
        np.array(x, dtype=np.int16)
        if x.dtype == np.int16
        else float_to_int16(x * np.float32(32768.0), overwrite=True)
    )
    return out.reshape(-1) if channels == 1 else out


class OpusCodec(Codec):
    """Opus encoder (one raw packet per frame) and per-packet decoder.

    Args:
        sample_rate: one of :data:`OPUS_RATES`: the encoder's input rate, and the decoder's
            output rate unless ``decode_rate`` is given.
        channels: 1 or 2.
        frame_size_ms: frame duration for :meth:`encode`, one of :data:`FRAME_SIZES_MS`.
        bitrate: target bit rate in bit/s (6000-510000).
        use_cbr: constant bit rate (every packet the same size) instead of VBR.
        application: one of :data:`APPLICATIONS`.
        decode_rate: rate of the samples :meth:`decode` returns, one of :data:`OPUS_RATES`;
            ``None`` means ``sample_rate``. An Opus stream can be decoded at any of these rates
            whatever rate it was encoded at. :data:`NATIVE_DECODE_RATE` (48000) returns
            libopus's own output with no decimation and no added delay: the cheapest choice
            for a 48 kHz device. The rate the decoded samples are at is :attr:`decode_rate`.

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
        decode_rate: int | None = None,
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
        if decode_rate is None:
            decode_rate = sample_rate
        if decode_rate not in OPUS_RATES:
            raise UnsupportedCodec(
                f"opus decode_rate must be one of {OPUS_RATES}, got {decode_rate}"
            )
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_size_ms = float(frame_size_ms)
        self.frame_samples = round(sample_rate * self.frame_size_ms / 1000)
        self.bitrate = bitrate
        self.use_cbr = use_cbr
        self.application = application
        #: Sample rate of what :meth:`decode` returns (``sample_rate`` unless set).
        self.decode_rate = decode_rate
        self._layout = "mono" if channels == 1 else "stereo"
        self._encoder: Any = None
        self._pts = 0
        self._pending: list[Samples] = []
        self._pending_len = 0
        self._decoder: Any = None
        self._decimator_primed = False
        factor = NATIVE_DECODE_RATE // decode_rate
        self._decimator = _Decimator(factor, channels) if factor > 1 else None

    @property
    def lookahead(self) -> int:
        """Encoder lookahead in samples at ``sample_rate`` (libopus ``OPUS_GET_LOOKAHEAD``)."""
        extra = 0 if self.application == "lowdelay" else self.sample_rate // 250
        return self.sample_rate // 400 + extra

    @property
    def decoder_delay(self) -> int:
        """Samples (at :attr:`decode_rate`) of delay :meth:`decode` adds on top of the packets'
        own timing: :data:`DECIMATOR_DELAY` below 48 kHz, 0 at 48 kHz."""
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
            The packet's duration in samples at :attr:`decode_rate`, delayed by
            :attr:`decoder_delay`.

        Raises:
            CodecError: the packet is corrupt.
        """
        if not data:
            return empty_samples(self.channels)
        if self._decoder is None:
            self._decoder = self._new_decoder()
        try:
            frames = self._decoder.decode(av.Packet(bytes(data)))
        except av.FFmpegError as exc:
            raise CodecError(f"opus decode failed: {exc}") from exc
        if not frames:
            return empty_samples(self.channels)
        raw = [_frame_array(f, self.channels) for f in frames]
        pcm = raw[0] if len(raw) == 1 else np.concatenate(raw)
        if self._decimator is None:
            return _to_samples(pcm, self.channels)
        self._decimator_primed = True
        out = self._decimator.process(pcm)
        return out.reshape(-1) if self.channels == 1 else out

    def _new_decoder(self) -> Any:
        ctx = av.CodecContext.create("libopus", "r")
        ctx.sample_rate = NATIVE_DECODE_RATE
        ctx.layout = self._layout
        if self._decimator is not None:
            # float output feeds the decimator without an int16 round trip
            ctx.options = {"request_sample_fmt": "flt"}
        return ctx

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
