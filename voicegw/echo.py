"""Echo guard: what the microphone does while the speaker plays, as an explicit policy.

A device without acoustic echo cancellation (AEC) hears its own replies. Left implicit, that
is the most common failure of voice devices (peers.md, pain point #1): the reply reaches the
server's VAD (or ours), which reports the user speaking, and the device interrupts itself.
The policy is therefore chosen explicitly, and the guard is a small state machine fed
``playback(active, now)`` edges and microphone frames with their capture time::

    OPEN --playback on--> PLAYING --playback off--> TAIL --tail_ms elapsed--> OPEN
                             ^                        |
                             +------playback on-------+

Policies, applied by :meth:`EchoGuard.gate` in PLAYING and TAIL (OPEN always passes):

* ``half_duplex``: the frame is dropped (``None``). The tail covers the audio still in the
  output device's buffer when playback stops plus the room's reverberation. The user cannot
  barge in by voice while the device speaks; a button press still can.
* ``duck``: the frame is attenuated by ``duck_db`` (a negative gain). The echo usually falls
  below a VAD's threshold while a user close to the microphone can still barge in. It is a
  compromise and not safe on loud speakers.
* ``full_duplex``: everything passes. Only for hardware (or PipeWire/WebRTC APM) AEC, or when
  echo cannot reach the uplink anyway.

Defaults (:func:`default_policy`), reasoned per turn mode:

* ``ptt`` -> ``full_duplex``. With push-to-talk the microphone is streamed only while the
  button is held, and a press cancels the reply and flushes playback first (with a fade of at
  most one device period). Echo therefore cannot overlap the uplink except for the output
  device's own latency (tens of ms, already faded), and there is no VAD for it to trigger.
  ``half_duplex`` would be actively wrong: the press stops playback, so the tail starts at the
  press and mutes the first ``tail_ms`` of what the user says, which is exactly the first
  syllable the pre-roll exists to save.
* ``server_vad``, ``semantic_vad`` and ``local_vad`` -> ``half_duplex``. The microphone
  streams all the time, so a reply would reach the VAD and cut itself off; muting during
  playback plus a tail is the only safe choice without AEC. Its cost (no voice barge-in)
  is the price of not talking to itself.
* With ``aec=True`` every mode gets ``full_duplex``.

A muted frame is ``None``: the caller sends nothing, or digital silence when the uplink must
stay continuous, and should not feed the frame to a local VAD either (reset the VAD when the
guard opens again; see :meth:`voicegw.vad.Vad.reset`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal, TypeAlias, get_args

from .audio import Samples
from .dsp import apply_gain, db_to_gain
from .errors import ConfigError

__all__ = [
    "EchoGuard",
    "EchoPolicy",
    "EchoState",
    "EchoStats",
    "TurnMode",
    "default_policy",
]

log = logging.getLogger(__name__)

EchoPolicy: TypeAlias = Literal["half_duplex", "full_duplex", "duck"]
#: Turn modes :func:`default_policy` knows: the config's three plus a local VAD.
TurnMode: TypeAlias = Literal["ptt", "server_vad", "semantic_vad", "local_vad"]

_POLICIES: Final = get_args(EchoPolicy)
_TURN_MODES: Final = get_args(TurnMode)


class EchoState(Enum):
    """Where the guard is. Compare with ``is``."""

    OPEN = "open"
    """The speaker is silent and the tail has passed: the microphone passes."""
    PLAYING = "playing"
    """The speaker is playing."""
    TAIL = "tail"
    """Playback stopped less than ``tail_ms`` ago."""


#: (state, playback active) -> next state, for :meth:`EchoGuard.playback` edges.
_ON_PLAYBACK: Final = {
    (EchoState.OPEN, True): EchoState.PLAYING,
    (EchoState.OPEN, False): EchoState.OPEN,
    (EchoState.PLAYING, True): EchoState.PLAYING,
    (EchoState.PLAYING, False): EchoState.TAIL,
    (EchoState.TAIL, True): EchoState.PLAYING,
    (EchoState.TAIL, False): EchoState.TAIL,
}


@dataclass(slots=True)
class EchoStats:
    """Counters, in microphone frames."""

    passed: int = 0
    muted: int = 0
    ducked: int = 0


def default_policy(turn_mode: str, *, aec: bool = False) -> EchoPolicy:
    """The echo policy for a turn mode (the reasoning is in the module docstring).

    Args:
        turn_mode: ``ptt``, ``server_vad``, ``semantic_vad`` or ``local_vad``.
        aec: the device cancels echo itself (hardware or APM): always ``full_duplex``.

    Raises:
        ConfigError: unknown ``turn_mode``.
    """
    if turn_mode not in _TURN_MODES:
        raise ConfigError(f"must be one of {_TURN_MODES}, got {turn_mode!r}", key="turn_mode")
    if aec or turn_mode == "ptt":
        return "full_duplex"
    return "half_duplex"


class EchoGuard:
    """Gates microphone frames by whether the speaker is (or just was) playing.

    Args:
        policy: ``half_duplex``, ``full_duplex`` or ``duck``.
        tail_ms: how long after playback stops the guard stays closed, ms. It must cover the
            output device's buffer (audio written but not yet heard) plus room decay.
        duck_db: gain applied by ``duck`` during playback and tail, dB, negative.

    Raises:
        ConfigError: unknown policy, negative ``tail_ms``, or ``duck_db`` not negative.
    """

    def __init__(
        self, policy: EchoPolicy = "half_duplex", *, tail_ms: float = 300.0, duck_db: float = -20.0
    ) -> None:
        if policy not in _POLICIES:
            raise ConfigError(f"must be one of {_POLICIES}, got {policy!r}", key="policy")
        if not (math.isfinite(tail_ms) and tail_ms >= 0):
            raise ConfigError(f"must be >= 0 ms, got {tail_ms}", key="tail_ms")
        if not (math.isfinite(duck_db) and duck_db < 0):
            raise ConfigError(
                f"is a gain in dB and must be negative (e.g. -20), got {duck_db}", key="duck_db"
            )
        self.policy: EchoPolicy = policy
        self.tail_s = tail_ms / 1000.0
        self.duck_db = duck_db
        self.stats = EchoStats()
        self._gain = db_to_gain(duck_db)
        self._state = EchoState.OPEN
        self._tail_end = -math.inf

    @property
    def state(self) -> EchoState:
        """The current :class:`EchoState` (as of the last call)."""
        return self._state

    def playback(self, active: bool, now: float) -> None:
        """Report whether the speaker is playing at ``now`` (s, monotonic).

        Level-triggered and idempotent: calling it every device period is fine. The tail is
        measured from the first call with ``active=False`` after playback.
        """
        old = self._state
        new = _ON_PLAYBACK[old, bool(active)]
        if new is old:
            return
        if new is EchoState.TAIL:
            self._tail_end = now + self.tail_s
        log.debug("= echo %s -> %s (%s)", old.name, new.name, self.policy)
        self._state = new

    def gate(self, frame: Samples, now: float) -> Samples | None:
        """Apply the policy to a microphone frame captured at ``now`` (s).

        Returns:
            ``frame`` itself when it passes, an attenuated copy under ``duck``, or ``None``
            when muted.
        """
        state = self._state
        if state is EchoState.TAIL and now >= self._tail_end:
            log.debug("= echo TAIL -> OPEN")
            state = self._state = EchoState.OPEN
        if state is EchoState.OPEN or self.policy == "full_duplex":
            self.stats.passed += 1
            return frame
        if self.policy == "duck":
            self.stats.ducked += 1
            return apply_gain(frame, self._gain)
        self.stats.muted += 1
        return None

    def muted(self, now: float) -> bool:
        """Whether :meth:`gate` would drop a frame captured at ``now`` (no counting)."""
        if self.policy != "half_duplex" or self._state is EchoState.OPEN:
            return False
        return self._state is EchoState.PLAYING or now < self._tail_end
