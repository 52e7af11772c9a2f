"""The input side of one connection: decode appends, buffer them, find utterances.

Sans-I/O and clock-free: :class:`Listener` is fed the bytes of each
``input_audio_buffer.append`` and reports what the audio timeline says.

* **Push-to-talk** (``client_interrupt``, spec 2.6.3): audio accumulates (at most
  :data:`MAX_BUFFER_S`; older audio is dropped beyond that) until :meth:`Listener.commit`,
  which returns the whole buffer as an :class:`Utterance` whose ``speech_s`` is the span from
  the first confirmed onset to the end of the last voiced frame (0 when silent).
* **Server / semantic VAD** (spec 2.6.4, 2.6.5): an :class:`~.vad.EnergyVad` runs over the
  stream. :meth:`Listener.append` returns :class:`Heard` at a confirmed onset,
  :class:`Interim` every :data:`~.asr.INTERIM_EVERY_S` of speech, and an :class:`Utterance`
  once the end-of-turn silence has passed. The committed audio runs from ``prefix_padding_ms``
  before the onset (as much as the stream has) to the end of the last voiced frame, so its
  length is prefix + speech. An utterance longer than :data:`MAX_UTTERANCE_S` is ended there.
  The end-of-turn silence is asked of ``end_silence_ms()`` at each onset, so the caller can
  apply the semantic judge.

When the stream is not what ``input_audio.format`` says (raw bytes under the default ``wav``),
the audio is still segmented, and the events carry the service's error text in ``invalid``;
the caller answers with error 4000 at submit time (PTT) or at the onset (VAD).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio import Samples
from ..protocol.objects import InputAudio
from .asr import INTERIM_EVERY_S
from .inbound import InputDecoder
from .vad import DEFAULT_THRESHOLD_DBFS, EnergyVad, SpeechEnd, SpeechStart, find_speech

__all__ = ["MAX_BUFFER_S", "MAX_UTTERANCE_S", "Heard", "Interim", "Listener", "Utterance"]

#: Longest push-to-talk buffer kept; older audio is dropped.
MAX_BUFFER_S = 120.0
#: Longest VAD utterance; it is ended there as if silence had followed.
MAX_UTTERANCE_S = 60.0


@dataclass(frozen=True, slots=True)
class Heard:
    """VAD onset confirmed. ``invalid`` is set when the stream's format is wrong."""

    invalid: str | None = None


@dataclass(frozen=True, slots=True)
class Interim:
    """Another :data:`~.asr.INTERIM_EVERY_S` of speech; ``speech_s`` so far."""

    speech_s: float


@dataclass(frozen=True, slots=True)
class Utterance:
    """A committed utterance: mono audio at ``rate``, its voiced span, and format validity."""

    audio: Samples
    rate: int
    speech_s: float
    invalid: str | None = None


class _Store:
    """Audio kept with absolute sample positions; can drop what is no longer needed."""

    def __init__(self) -> None:
        self.chunks: list[Samples] = []
        self.start = 0  # absolute position of chunks[0][0]
        self.end = 0

    def add(self, samples: Samples) -> None:
        if samples.size:
            self.chunks.append(samples)
            self.end += samples.shape[0]

    def slice(self, lo: int, hi: int) -> Samples:
        lo = max(lo, self.start)
        if hi <= lo or not self.chunks:
            return np.zeros(0, dtype=np.int16)
        whole = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        return whole[lo - self.start : hi - self.start].copy()

    def trim(self, keep_from: int) -> int:
        """Drop whole chunks that end before ``keep_from``; returns samples dropped."""
        dropped = 0
        while self.chunks and self.start + self.chunks[0].shape[0] <= keep_from:
            n = self.chunks.pop(0).shape[0]
            self.start += n
            dropped += n
        return dropped


