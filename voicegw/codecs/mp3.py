"""MPEG-1/2/2.5 Audio Layer III: LAME encoder (lameenc) and a streaming FFmpeg decoder (PyAV).

Follows ISO/IEC 11172-3 (MPEG-1 Layer III: 32000, 44100, 48000 Hz, 1152 samples per frame)
and ISO/IEC 13818-3 (MPEG-2 low sampling frequencies: 16000, 22050, 24000 Hz, 576 samples per
frame), plus the MPEG-2.5 extension (8000, 11025, 12000 Hz). Coze's ``output_audio.mp3_config``
allows 32000/44100/48000 Hz (default 44100); the lower rates serve the emulator and tests.

Decoding is streaming: bytes go through FFmpeg's MP3 frame parser, which buffers a partial
frame until the rest arrives, so network deltas may split anywhere, even inside a frame header,
and still decode to exactly the samples of a whole-stream decode.

Delay: lameenc writes no Xing/LAME "Info" header, so no decoder knows the encoder delay. Every
decoder returns the audio delayed by :data:`LAME_DELAY` = 1105 samples (LAME's 576-sample
encoder delay plus the 529-sample decoder filterbank delay) and padded at the end up to a whole
frame. The ``skip_leading`` decoder option drops that many samples at the start of each
stream. It defaults to 0 because a server stream's encoder delay is unknown; pass
``LAME_DELAY`` when decoding this module's own encoder output.
"""

from __future__ import annotations

from typing import Any, Final

import av
import lameenc
import numpy as np

from voicegw.audio import Samples
from voicegw.codecs.base import Codec, check_samples, empty_samples, frame_to_samples
from voicegw.dsp.channels import to_channels
from voicegw.errors import CodecError, UnsupportedCodec

__all__ = ["LAME_DELAY", "MP3_BITRATES", "MP3_RATES", "Mp3Codec"]

#: Samples by which LAME-encoded audio (without an Info header) lags the input when decoded.
LAME_DELAY: Final = 1105

#: Sample rates of MPEG-1 (32000-48000), MPEG-2 (16000-24000) and MPEG-2.5 (8000-12000).
MP3_RATES: Final = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

_MPEG1_KBPS: Final = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_KBPS: Final = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)

#: Layer III bit rates in bit/s for each sample rate (ISO/IEC 11172-3 and 13818-3 tables).
MP3_BITRATES: Final = {
    rate: tuple(k * 1000 for k in (_MPEG1_KBPS if rate >= 32000 else _MPEG2_KBPS))
    for rate in MP3_RATES
}


