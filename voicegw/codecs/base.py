"""The codec interface every audio codec in :mod:`voicegw.codecs` implements.

A codec converts between int16 sample arrays (:data:`voicegw.audio.Samples`) and the byte
strings carried in Coze audio events (``input_audio.codec`` / ``output_audio.codec`` in the
Coze voice WebSocket reference: ``pcm``, ``g711a``, ``g711u``, ``opus``, ``mp3``).

Sample layout: mono audio is shape ``(n,)``; multi-channel audio is shape ``(n, channels)``,
one row per sample instant, which is the interleaved order on the wire.

Stateful codecs (MP3, Opus, and PCM when a network delta can end inside a frame) keep
encoder and decoder state between calls; :meth:`Codec.reset` starts a new stream, for
example after a barge-in cancels the current response.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from voicegw.audio import Samples
from voicegw.dsp.convert import float_to_int16
from voicegw.errors import CodecError

__all__ = ["Codec", "check_samples", "empty_samples", "frame_to_samples"]


class Codec(ABC):
    """Encoder and decoder for one audio format.

    Attributes:
        name: registry name (``"pcm"``, ``"g711a"``, ``"g711u"``, ``"mp3"``, ``"opus"``).
        sample_rate: samples per second per channel, on both sides of the codec (an
            :class:`~voicegw.codecs.opus.OpusCodec` may decode at another rate, its
            ``decode_rate``).
        channels: 1 or 2.
    """

    name: str
    sample_rate: int
    channels: int

    @abstractmethod
    def encode(self, samples: Samples) -> bytes:
        """Encode int16 samples, shape ``(n,)`` for mono or ``(n, channels)``.

        Raises:
            CodecError: the array has the wrong dtype or shape, or the encoder failed.
        """

    @abstractmethod
    def decode(self, data: bytes) -> Samples:
        """Decode bytes into int16 samples, shape ``(n,)`` for mono or ``(n, channels)``.

        Raises:
            CodecError: the data cannot be decoded.
        """

    def flush(self) -> bytes:
        """Return the encoder's buffered tail and end the encoded stream (``b""`` if none)."""
        return b""

    def flush_decoded(self) -> Samples:
        """Return the decoder's buffered tail and end the decoded stream (empty if none)."""
        return empty_samples(self.channels)

    def reset(self) -> None:  # noqa: B027 - stateless codecs have nothing to drop
        """Drop all encoder and decoder state; the next call starts a new stream."""

    @property
    @abstractmethod
    def stateful(self) -> bool:
        """Whether the output of a call can depend on earlier calls."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.sample_rate} Hz x{self.channels}>"


def empty_samples(channels: int) -> Samples:
    """An empty int16 array of the right shape for ``channels``."""
    return np.empty((0,) if channels == 1 else (0, channels), dtype=np.int16)


def check_samples(samples: Samples, channels: int) -> Samples:
    """Validate an int16 array for a codec with ``channels`` channels.

    Mono accepts shape ``(n,)`` or ``(n, 1)`` and returns ``(n,)``; stereo needs ``(n, 2)``.
    The array is returned as-is when it is already C-contiguous, so this costs no copy.

    Raises:
        CodecError: wrong dtype or shape.
    """
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        got = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
        raise CodecError(f"expected an int16 numpy array, got {got}")
    if samples.ndim == 1:
        if channels != 1:
            raise CodecError(f"expected shape (n, {channels}), got {samples.shape}")
    elif samples.ndim == 2 and samples.shape[1] == channels:
        if channels == 1:
            samples = samples[:, 0]
    else:
        want = "(n,)" if channels == 1 else f"(n, {channels})"
        raise CodecError(f"expected shape {want}, got {samples.shape}")
    if not samples.flags.c_contiguous:
        samples = np.ascontiguousarray(samples)
    return samples


def frame_to_samples(frame: Any) -> Samples:
    """Convert a decoded PyAV ``AudioFrame`` (s16/s16p/flt/fltp) to int16 ``(n,)`` or ``(n, ch)``.

    Float samples are scaled by 32768, rounded and saturated, as FFmpeg's own float-to-s16
    conversion does.

    Raises:
        CodecError: the frame has a sample format other than 16-bit or float.
    """
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels
    # planar is (ch, n); packed is one interleaved row
    arr = arr.T if frame.format.is_planar else arr.reshape(-1, channels)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        arr = float_to_int16(arr * 32768.0, overwrite=True)
    elif arr.dtype != np.int16:
        raise CodecError(f"unexpected decoded sample format {frame.format.name}")
    out: Samples = np.ascontiguousarray(arr, dtype=np.int16)
    return out.reshape(-1) if channels == 1 else out
