"""ITU-T G.711 A-law and µ-law, through ``audioop`` where it exists and lookup tables.

Follows ITU-T Recommendation G.711 (11/1988), "Pulse code modulation (PCM) of voice
frequencies", Tables 1a/1b (A-law) and 2a/2b (µ-law), in the form of the widely used Sun
Microsystems ``g711.c`` reference: 16-bit linear input is reduced to 13 bits (A-law) or 14 bits
(µ-law) by an arithmetic right shift, A-law codes have their even bits inverted (XOR 0x55) and
µ-law codes have all bits inverted. These are the semantics of Python's former ``audioop``
(``lin2alaw``, ``alaw2lin``, ``lin2ulaw``, ``ulaw2lin``), with which the tables are bit-exact.

Coze accepts ``g711a`` / ``g711u`` only at 8000 Hz mono, one byte per sample (Coze voice
WebSocket reference, ``input_audio`` / ``output_audio.pcm_config``).

The tables are built once at import from the scalar reference functions below:
a 65536-entry uint8 encode table indexed by the sample's bits as uint16, and a 256-entry
int16 decode table. Transcoding between the two laws goes through linear
(``ulaw_encode(alaw_decode(x))``) and runs as a 256-byte ``bytes.translate`` table.

Which implementation runs: the ``audioop`` C module (the standard library's up to Python 3.12,
imported with its DeprecationWarning silenced; the byte-identical ``audioop-lts`` package from
3.13) where it can be imported, else the lookup tables, silently (:data:`HAVE_AUDIOOP`).
``*_lut`` functions always use the tables. Decoding always prefers ``audioop``; its output is
copied into a ``bytearray`` so that, as from the tables, the returned array is new and
writable. Encoding uses ``audioop`` below :data:`ENCODE_CROSSOVER` samples and the table from
there on, because ``audioop`` searches the segment per sample while the table costs one
gather plus a fixed numpy call overhead of about 1 µs.

Measured per call (timeit, µs, Python 3.11 stdlib ``audioop``, numpy 2.4; noise-like input at
speech level; encode by ``audioop`` also gets slower on louder input):

============  ============  ==========  =========  ============  ==========  =========
samples       encode table  encode      encode     decode table  decode      decode
              (``take``)    ``audioop`` this API   (``take``)    ``audioop`` this API
============  ============  ==========  =========  ============  ==========  =========
160 (20 ms)   1.2           0.44        0.68       1.15          0.11        0.64
320           1.35          0.82        1.1        1.2           0.17        0.74
400           1.4           1.05        1.4        1.25          0.20        0.77
800           1.75          2.1         1.8        1.65          0.38        1.0
2000          2.7           5.2         2.7        2.55          0.80        1.45
480000 (1 m)  350           4900        355        355-410       175         197
============  ============  ==========  =========  ============  ==========  =========

"This API" (:class:`G711Codec` and the module functions alike) includes the array wrapping:
``audioop`` returns ``bytes``, and turning them into a writable int16 array costs about 0.5 µs
per call, so per 20 ms frame decoding stays about 6x the bare ``audioop`` call (it was 14x
with the table alone). In bulk the copy makes decoding 0.9x the speed of ``audioop`` when the
allocator reuses memory, and down to 0.65x when every call has to fault in fresh pages.
Returning ``np.frombuffer`` views of the immutable ``bytes`` would save the copy (about
0.13 µs per frame, 1.0x of ``audioop`` in bulk), at the price of read-only arrays.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from voicegw.audio import Samples
from voicegw.codecs.base import Codec, check_samples
from voicegw.errors import CodecError, UnsupportedCodec

__all__ = [
    "ENCODE_CROSSOVER",
    "HAVE_AUDIOOP",
    "G711Codec",
    "alaw_decode",
    "alaw_decode_lut",
    "alaw_encode",
    "alaw_encode_lut",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_decode_lut",
    "ulaw_encode",
    "ulaw_encode_lut",
    "ulaw_to_alaw",
]

# Segment end points (G.711 Tables 1a and 2a): A-law on a 13-bit magnitude, µ-law on a
# 14-bit magnitude after the bias of 33 is added.
_SEG_AEND: Final = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_SEG_UEND: Final = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ULAW_BIAS: Final = 0x84  # 33 in 14-bit units, scaled to 16 bits
_ULAW_CLIP: Final = 8159  # largest 14-bit magnitude before the bias (G.711 Table 2a)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for seg, end in enumerate(ends):
        if value <= end:
            return seg
    return len(ends)


def _linear_to_alaw(sample: int) -> int:
    """A-law code for one 16-bit sample (G.711 Table 1a, even bits inverted)."""
    value = sample >> 3  # 13-bit two's complement
    if value >= 0:
        mask = 0xD5  # sign bit set for positive values, then even-bit inversion
    else:
        mask = 0x55
        value = -value - 1  # one's-complement magnitude, as in the A-law decision values
    seg = _segment(value, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    quant = (value >> 1) if seg < 2 else (value >> seg)
    return ((seg << 4) | (quant & 0x0F)) ^ mask


def _alaw_to_linear(code: int) -> int:
    """16-bit value for one A-law code (G.711 Table 1b, reconstruction at interval centre)."""
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


def _linear_to_ulaw(sample: int) -> int:
    """µ-law code for one 16-bit sample (G.711 Table 2a, all bits inverted)."""
    value = sample >> 2  # 14-bit two's complement
    if value < 0:
        value = -value
        mask = 0x7F
    else:
        mask = 0xFF
    value = min(value, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(value, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def _ulaw_to_linear(code: int) -> int:
    """16-bit value for one µ-law code (G.711 Table 2b)."""
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return (_ULAW_BIAS - t) if code & 0x80 else (t - _ULAW_BIAS)


def _encode_table(fn: Callable[[int], int]) -> NDArray[np.uint8]:
    # Index i is the uint16 view of a sample, so entry i encodes int16(i).
    return np.array([fn(i - 65536 if i >= 32768 else i) for i in range(65536)], dtype=np.uint8)


def _decode_table(fn: Callable[[int], int]) -> NDArray[np.int16]:
    return np.array([fn(c) for c in range(256)], dtype=np.int16)


_ALAW_ENC: Final = _encode_table(_linear_to_alaw)
_ULAW_ENC: Final = _encode_table(_linear_to_ulaw)
_ALAW_DEC: Final = _decode_table(_alaw_to_linear)
_ULAW_DEC: Final = _decode_table(_ulaw_to_linear)
_A2U: Final = _ULAW_ENC[_ALAW_DEC.view(np.uint16)].tobytes()
_U2A: Final = _ALAW_ENC[_ULAW_DEC.view(np.uint16)].tobytes()
for _table in (_ALAW_ENC, _ULAW_ENC, _ALAW_DEC, _ULAW_DEC):
    _table.flags.writeable = False


def _load_audioop() -> Any:
    """The ``audioop`` C module (stdlib up to 3.12, ``audioop-lts`` from 3.13), or ``None``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None