class Mp3Codec(Codec):
    """Constant-bit-rate MP3 encoder plus streaming decoder.

    Args:
        sample_rate: one of :data:`MP3_RATES`; the encoder never resamples.
        channels: 1 or 2. Decoded audio is converted to this many channels.
        bitrate: encoder bit rate in bit/s, one of ``MP3_BITRATES[sample_rate]``.
        quality: LAME algorithm quality, 0 (best, slowest) to 9; 2 is "high quality".
        skip_leading: samples per channel to drop at the start of each decoded stream
            (use :data:`LAME_DELAY` for streams from this encoder).

    Raises:
        UnsupportedCodec: unsupported rate, channel count, bit rate or quality.
    """

    name = "mp3"

    def __init__(
        self,
        sample_rate: int = 44100,
        channels: int = 1,
        *,
        bitrate: int = 48000,
        quality: int = 2,
        skip_leading: int = 0,
    ) -> None:
        if sample_rate not in MP3_RATES:
            raise UnsupportedCodec(f"mp3 sample rate must be one of {MP3_RATES}, got {sample_rate}")
        if channels not in (1, 2):
            raise UnsupportedCodec(f"mp3 channels must be 1 or 2, got {channels}")
        if bitrate not in MP3_BITRATES[sample_rate]:
            raise UnsupportedCodec(
                f"mp3 bit rate at {sample_rate} Hz must be one of "
                f"{MP3_BITRATES[sample_rate]} bit/s, got {bitrate}"
            )
        if not 0 <= quality <= 9:
            raise UnsupportedCodec(f"mp3 quality must be 0..9, got {quality}")
        if skip_leading < 0:
            raise UnsupportedCodec(f"mp3 skip_leading must be >= 0, got {skip_leading}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.bitrate = bitrate
        self.quality = quality
        self.skip_leading = skip_leading
        self._encoder: Any = None
        self._decoder: Any = None
        self._skip_left = skip_leading

    # -- encoding -------------------------------------------------------------------------

    def _new_encoder(self) -> Any:
        enc = lameenc.Encoder()
        enc.set_bit_rate(self.bitrate // 1000)
        enc.set_in_sample_rate(self.sample_rate)
        enc.set_out_sample_rate(self.sample_rate)  # else LAME may pick a lower output rate
        enc.set_channels(self.channels)
        enc.set_quality(self.quality)
        return enc

    def encode(self, samples: Samples) -> bytes:
        """Encode samples; returns whole MP3 frames as LAME completes them (often ``b""``).

        Raises:
            CodecError: bad array, or LAME refused the input.
        """
        samples = check_samples(samples, self.channels)
        if self._encoder is None:
            self._encoder = self._new_encoder()
        try:
            return bytes(self._encoder.encode(samples.tobytes()))
        except Exception as exc:
            raise CodecError(f"mp3 encode failed: {exc}") from exc

    def flush(self) -> bytes:
        """Encode the buffered samples (padded to a whole frame) and end the stream."""
        if self._encoder is None:
            return b""
        enc, self._encoder = self._encoder, None
        try:
            return bytes(enc.flush())
        except Exception as exc:
            raise CodecError(f"mp3 encoder flush failed: {exc}") from exc

    # -- decoding -------------------------------------------------------------------------

    def _convert(self, frames: list[Any]) -> Samples:
        parts: list[Samples] = []
        for frame in frames:
            if frame.sample_rate != self.sample_rate:
                raise CodecError(
                    f"mp3 stream is {frame.sample_rate} Hz, codec expects {self.sample_rate} Hz"
                )
            parts.append(to_channels(frame_to_samples(frame), self.channels))
        if not parts:
            return empty_samples(self.channels)
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self._skip_left:
            drop = min(self._skip_left, out.shape[0])
            self._skip_left -= drop
            out = out[drop:]
        return out

    def _run(self, data: bytes | None) -> list[Any]:
        if self._decoder is None:
            self._decoder = av.CodecContext.create("mp3", "r")
        dec = self._decoder
        frames: list[Any] = []
        try:
            for packet in dec.parse(data):
                frames.extend(dec.decode(packet))
            if data is None:
                frames.extend(dec.decode(None))
        except av.FFmpegError as exc:
            raise CodecError(f"mp3 decode failed: {exc}") from exc
        return frames

    def decode(self, data: bytes) -> Samples:
        """Decode the complete frames available after appending ``data``.

        A partial frame at the end is kept by the parser until the next call.

        Raises:
            CodecError: corrupt data, or a stream rate other than ``sample_rate``.
        """
        if not data:
            return empty_samples(self.channels)
        return self._convert(self._run(bytes(data)))

    def flush_decoded(self) -> Samples:
        """Decode what the parser still holds and end the stream.

        The next :meth:`decode` starts a new stream (and skips ``skip_leading`` again).

        Raises:
            CodecError: the held bytes are a corrupt frame.
        """
        if self._decoder is None:
            return empty_samples(self.channels)
        try:
            return self._convert(self._run(None))
        finally:
            self._decoder = None
            self._skip_left = self.skip_leading

    def reset(self) -> None:
        """Drop encoder and decoder state; buffered input is discarded, not flushed."""
        self._encoder = None
        self._decoder = None
        self._skip_left = self.skip_leading

    @property
    def stateful(self) -> bool:
        """Always ``True``: LAME buffers input and the parser buffers partial frames."""
        return True
