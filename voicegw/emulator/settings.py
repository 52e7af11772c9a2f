"""The effective session configuration: what ``chat.updated`` echoes (spec 2.2, 2.4 D2, 2.7).

``chat.update`` payloads deep-merge (:func:`voicegw.protocol.schema.merge`; INFERRED in spec
2.1). The connection keeps the merge of everything the *client* sent, and :func:`effective`
derives the full configuration from it:

* start from :data:`~voicegw.protocol.objects.DEFAULTS` (input wav/pcm/24000/1/16, output
  pcm 24000, client_interrupt 600/500 ms, ASR ddc/itn/punc on, ...);
* fill sub-object defaults where they apply: ``opus_config`` (48000 bit/s, VBR, 10 ms) when the
  output codec is ``opus``; ``mp3_config`` (44100 Hz, and the emulator's 48000 bit/s bit rate,
  since the spec gives no default) when it is ``mp3``; ``pcm_config.sample_rate`` 8000 for
  G.711; ``semantic_vad_config`` (300/500 ms) for ``semantic_vad``; ``emotion_scale`` 4.0 when
  ``emotion_config`` is present;
* echo ``event_subscriptions``, ``need_play_prologue`` and ``prologue_content`` (INFERRED,
  spec 9.1);
* drop the default ``pcm_config`` when the codec is ``opus`` or ``mp3`` and the client never
  sent one (the docs' ``chat.updated`` example for opus shows only ``opus_config``);
* unknown keys the client sent are ignored: they are not echoed.

Rules checked across fields, which a single update cannot see (each raises
:class:`~voicegw.errors.RemoteProtocolError` naming the field, sent as error 4000):

* G.711 needs ``sample_rate`` 8000 (input and output) and ``input_audio.format`` ``pcm``;
* ``input_audio.format: "ogg"`` is refused: the emulator cannot decode Ogg (a limitation of the
  emulator, not of the service).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import RemoteProtocolError
from ..protocol.objects import (
    DEFAULTS,
    EMOTION_DEFAULTS,
    MP3_DEFAULTS,
    OPUS_DEFAULTS,
    SEMANTIC_VAD_DEFAULTS,
    ChatUpdateData,
    PCMConfig,
)
from ..protocol.schema import EXTRA, merge

__all__ = ["MP3_DEFAULT_BIT_RATE", "OGG_UNSUPPORTED", "effective", "strip_unknown"]

#: The emulator's MP3 bit rate when ``mp3_config.bit_rate`` is not set (bit/s).
MP3_DEFAULT_BIT_RATE = 48000
#: Error text for Ogg input.
OGG_UNSUPPORTED = (
    "ogg input is not supported by the voicegw emulator; use format pcm "
    "(codec pcm, g711a, g711u or opus) or wav"
)

T = TypeVar("T")


def strip_unknown(obj: T) -> T:
    """A copy of a schema object with every unknown key (``extra``) removed, recursively."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return obj
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == EXTRA:
            if value:
                changes[EXTRA] = {}
        elif dataclasses.is_dataclass(value):
            changes[f.name] = strip_unknown(value)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(strip_unknown(v) for v in value)
    return dataclasses.replace(obj, **changes)


def _bad(path: str, reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(reason, event_type="chat.update", path=f"data.{path}")


def effective(client: ChatUpdateData) -> ChatUpdateData:
    """The full configuration for what the client has sent so far.

    Raises:
        RemoteProtocolError: a rule across fields is broken (see the module docstring).
    """
    client = strip_unknown(client)
    cfg = merge(DEFAULTS, client)
    sent_in = client.input_audio
    sent_out = client.output_audio
    inp = cfg.input_audio
    out = cfg.output_audio
    td = cfg.turn_detection
    assert inp is not None and out is not None and td is not None

    if inp.format == "ogg":
        raise _bad("input_audio.format", OGG_UNSUPPORTED)
    if inp.codec in ("g711a", "g711u"):
        if sent_in is not None and sent_in.sample_rate not in (None, 8000):
            raise _bad("input_audio.sample_rate", f"G.711 needs 8000, got {sent_in.sample_rate}")
        if inp.format != "pcm":
            raise _bad("input_audio.format", f"G.711 needs format 'pcm', got {inp.format!r}")
        inp = dataclasses.replace(inp, sample_rate=8000)

    sent_pcm = sent_out.pcm_config if sent_out is not None else None
    if out.codec in ("g711a", "g711u"):
        rate = sent_pcm.sample_rate if sent_pcm is not None else None
        if rate not in (None, 8000):
            raise _bad("output_audio.pcm_config.sample_rate", f"G.711 needs 8000, got {rate}")
        out = dataclasses.replace(
            out, pcm_config=dataclasses.replace(out.pcm_config or PCMConfig(), sample_rate=8000)
        )
    elif out.codec in ("opus", "mp3") and sent_pcm is None:
        out = dataclasses.replace(out, pcm_config=None)
    if out.codec == "opus":
        out = dataclasses.replace(out, opus_config=merge(OPUS_DEFAULTS, out.opus_config))
    if out.codec == "mp3":
        mp3 = merge(MP3_DEFAULTS, out.mp3_config) or MP3_DEFAULTS
        if mp3.bit_rate is None:
            mp3 = dataclasses.replace(mp3, bit_rate=MP3_DEFAULT_BIT_RATE)
        out = dataclasses.replace(out, mp3_config=mp3)
    if out.emotion_config is not None:
        out = dataclasses.replace(out, emotion_config=merge(EMOTION_DEFAULTS, out.emotion_config))
    if td.type == "semantic_vad":
        td = dataclasses.replace(
            td, semantic_vad_config=merge(SEMANTIC_VAD_DEFAULTS, td.semantic_vad_config)
        )
    return dataclasses.replace(cfg, input_audio=inp, output_audio=out, turn_detection=td)