_Coder = Callable[[Any, int], bytes]
_audioop: Final = _load_audioop()
#: Whether the ``audioop`` C functions are used (see the module docstring); when ``False``
#: every call goes through the lookup tables.
HAVE_AUDIOOP: Final = _audioop is not None
_LIN2ALAW: Final[_Coder | None] = None if _audioop is None else _audioop.lin2alaw
_LIN2ULAW: Final[_Coder | None] = None if _audioop is None else _audioop.lin2ulaw
_ALAW2LIN: Final[_Coder | None] = None if _audioop is None else _audioop.alaw2lin
_ULAW2LIN: Final[_Coder | None] = None if _audioop is None else _audioop.ulaw2lin
#: Encodes of fewer samples than this go to ``audioop``; longer ones to the lookup table.
ENCODE_CROSSOVER: Final = 400
_INT16: Final = np.dtype(np.int16)
_UINT8: Final = np.dtype(np.uint8)
_UINT16: Final = np.dtype(np.uint16)


def _as_int16(samples: Samples) -> Samples:
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise CodecError("G.711 encodes int16 numpy arrays")
    return samples


def _from_linear(pcm: bytes) -> Samples:
    # bytearray: the result is writable, like the lookup tables' output
    return np.frombuffer(bytearray(pcm), dtype=_INT16)


def alaw_encode_lut(samples: Samples) -> bytes:
    """:func:`alaw_encode` through the 65536-entry lookup table only."""
    return _ALAW_ENC.take(_as_int16(samples).view(_UINT16)).tobytes()


def ulaw_encode_lut(samples: Samples) -> bytes:
    """:func:`ulaw_encode` through the 65536-entry lookup table only."""
    return _ULAW_ENC.take(_as_int16(samples).view(_UINT16)).tobytes()


