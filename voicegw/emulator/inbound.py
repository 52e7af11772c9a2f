"""Decoding what the client appends, per the session's ``input_audio`` (spec 2.2.1, 2.5.1).

:class:`InputDecoder` turns the bytes of each ``input_audio_buffer.append`` into mono int16
samples at :attr:`InputDecoder.rate`:

* ``format: "pcm"`` + ``codec: "pcm"``: little-endian PCM at 8 (unsigned, as in WAVE), 16 or
  24 bits, 1 or 2 channels interleaved. Stereo is averaged to mono. A frame split across
  appends is kept until the rest arrives.
* ``format: "pcm"`` + ``codec: "g711a"``/``"g711u"``: G.711 at 8000 Hz, one byte per sample.
* ``format: "pcm"`` + ``codec: "opus"``: one raw Opus packet per append (INFERRED: spec 2.3 U2
  says one 20 or 40 ms frame per event, no Ogg container). Decoded at ``sample_rate`` when Opus
  supports it (8/12/16/24/48 kHz), else at 48 kHz.
* ``format: "wav"`` (the service default): the stream must begin with a RIFF/WAVE header;
  its ``fmt `` chunk (PCM 8/16/24-bit, 32-bit float, A-law, µ-law; WAVE_FORMAT_EXTENSIBLE too)
  decides how the rest decodes, whatever ``codec``/``sample_rate`` say. The ``data`` chunk's
  size is ignored: streams often write 0 or 0xFFFFFFFF there.

  If the first bytes of the connection's audio are not ``RIFF``, the stream is *invalid*: the
  bytes are still read as 16-bit PCM at the configured rate so the VAD can find the utterance,
  and :attr:`InputDecoder.invalid` holds the service's exact error text, which the caller sends
  when the utterance is submitted (spec 2.1, [COMMUNITY] esp-adf #1570).

  INFERRED: once a header has been seen, later appends without one continue in that format,
  and an append that starts with ``RIFF`` starts a new stream with a new header (so a client
  may send one WAV file per push-to-talk turn).
* ``format: "ogg"`` is not supported by the emulator; the caller rejects it at ``chat.update``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..audio import Samples
from ..codecs import get_codec
from ..codecs.base import Codec
from ..codecs.g711 import alaw_decode, ulaw_decode
from ..codecs.opus import OPUS_RATES
from ..codecs.pcm import decode_pcm
from ..dsp.channels import to_mono
from ..errors import CodecError
from ..protocol.objects import InputAudio

__all__ = ["WAV_FORMAT_ERROR", "InputDecoder", "WavFormat", "parse_wav_header"]

#: The service's exact message for non-WAV audio under the default ``format: "wav"``.
WAV_FORMAT_ERROR = (
    "The parameter audio is invalid. It should follow the format: wav. "
    "or set input_audio via chat.update event. Please review your input."
)

_MAX_HEADER = 64 * 1024
_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What a WAV ``fmt `` chunk says: encoding tag, rate, channels, bits per sample."""

    tag: int
    rate: int
    channels: int
    bits: int


def parse_wav_header(buf: bytes) -> tuple[WavFormat, int] | None:
    """Parse a RIFF/WAVE header up to the start of the ``data`` payload.

    Returns:
        ``(format, offset of the first sample byte)``, or ``None`` if more bytes are needed.

    Raises:
        CodecError: not a WAVE header, or an encoding the emulator cannot decode.
    """
    if len(buf) < 12:
        return None
    if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise CodecError("not a RIFF/WAVE header")
    pos = 12
    fmt: WavFormat | None = None
    while True:
        if len(buf) < pos + 8:
            return None
        chunk, size = buf[pos : pos + 4], struct.unpack_from("<I", buf, pos + 4)[0]
        body = pos + 8
        if chunk == b"data":
            if fmt is None:
                raise CodecError("WAV data chunk before its fmt chunk")
            return fmt, body
        if len(buf) < body + size:
            return None
        if chunk == b"fmt ":
            fmt = _parse_fmt(buf[body : body + size])
        pos = body + size + (size & 1)