class Listener:
    """Decoder + buffer + VAD for one connection's input audio.

    Args:
        input_audio: the effective ``input_audio``.
        vad: ``True`` for server/semantic VAD, ``False`` for push-to-talk.
        prefix_padding_ms: audio kept before a VAD onset.
        end_silence_ms: asked at each onset for the silence that will end that utterance.
        threshold_dbfs: the VAD's speech level.

    Raises:
        voicegw.errors.CodecError: the input format cannot be decoded.
    """

    def __init__(
        self,
        input_audio: InputAudio,
        *,
        vad: bool,
        prefix_padding_ms: float = 600.0,
        end_silence_ms: Callable[[], float] = lambda: 500.0,
        threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
    ) -> None:
        self.decoder = InputDecoder(input_audio)
        self.vad_mode = vad
        self.prefix_padding_ms = prefix_padding_ms
        self._end_silence_ms = end_silence_ms
        self.threshold_dbfs = threshold_dbfs
        self.dropped = 0
        self._reset(self.decoder.rate)

    @property
    def rate(self) -> int:
        """Sample rate of the decoded audio."""
        return self._rate

    def _reset(self, rate: int) -> None:
        self._rate = rate
        self._store = _Store()
        self._vad = EnergyVad(rate, threshold_dbfs=self.threshold_dbfs) if self.vad_mode else None
        self._interims = 0
        self._invalid: str | None = None

    def append(self, data: bytes) -> list[Heard | Interim | Utterance]:
        """Decode and take in one append's bytes.

        Raises:
            voicegw.errors.CodecError: the bytes cannot be decoded.
        """
        samples = self.decoder.feed(data)
        if self.decoder.rate != self._rate:
            if self._store.end > self._store.start:
                self.dropped += self._store.end - self._store.start
            self._reset(self.decoder.rate)
        if self.decoder.invalid is not None and samples.size:
            self._invalid = self.decoder.invalid
        self._store.add(samples)
        if self._vad is None:
            limit = round(MAX_BUFFER_S * self._rate)
            self.dropped += self._store.trim(self._store.end - limit)
            return []
        return self._segment(samples, self._vad)

    def _segment(self, samples: Samples, vad: EnergyVad) -> list[Heard | Interim | Utterance]:
        out: list[Heard | Interim | Utterance] = []
        for ev in vad.feed(samples):
            if isinstance(ev, SpeechStart):
                vad.end_silence_ms = self._end_silence_ms()
                self._interims = 0
                out.append(Heard(self._invalid))
            else:
                out.append(self._finish(ev))
        if vad.speech_samples:
            due = int(vad.speech_samples / self._rate / INTERIM_EVERY_S + 1e-9)
            while self._interims < due:
                self._interims += 1
                out.append(Interim(self._interims * INTERIM_EVERY_S))
            if vad.speech_samples >= MAX_UTTERANCE_S * self._rate:
                end = vad.force_end()
                if end is not None:
                    out.append(self._finish(end))
        else:
            keep = vad.position - round((self.prefix_padding_ms / 1000 + 0.1) * self._rate)
            self._store.trim(keep)
        return out

    def _finish(self, ev: SpeechEnd) -> Utterance:
        lo = ev.onset - round(self.prefix_padding_ms * self._rate / 1000)
        audio = self._store.slice(lo, ev.end)
        utt = Utterance(audio, self._rate, (ev.end - ev.onset) / self._rate, self._invalid)
        self._invalid = self.decoder.invalid
        return utt

    def commit(self) -> Utterance:
        """Push-to-talk: take the whole buffer as one utterance and start a new one."""
        audio = self._store.slice(self._store.start, self._store.end)
        found = find_speech(audio, self._rate, threshold_dbfs=self.threshold_dbfs)
        speech_s = 0.0 if found is None else (found[1] - found[0]) / self._rate
        utt = Utterance(audio, self._rate, speech_s, self._invalid)
        self.clear()
        return utt

    def clear(self) -> None:
        """Discard buffered audio (``input_audio_buffer.clear``)."""
        self._store = _Store()
        if self._vad is not None:
            self._vad = EnergyVad(self._rate, threshold_dbfs=self.threshold_dbfs)
        self._invalid = self.decoder.invalid if self.decoder.invalid and self.vad_mode else None