def alaw_decode_lut(data: bytes) -> Samples:
    """:func:`alaw_decode` through the 256-entry lookup table only."""
    return _ALAW_DEC.take(np.frombuffer(data, dtype=_UINT8))


def ulaw_decode_lut(data: bytes) -> Samples:
    """:func:`ulaw_decode` through the 256-entry lookup table only."""
    return _ULAW_DEC.take(np.frombuffer(data, dtype=_UINT8))


def alaw_encode(samples: Samples) -> bytes:
    """Encode int16 samples to A-law, one byte per sample (any shape, C order)."""
    samples = _as_int16(samples)
    if _LIN2ALAW is not None and samples.size < ENCODE_CROSSOVER and samples.flags.c_contiguous:
        return _LIN2ALAW(samples, 2)
    return _ALAW_ENC.take(samples.view(_UINT16)).tobytes()


def ulaw_encode(samples: Samples) -> bytes:
    """Encode int16 samples to µ-law, one byte per sample (any shape, C order)."""
    samples = _as_int16(samples)
    if _LIN2ULAW is not None and samples.size < ENCODE_CROSSOVER and samples.flags.c_contiguous:
        return _LIN2ULAW(samples, 2)
    return _ULAW_ENC.take(samples.view(_UINT16)).tobytes()


def alaw_decode(data: bytes) -> Samples:
    """Decode A-law bytes to a new int16 array of shape ``(len(data),)``."""
    if _ALAW2LIN is None:
        return _ALAW_DEC.take(np.frombuffer(data, dtype=_UINT8))
    return _from_linear(_ALAW2LIN(data, 2))


def ulaw_decode(data: bytes) -> Samples:
    """Decode µ-law bytes to a new int16 array of shape ``(len(data),)``."""
    if _ULAW2LIN is None:
        return _ULAW_DEC.take(np.frombuffer(data, dtype=_UINT8))
    return _from_linear(_ULAW2LIN(data, 2))


def alaw_to_ulaw(data: bytes) -> bytes:
    """Transcode A-law bytes to µ-law through linear, byte for byte."""
    return bytes(data).translate(_A2U)


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode µ-law bytes to A-law through linear, byte for byte."""
    return bytes(data).translate(_U2A)


class G711Codec(Codec):
    """Stateless G.711 codec, 8000 Hz mono only.

    Args:
        law: ``"a"`` for A-law (registry name ``g711a``) or ``"u"`` for µ-law (``g711u``).
        sample_rate: must be 8000.
        channels: must be 1.

    Raises:
        UnsupportedCodec: any other rate, channel count or law.
    """

    def __init__(self, law: str, sample_rate: int = 8000, channels: int = 1) -> None:
        if law not in ("a", "u"):
            raise UnsupportedCodec(f"G.711 law must be 'a' or 'u', got {law!r}")
        if sample_rate != 8000 or channels != 1:
            raise UnsupportedCodec(
                f"g711{law} supports only 8000 Hz mono, got {sample_rate} Hz x{channels}"
            )
        self.name = f"g711{law}"
        self.sample_rate = 8000
        self.channels = 1
        self._enc = _ALAW_ENC if law == "a" else _ULAW_ENC
        self._dec = _ALAW_DEC if law == "a" else _ULAW_DEC
        self._lin2law = _LIN2ALAW if law == "a" else _LIN2ULAW
        self._law2lin = _ALAW2LIN if law == "a" else _ULAW2LIN

    def encode(self, samples: Samples) -> bytes:
        """Encode mono int16 samples, one byte per sample."""
        if type(samples) is not np.ndarray or samples.dtype != _INT16 or samples.ndim != 1:
            samples = check_samples(samples, 1)
        if (
            self._lin2law is not None
            and samples.shape[0] < ENCODE_CROSSOVER
            and samples.flags.c_contiguous
        ):
            return self._lin2law(samples, 2)
        return self._enc.take(samples.view(_UINT16)).tobytes()

    def decode(self, data: bytes) -> Samples:
        """Decode one byte per sample; any length is a whole number of samples."""
        if self._law2lin is None:
            return self._dec.take(np.frombuffer(data, dtype=_UINT8))
        return np.frombuffer(bytearray(self._law2lin(data, 2)), dtype=_INT16)

    @property
    def stateful(self) -> bool:
        """Always ``False``: every byte is one independent sample."""
        return False
