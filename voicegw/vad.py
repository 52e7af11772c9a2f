"""Local voice activity detection: a hysteresis state machine over webrtcvad frame decisions.

Two rules, as in h11's ``_state.py``: everything that changes the VAD's state lives in this
file, and it knows nothing about audio devices, sockets or clocks. Callers pass each frame
with ``now``, the monotonic time (s) at which its *last* sample was captured.

Theory of operation::

    device frame (any rate, 1-2 ch) --push--> PreRoll (device format, for SpeechStart.preroll)
        |
        +-> mono -> StreamResampler(rate -> 16 kHz) -> exact 10/20/30 ms frames -> classifier
                                                                                 |
                     QUIET -> STARTING -> SPEAKING -> STOPPING -> QUIET  <-------+
                                  \\-> QUIET        \\-> SPEAKING

* webrtcvad only accepts 8/16/32/48 kHz audio in 10, 20 or 30 ms frames; any other size
  *raises* ``webrtcvad.Error`` rather than returning False. Audio is therefore resampled to
  16 kHz (the cheapest rate with its full accuracy: about 3 µs per 20 ms frame, against 16 µs
  at 48 kHz) and cut into frames of exactly ``16000 * frame_ms / 1000`` samples by the
  resampler's output FIFO, whatever size the device frames have.
* **Start hysteresis**: ``start_frames`` voiced frames within the last ``start_ms`` (a
  sliding window of ``start_ms / frame_ms`` frames, kept as a bitmask). A single voiced frame
  moves QUIET to STARTING, which falls back to QUIET (a *false start*, counted) once the window
  holds no voiced frame. The reported onset is the start of the oldest voiced frame in the
  window that triggered, not the (later) moment of the decision. The hysteresis acts on
  webrtcvad's *decisions*, which are already smoothed: one 20 ms frame of speech in silence
  (or a click) comes out as 4-5 voiced decisions at mode 2-3 and 5-6 at mode 0-1, so the
  default 3 of 100 ms fires on it. ``start_frames=6, start_ms=160`` at mode 3 rejects every
  single-frame burst of the test sentence and still finds the sentence, at the cost of
  60 ms more detection latency there (120 ms instead of 60 ms; the pre-roll keeps the
  audio either way).
* **Stop hysteresis**: ``stop_ms`` of consecutive unvoiced frames (rounded up to whole
  frames). Any voiced frame in STOPPING returns to SPEAKING, so a pause between words shorter
  than ``stop_ms`` never ends the utterance. The reported end is the end of the last voiced
  frame; webrtcvad itself keeps flagging frames voiced for a while after speech stops (its
  hangover: 100-160 ms on the test sentence), so ``SpeechEnd.detected_at`` falls about that
  much after ``true end + stop_ms``. In noise the faint last phoneme may go undetected and
  the end comes up to about 100 ms early instead.
* **Warm-up**: webrtcvad starts with a default noise model and flags the first 70-120 ms of
  a stream that begins with steady noise as speech. Decisions during the first
  ``warmup_ms`` after construction or :meth:`Vad.reset` are therefore counted as unvoiced
  (the classifier still sees the frames, so it adapts). Speech that begins during the
  warm-up is detected once it is over, with a late onset; the pre-roll still holds its
  beginning.
* **Pre-roll**: every device frame also goes into a :class:`~voicegw.preroll.PreRoll` ring.
  :class:`SpeechStart` carries the audio from ``preroll_ms`` before the onset up to the end of
  the frame just processed, in the device's own format, so the caller can send it and then
  continue with the next live frame: no gap, no duplicate.

Times of internal frames are derived from sample counts: the 16 kHz sample ``j`` is placed at
``now - fed / rate + j / 16000`` where ``fed`` counts the device samples given so far (the
resampler compensates its own filter delay, so sample positions line up). After a gap in the
input (the microphone was muted or stopped), call :meth:`Vad.reset`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeAlias

import numpy as np
import webrtcvad

from .audio import Samples, ms_to_samples
from .dsp import QUALITIES, StreamResampler, to_mono
from .errors import ConfigError
from .preroll import PreRoll

__all__ = [
    "VAD_FRAME_MS",
    "VAD_RATE",
    "Classifier",
    "SpeechEnd",
    "SpeechStart",
    "Vad",
    "VadEvent",
    "VadState",
    "VadStats",
]

log = logging.getLogger(__name__)

#: Rate the classifier runs at, Hz.
VAD_RATE: Final = 16000
#: Frame lengths webrtcvad accepts, ms.
VAD_FRAME_MS: Final = (10, 20, 30)
#: Extra ring space beyond ``preroll_ms + start_ms``, ms: covers the resampler's held-back
#: output (about 21 ms for 48 kHz -> 16 kHz), a partly used classifier frame and device frames
#: up to about 200 ms, which all lie between the decision and the end of the pushed audio.
_RING_SLACK_MS: Final = 250.0

#: Decides whether one 16 kHz mono frame of exactly ``frame_ms`` is speech.
Classifier: TypeAlias = Callable[[Samples], bool]


class VadState(Enum):
    """Where the hysteresis machine is. Compare with ``is``."""

    QUIET = "quiet"
    """No speech; waiting for a voiced frame."""
    STARTING = "starting"
    """Voiced frames seen, not yet ``start_frames`` of them within ``start_ms``."""
    SPEAKING = "speaking"
    """An utterance is in progress and the last frame was voiced."""
    STOPPING = "stopping"
    """An utterance is in progress, followed by fewer than ``stop_ms`` of unvoiced frames."""


_Q, _ST, _SP, _SS = VadState.QUIET, VadState.STARTING, VadState.SPEAKING, VadState.STOPPING

#: Every legal transition; anything else is a bug in this file.
_TRANSITIONS: Final = frozenset(
    {(_Q, _ST), (_ST, _Q), (_ST, _SP), (_SP, _SS), (_SS, _SP), (_SS, _Q)}
)


@dataclass(frozen=True, slots=True, eq=False)
class SpeechStart:
    """An utterance began.

    Attributes:
        at: estimated onset, s on the caller's monotonic clock: the start of the oldest
            voiced frame in the window that triggered.
        preroll: device-format audio (the rate and shape given to :meth:`Vad.process`) from
            ``preroll_ms`` before ``at`` up to the end of the frame just processed, oldest
            first. Send it, then continue with the next frame.
        detected_at: end time of the frame that completed the start decision, s, on the same
            audio timeline (``detected_at - at`` is the detection latency). The event itself
            comes out of the :meth:`Vad.process` call whose ``now`` first covers that frame,
            later by at most one device frame plus the resampler's held-back output (about
            20 ms from 48 kHz).
    """

    at: float
    preroll: Samples
    detected_at: float


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """An utterance ended.

    Attributes:
        at: end of the last voiced frame, s.
        detected_at: end time of the frame that completed ``stop_ms`` of unvoiced audio, s.
    """

    at: float
    detected_at: float


VadEvent: TypeAlias = SpeechStart | SpeechEnd


@dataclass(slots=True)
class VadStats:
    """Counters, in classifier frames unless noted."""

    frames: int = 0
    voiced: int = 0
    starts: int = 0
    ends: int = 0
    false_starts: int = 0
    """Times STARTING fell back to QUIET without a SpeechStart."""


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Vad:
    """Hysteresis VAD over 16 kHz webrtcvad decisions, fed device frames and ``now``.

    Args:
        rate: sample rate of the frames given to :meth:`process`, Hz (any positive rate).
        channels: channels of those frames (shape ``(n,)`` when 1, else ``(n, channels)``).
        channel: which channel to listen to; ``None`` averages them.
        aggressiveness: webrtcvad mode 0 (least) to 3 (most aggressive about rejecting
            non-speech). Use 2 or 3 when the microphone hears steady noise.
        frame_ms: classifier frame, 10, 20 or 30 ms.
        start_frames: voiced frames needed within ``start_ms`` to start.
        start_ms: length of the start window, ms (rounded to whole frames).
        stop_ms: unvoiced audio that ends an utterance, ms (rounded up to whole frames).
        preroll_ms: audio before the onset included in :attr:`SpeechStart.preroll`, ms.
        warmup_ms: after construction or :meth:`reset`, classifier decisions are ignored
            (counted as unvoiced) for this long, ms, while webrtcvad adapts its noise model:
            on a stream that starts with steady noise it flags the first 70-120 ms as speech.
        classifier: replaces webrtcvad (then ``aggressiveness`` is unused); it is called with
            each 16 kHz mono int16 frame of exactly ``frame_ms``.
        quality: resampler quality (see :data:`voicegw.dsp.QUALITIES`).

    Raises:
        ConfigError: a parameter is out of range; the message names it and the allowed values.
    """

    def __init__(
        self,
        rate: int = VAD_RATE,
        channels: int = 1,
        *,
        channel: int | None = None,
        aggressiveness: int = 2,
        frame_ms: int = 20,
        start_frames: int = 3,
        start_ms: float = 100.0,
        stop_ms: float = 500.0,
        preroll_ms: float = 300.0,
        warmup_ms: float = 200.0,
        classifier: Classifier | None = None,
        quality: str = "HQ",
    ) -> None:
        if not _positive_int(rate):
            raise ConfigError(f"must be a positive integer in Hz, got {rate!r}", key="rate")
        if not _positive_int(channels):
            raise ConfigError(f"must be a positive integer, got {channels!r}", key="channels")
        if channel is not None and not -channels <= channel < channels:
            raise ConfigError(f"{channel} is out of range for {channels} channels", key="channel")
        if classifier is None and (
            not isinstance(aggressiveness, int)
            or isinstance(aggressiveness, bool)
            or aggressiveness not in (0, 1, 2, 3)
        ):
            raise ConfigError(
                f"must be 0, 1, 2 or 3 (the webrtcvad mode), got {aggressiveness!r}",
                key="aggressiveness",
            )
        if isinstance(frame_ms, bool) or frame_ms not in VAD_FRAME_MS:
            raise ConfigError(
                f"webrtcvad accepts only 10, 20 or 30 ms frames, got {frame_ms!r}", key="frame_ms"
            )
        if not _positive_int(start_frames):
            raise ConfigError(
                f"must be a positive integer, got {start_frames!r}", key="start_frames"
            )
        window = round(start_ms / frame_ms) if math.isfinite(start_ms) else 0
        if window < start_frames:
            raise ConfigError(
                f"{start_ms} ms holds {window} frames of {frame_ms} ms, fewer than "
                f"start_frames={start_frames}",
                key="start_ms",
            )
        if not (math.isfinite(stop_ms) and stop_ms > 0):
            raise ConfigError(f"must be a positive number of ms, got {stop_ms}", key="stop_ms")
        if not (math.isfinite(preroll_ms) and preroll_ms >= 0):
            raise ConfigError(f"must be >= 0 ms, got {preroll_ms}", key="preroll_ms")
        if not (math.isfinite(warmup_ms) and warmup_ms >= 0):
            raise ConfigError(f"must be >= 0 ms, got {warmup_ms}", key="warmup_ms")
        if quality not in QUALITIES:
            raise ConfigError(f"must be one of {QUALITIES}, got {quality!r}", key="quality")

        self.rate = rate
        self.channels = channels
        self.channel = channel
        self.frame_ms = int(frame_ms)
        self.start_frames = start_frames
        #: Frames in the start window.
        self.start_window = window
        #: Consecutive unvoiced frames that end an utterance.
        self.stop_frames = max(1, math.ceil(stop_ms / frame_ms - 1e-9))
        self.preroll_ms = float(preroll_ms)
        #: Classifier frames ignored after construction or reset.
        self.warmup_frames = math.ceil(warmup_ms / frame_ms - 1e-9)
        self.stats = VadStats()

        self._frame_len = ms_to_samples(self.frame_ms, VAD_RATE)
        self._frame_s = self.frame_ms / 1000.0
        self._window_bits = (1 << window) - 1
        self._aggressiveness = aggressiveness
        self._custom = classifier
        self._classify: Classifier = classifier or self._webrtc(aggressiveness)
        self._resampler = StreamResampler(rate, VAD_RATE, channels=1, quality=quality)
        self._preroll = PreRoll(
            rate, preroll_ms + window * self.frame_ms + _RING_SLACK_MS, channels=channels
        )
        self._state = VadState.QUIET
        self._fed = 0  # device samples (per channel) given to process()
        self._done = 0  # classifier frames since the last reset
        self._mask = 0  # bit i set: the frame i frames ago was voiced (start window only)
        self._unvoiced = 0  # consecutive unvoiced frames while STOPPING
        self._last_voiced_end = 0.0

    # ------------------------------------------------------------ state
    @property
    def state(self) -> VadState:
        """The current :class:`VadState`."""
        return self._state

    @property
    def active(self) -> bool:
        """Whether an utterance is in progress (SPEAKING or STOPPING): stream the frames."""
        return self._state is VadState.SPEAKING or self._state is VadState.STOPPING

    # ------------------------------------------------------------ input
    def process(self, frame: Samples, now: float) -> list[VadEvent]:
        """Feed one device frame captured up to ``now``.

        The frame may have any length; it is resampled and cut into classifier frames, so
        one call may classify zero, one or several of them. The array is read later from the
        resampler's FIFO when no resampling is needed, so do not modify it after the call.

        Args:
            frame: int16, shape ``(n,)`` or ``(n, channels)`` as configured.
            now: monotonic time of the frame's last sample, s.

        Returns:
            The events the frame completed, in order (usually none).

        Raises:
            TypeError: ``frame`` is not an int16 array.
            ValueError: ``frame`` does not have the configured shape.
        """
        self._preroll.push(frame)  # validates dtype and shape
        mono = frame if frame.ndim == 1 else self._downmix(frame)
        self._fed += mono.shape[0]
        rs = self._resampler
        rs.write(mono)
        n = self._frame_len
        if rs.available < n:
            return []
        origin = now - self._fed / self.rate
        events: list[VadEvent] = []
        while (chunk := rs.pull(n)) is not None:
            self._done += 1
            voiced = self._classify(chunk) and self._done > self.warmup_frames
            event = self._step(voiced, origin + self._done * self._frame_s, now)
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        """Forget all audio and return to QUIET without an event.

        An utterance in progress is dropped, the pre-roll is emptied, the webrtcvad engine is
        recreated and the warm-up applies again. Use after a gap in the input (the
        microphone was muted or restarted), so that frame times stay right.
        """
        if self._state is not VadState.QUIET:
            log.debug("= vad %s -> QUIET (reset)", self._state.name)
        self._state = VadState.QUIET
        self._resampler.reset()
        self._preroll.clear()
        if self._custom is None:
            self._classify = self._webrtc(self._aggressiveness)
        self._fed = 0
        self._done = 0
        self._mask = 0
        self._unvoiced = 0

    def _downmix(self, frame: Samples) -> Samples:
        if self.channel is None and frame.shape[1] == 2:
            # The same floor average as dsp.to_mono, as one column add: a reduction along
            # axis 1 of an (n, 2) array costs about 4x more (16 µs against 3.5 µs at 960x2).
            mono: Samples = np.right_shift(
                np.add(frame[:, 0], frame[:, 1], dtype=np.int32), 1
            ).astype(np.int16)
            return mono
        return to_mono(frame, self.channel)

    @staticmethod
    def _webrtc(mode: int) -> Classifier:
        engine = webrtcvad.Vad(mode)

        def classify(frame: Samples) -> bool:
            # Bytes, not the array: webrtcvad takes len(buf) / 2 as the sample count, so an
            # int16 array would silently be classified on its first half only.
            return bool(engine.is_speech(frame.tobytes(), VAD_RATE))

        return classify

    # ------------------------------------------------------------ the machine
    def _step(self, voiced: bool, end: float, now: float) -> VadEvent | None:
        """Advance by one classifier frame ending at ``end`` (s)."""
        stats = self.stats
        stats.frames += 1
        mask = ((self._mask << 1) | voiced) & self._window_bits
        self._mask = mask
        state = self._state
        if voiced:
            stats.voiced += 1
        if state is VadState.QUIET:
            if not voiced:
                return None
            state = self._move(VadState.STARTING)
        if state is VadState.STARTING:
            if mask == 0:
                stats.false_starts += 1
                self._move(VadState.QUIET)
                return None
            if mask.bit_count() < self.start_frames:
                return None
            self._move(VadState.SPEAKING)
            stats.starts += 1
            self._last_voiced_end = end
            onset = end - mask.bit_length() * self._frame_s
            keep = round((self.preroll_ms / 1000.0 + now - onset) * self.rate)
            return SpeechStart(onset, self._preroll.take(keep), end)
        if voiced:
            self._last_voiced_end = end
            if state is VadState.STOPPING:
                self._move(VadState.SPEAKING)
            return None
        if state is VadState.SPEAKING:
            self._unvoiced = 0
            self._move(VadState.STOPPING)
        self._unvoiced += 1
        if self._unvoiced < self.stop_frames:
            return None
        self._move(VadState.QUIET)
        self._mask = 0  # a new utterance needs a fresh start window
        stats.ends += 1
        return SpeechEnd(self._last_voiced_end, end)

    def _move(self, new: VadState) -> VadState:
        old = self._state
        if (old, new) not in _TRANSITIONS:  # pragma: no cover - guards this file's logic
            raise AssertionError(f"illegal VAD transition {old.name} -> {new.name}")
        log.debug("= vad %s -> %s", old.name, new.name)
        self._state = new
        return new
