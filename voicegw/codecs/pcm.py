"""Linear PCM at 8, 16 or 24 bits per sample, mono or stereo.

Follows the Coze voice WebSocket reference for ``codec: "pcm"`` (``input_audio.bit_depth``
8/16/24, ``channel`` 1/2, ``sample_rate`` 8000-48000) and the WAVE (RIFF) conventions for
the byte layout, since the Coze reference names bit depths but not encodings:

* 16-bit: signed little-endian (s16le), as in WAVE; the Coze reference implies it (its
  byte counts are ``rate * 2 * seconds``) without naming the byte order.
* 24-bit: packed 3-byte signed little-endian. Encoding places the int16 in the top 16 bits
  (``sample << 8``); decoding keeps the top 16 bits (an arithmetic ``>> 8``).
* 8-bit: **INFERRED** unsigned offset-binary as in WAVE files (``0x80`` is silence); encoding
  keeps the top 8 bits of the int16 (``(sample >> 8) + 128``), decoding is ``(byte - 128) << 8``.
  The Coze reference does not say which 8-bit encoding it uses; WAVE's is the common one.

Channels are interleaved (one sample per channel per frame, channel 0 first).

Network deltas may split anywhere, so :class:`PcmCodec` keeps the bytes of an incomplete
frame from one :meth:`~PcmCodec.decode` call and prepends them to the next.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from voicegw.audio import API_RATES, Samples
from voicegw.codecs.base import Codec, check_samples, empty_samples
from voicegw.errors import CodecError, UnsupportedCodec

__all__ = ["BIT_DEPTHS", "PcmCodec", "decode_pcm", "encode_pcm"]

#: Bit depths Coze accepts for ``codec: "pcm"``.
BIT_DEPTHS: Final = (8, 16, 24)


def encode_pcm(samples: Samples, bit_depth: int = 16) -> bytes:
    """Pack int16 samples (any shape, C order = interleaved) at ``bit_depth`` bits.

    Raises:
        CodecError: ``samples`` is not an int16 array.
        UnsupportedCodec: ``bit_depth`` is not 8, 16 or 24.
    """
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise CodecError("PCM encodes int16 numpy arrays")
    if bit_depth == 16:
        return samples.astype("<i2", copy=False).tobytes()
    flat = samples.reshape(-1)
    if bit_depth == 8:
        return ((flat >> 8).astype(np.uint8) ^ 0x80).tobytes()
    if bit_depth == 24:
        out = np.zeros((flat.size, 3), dtype=np.uint8)
        out[:, 1:] = flat.astype("<i2", copy=False).view(np.uint8).reshape(-1, 2)
        return out.tobytes()
    raise UnsupportedCodec(f"PCM bit depth must be one of {BIT_DEPTHS}, got {bit_depth}")


def decode_pcm(data: bytes, bit_depth: int = 16, channels: int = 1) -> Samples:
    """Unpack whole frames of ``bit_depth``-bit PCM into a new int16 array.

    Returns:
        Shape ``(n,)`` for mono, ``(n, channels)`` otherwise.

    Raises:
        CodecError: ``len(data)`` is not a whole number of frames.
        UnsupportedCodec: ``bit_depth`` is not 8, 16 or 24.
    """
    if bit_depth not in BIT_DEPTHS:
        raise UnsupportedCodec(f"PCM bit depth must be one of {BIT_DEPTHS}, got {bit_depth}")
    frame = bit_depth // 8 * channels
    if len(data) % frame:
        raise CodecError(f"{len(data)} bytes is not a whole number of {frame}-byte PCM frames")
    raw = np.frombuffer(data, dtype=np.uint8)
    if bit_depth == 16:
        out = raw.view("<i2").astype(np.int16)
    elif bit_depth == 8:
        out = ((raw ^ 0x80).view(np.int8).astype(np.int16)) << 8
    else:
        out = raw.reshape(-1, 3)[:, 1:].copy().view("<i2").reshape(-1).astype(np.int16)
    return out if channels == 1 else out.reshape(-1, channels)


class PcmCodec(Codec):
    """Interleaved linear PCM.

    Args:
        sample_rate: one of :data:`voicegw.audio.API_RATES`.
        channels: 1 or 2.
        bit_depth: 8, 16 or 24.

    Raises:
        UnsupportedCodec: any other rate, channel count or depth.
    """

    name = "pcm"

    def __init__(self, sample_rate: int = 24000, channels: int = 1, bit_depth: int = 16) -> None:
        if sample_rate not in API_RATES:
            raise UnsupportedCodec(f"pcm sample rate must be one of {API_RATES}, got {sample_rate}")
        if channels not in (1, 2):
            raise UnsupportedCodec(f"pcm channels must be 1 or 2, got {channels}")
        if bit_depth not in BIT_DEPTHS:
            raise UnsupportedCodec(f"pcm bit depth must be one of {BIT_DEPTHS}, got {bit_depth}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.bit_depth = bit_depth
        self.frame_bytes = bit_depth // 8 * channels
        self._tail = b""

    def encode(self, samples: Samples) -> bytes:
        """Pack samples; shape ``(n,)`` for mono, ``(n, channels)`` otherwise."""
        return encode_pcm(check_samples(samples, self.channels), self.bit_depth)

    def decode(self, data: bytes) -> Samples:
        """Unpack the whole frames in ``self``'s pending tail plus ``data``.

        Bytes of a trailing incomplete frame are kept and prepended to the next call.
        """
        if self._tail:
            data = self._tail + bytes(data)
        cut = len(data) - len(data) % self.frame_bytes
        if cut != len(data):
            self._tail = bytes(data[cut:])
            data = data[:cut]
        else:
            self._tail = b""
        return decode_pcm(data, self.bit_depth, self.channels)

    def flush_decoded(self) -> Samples:
        """End the stream. An incomplete trailing frame cannot be decoded and is dropped."""
        self._tail = b""
        return empty_samples(self.channels)

    def reset(self) -> None:
        """Drop any pending partial frame."""
        self._tail = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held back by :meth:`decode`."""
        return len(self._tail)

    @property
    def stateful(self) -> bool:
        """``True`` unless a frame is one byte (8-bit mono), when no split can leave a tail."""
        return self.frame_bytes > 1