def _parse_fmt(raw: bytes) -> WavFormat:
    if len(raw) < 16:
        raise CodecError("WAV fmt chunk is too short")
    tag, channels, rate, _brate, _align, bits = struct.unpack_from("<HHIIHH", raw)
    if tag == _EXTENSIBLE and len(raw) >= 26:
        tag = struct.unpack_from("<H", raw, 24)[0]
    ok = (
        (tag == _PCM and bits in (8, 16, 24))
        or (tag == _FLOAT and bits == 32)
        or (tag in (_ALAW, _ULAW) and bits == 8)
    )
    if not ok or channels not in (1, 2) or rate <= 0:
        raise CodecError(
            f"unsupported WAV encoding (format tag {tag}, {bits} bits, {channels} channels)"
        )
    return WavFormat(tag, rate, channels, bits)


class _WavBody:
    """Decodes the sample bytes of one WAV stream, keeping partial frames between calls."""

    def __init__(self, fmt: WavFormat) -> None:
        self.fmt = fmt
        self._frame = fmt.bits // 8 * fmt.channels
        self._tail = b""

    def decode(self, data: bytes) -> Samples:
        data = self._tail + data
        cut = len(data) - len(data) % self._frame
        self._tail = data[cut:]
        data = data[:cut]
        ch = self.fmt.channels
        if self.fmt.tag == _FLOAT:
            x = np.frombuffer(data, dtype="<f4")
            pcm: Samples = np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)
        elif self.fmt.tag == _ALAW:
            pcm = alaw_decode(data)
        elif self.fmt.tag == _ULAW:
            pcm = ulaw_decode(data)
        else:
            pcm = decode_pcm(data, self.fmt.bits, 1)
        return to_mono(pcm if ch == 1 else pcm.reshape(-1, ch))


class InputDecoder:
    """Stateful decoder of one connection's appended audio.

    Args:
        cfg: the effective ``input_audio`` (every field set; see :mod:`.settings`).

    Raises:
        CodecError: the configuration cannot be decoded (for example ``format: "ogg"``).
    """

    def __init__(self, cfg: InputAudio) -> None:
        self.format = cfg.format or "wav"
        self.codec = cfg.codec or "pcm"
        self.channels = cfg.channel or 1
        self.bit_depth = cfg.bit_depth or 16
        self.rate = cfg.sample_rate or 24000
        #: The service's error message when the stream is not what ``format`` says.
        self.invalid: str | None = None
        self._codec: Codec | None = None
        self._wav: _WavBody | None = None
        self._header = b""
        if self.format == "ogg":
            raise CodecError("ogg input is not supported by the emulator")
        if self.format == "pcm":
            self._codec = self._raw_codec()

    def _raw_codec(self) -> Codec:
        if self.codec in ("g711a", "g711u"):
            self.rate = 8000
            return get_codec(self.codec, 8000)
        if self.codec == "opus":
            if self.rate not in OPUS_RATES:
                self.rate = 48000
            return get_codec("opus", self.rate, channels=self.channels)
        return get_codec("pcm", self.rate, channels=self.channels, bit_depth=self.bit_depth)

    def feed(self, data: bytes) -> Samples:
        """Decode one append's bytes into mono int16 at :attr:`rate` (possibly empty).

        Raises:
            CodecError: the bytes cannot be decoded (corrupt Opus packet, bad WAV header).
        """
        if self.format == "wav":
            return self._feed_wav(data)
        assert self._codec is not None
        return to_mono(self._codec.decode(data))

    def _feed_wav(self, data: bytes) -> Samples:
        if self._header or data[:4] == b"RIFF":
            return self._feed_header(self._header + data)
        if self._wav is not None:
            return self._wav.decode(data)
        # Raw bytes under format "wav": invalid, but keep them audible to the VAD.
        self.invalid = WAV_FORMAT_ERROR
        if self._codec is None:
            self._codec = get_codec("pcm", self.rate, channels=self.channels, bit_depth=16)
        return to_mono(self._codec.decode(data))

    def _feed_header(self, buf: bytes) -> Samples:
        try:
            parsed = parse_wav_header(buf)
        except CodecError:
            self._header = b""
            raise
        if parsed is None:
            if len(buf) > _MAX_HEADER:
                self._header = b""
                raise CodecError("WAV header is longer than 64 KiB")
            self._header = buf
            return np.zeros(0, dtype=np.int16)
        fmt, offset = parsed
        self._header = b""
        self._wav = _WavBody(fmt)
        self._codec = None
        self.invalid = None
        self.rate = fmt.rate
        return self._wav.decode(buf[offset:])
