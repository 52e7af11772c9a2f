"""Codec registry: codec name → :class:`~voicegw.codecs.base.Codec` instance.

Names are the ``codec`` values of the Coze voice WebSocket reference (``input_audio.codec``
and ``output_audio.codec``): ``pcm``, ``g711a``, ``g711u`` (ITU-T G.711), ``opus`` (RFC 6716)
and ``mp3`` (ISO/IEC 11172-3 / 13818-3).

Example::

    codec = get_codec("opus", sample_rate=16000, frame_size_ms=20)
    packet = codec.encode(frame)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

from voicegw.audio import API_RATES
from voicegw.codecs.base import Codec
from voicegw.codecs.g711 import G711Codec
from voicegw.codecs.mp3 import MP3_RATES, Mp3Codec
from voicegw.codecs.opus import FRAME_SIZES_MS, OPUS_RATES, OpusCodec
from voicegw.codecs.pcm import BIT_DEPTHS, PcmCodec
from voicegw.errors import UnsupportedCodec

__all__ = ["CODECS", "DEFAULT_RATES", "Codec", "describe", "get_codec"]

#: Every codec name :func:`get_codec` knows.
CODECS: Final = ("pcm", "g711a", "g711u", "mp3", "opus")

#: Sample rate used when :func:`get_codec` is not given one (Coze's defaults; 8000 for G.711).
DEFAULT_RATES: Final = {"pcm": 24000, "g711a": 8000, "g711u": 8000, "mp3": 44100, "opus": 24000}


class _Spec(NamedTuple):
    rates: tuple[int, ...]
    channels: tuple[int, ...]
    depths: tuple[int, ...]
    options: tuple[str, ...]
    factory: Callable[[int, int, int, dict[str, Any]], Codec]


_SPECS: Final = {
    "pcm": _Spec(API_RATES, (1, 2), BIT_DEPTHS, (), lambda r, c, d, o: PcmCodec(r, c, d)),
    "g711a": _Spec((8000,), (1,), (8, 16), (), lambda r, c, d, o: G711Codec("a", r, c)),
    "g711u": _Spec((8000,), (1,), (8, 16), (), lambda r, c, d, o: G711Codec("u", r, c)),
    "mp3": _Spec(
        MP3_RATES,
        (1, 2),
        (16,),
        ("bitrate", "quality", "skip_leading"),
        lambda r, c, d, o: Mp3Codec(r, c, **o),
    ),
    "opus": _Spec(
        OPUS_RATES,
        (1, 2),
        (16,),
        ("frame_size_ms", "bitrate", "use_cbr", "application", "decode_rate"),
        lambda r, c, d, o: OpusCodec(r, c, **o),
    ),
}


def describe(name: str) -> str:
    """One line listing what codec ``name`` supports (used in error messages).

    Raises:
        UnsupportedCodec: ``name`` is not in :data:`CODECS`.
    """
    if name not in _SPECS:
        raise UnsupportedCodec(f"unknown codec {name!r}; supported codecs: {', '.join(CODECS)}")
    spec = _SPECS[name]
    text = f"{name}: sample_rate in {spec.rates}, channels in {spec.channels}, "
    text += f"bit_depth in {spec.depths}"
    if name == "opus":
        text += f", frame_size_ms in {FRAME_SIZES_MS}"
    return text + (f", options {', '.join(spec.options)}" if spec.options else "")


def get_codec(
    name: str,
    sample_rate: int | None = None,
    channels: int = 1,
    bit_depth: int = 16,
    **opts: Any,
) -> Codec:
    """Create a fresh codec instance.

    Args:
        name: one of :data:`CODECS` (case-sensitive, as on the wire).
        sample_rate: Hz; ``None`` means ``DEFAULT_RATES[name]``.
        channels: 1 or 2 (G.711: 1 only).
        bit_depth: PCM sample width on the wire: 8, 16 or 24 for ``pcm``. ``g711a``/``g711u``
            accept 8 (the wire width) or 16 (the decoded width); ``mp3``/``opus`` only 16.
        **opts: codec options: ``mp3`` takes ``bitrate`` (bit/s), ``quality``,
            ``skip_leading``; ``opus`` takes ``frame_size_ms``, ``bitrate``, ``use_cbr``,
            ``application`` and ``decode_rate`` (the rate :meth:`Codec.decode` returns, e.g.
            48000 for libopus's native output with no decimation; see
            :class:`~voicegw.codecs.opus.OpusCodec`).

    Raises:
        UnsupportedCodec: unknown name, option, rate, depth or channel count; the message
            lists what is supported.
    """
    if name not in _SPECS:
        raise UnsupportedCodec(f"unknown codec {name!r}; supported codecs: {', '.join(CODECS)}")
    spec = _SPECS[name]
    rate = DEFAULT_RATES[name] if sample_rate is None else sample_rate
    problems = []
    if rate not in spec.rates:
        problems.append(f"sample_rate {rate}")
    if channels not in spec.channels:
        problems.append(f"channels {channels}")
    if bit_depth not in spec.depths:
        problems.append(f"bit_depth {bit_depth}")
    problems.extend(f"option {key!r}" for key in opts if key not in spec.options)
    if problems:
        raise UnsupportedCodec(f"unsupported {', '.join(problems)}; {describe(name)}")
    try:
        return spec.factory(rate, channels, bit_depth, opts)
    except UnsupportedCodec as exc:
        raise UnsupportedCodec(f"{exc}; {describe(name)}") from exc
