"""Signal processing on int16 sample arrays: resampling, channel mixing and gain.

Everything here is synchronous and pure (no I/O, no clocks): resampling follows libsoxr's
polyphase design (:mod:`voicegw.dsp.resample`), channel layout follows the interleaved order
of the Coze voice WebSocket reference and WAVE (:mod:`voicegw.dsp.channels`), and float
samples are rounded and saturated to int16 by :mod:`voicegw.dsp.convert`.
"""

from __future__ import annotations

from voicegw.dsp.channels import apply_gain, db_to_gain, num_channels, to_channels, to_mono
from voicegw.dsp.convert import float_to_int16
from voicegw.dsp.resample import QUALITIES, StreamResampler, resample

__all__ = [
    "QUALITIES",
    "StreamResampler",
    "apply_gain",
    "db_to_gain",
    "float_to_int16",
    "num_channels",
    "resample",
    "to_channels",
    "to_mono",
]
