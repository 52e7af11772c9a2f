"""The push-to-talk gate: a pure state machine from button edges to talk actions.

Two rules, as in h11's ``_state.py``: everything that changes the gate's state lives in this
file, and it knows nothing about buttons, sockets, threads or clocks. Callers feed it the
button's edges with the time they happened (:meth:`PttGate.edge`) and call :meth:`PttGate.tick`
with the current monotonic time often enough (every microphone frame, or at
:meth:`PttGate.deadline`); both return the actions to carry out, in order.

What the gateway does with each action (peers.md lesson 8; spec 2.6.3, 2.6.6):

* :class:`Interrupt`: stop the agent now: ``session.cancel(now)`` (it sends
  ``conversation.chat.cancel`` only while a chat is active) and flush local playback. No turn
  starts.
* :class:`StartTalking`: start a user turn: ``session.press`` (cancel the reply if a chat is
  active, flush playback, go LISTENING), then append the pre-roll, which must reach back to
  :attr:`StartTalking.at`, and the live microphone after it.
* :class:`StopTalking`: commit the turn: ``session.release`` (``input_audio_buffer.complete``).

Modes (:class:`PttMode`):

* ``hold``: talk while the button is held. A press emits :class:`Interrupt` at once; once the
  button has been held for ``min_hold_ms`` the gate emits :class:`StartTalking` dated at the
  press, and the release emits :class:`StopTalking`. A *tap* (released before ``min_hold_ms``)
  is a click: it has stopped the agent and sends nothing upstream. This is what a person
  expects from a talk button: a tap silences the speaker, a held button talks, and a
  fumbled touch never sends a near-empty utterance (for which the service returns an empty
  transcript, or an error, spec 2.6.3). The delay costs no audio, because the pre-roll covers
  the time from the press. With ``min_hold_ms=0`` the press emits :class:`StartTalking`
  alone (``session.press`` interrupts by itself).
* ``toggle``: each press alternately starts and ends a turn; releases are ignored.
* ``interrupt``: a press only emits :class:`Interrupt` and never starts talking: for kiosks
  whose turns are found by a VAD, where the button is a "stop talking" key.

Safety and noise (all counted in :class:`PttStats`):

* **debounce**: an edge closer than ``bounce_ms`` to the last accepted edge is ignored. The
  level the contacts settle on still counts: when the window has passed and the last ignored
  edge left the button at a different level, :meth:`tick` (or the next :meth:`edge`) accepts
  it, dated when it happened. A real press that bounces is thus one press, and a very short
  tap whose release fell inside the window is still released.
* **max hold**: a talk that lasts ``max_hold_s`` (a stuck button, a toggle left on) is ended
  with ``StopTalking(reason="max_hold")``. In ``hold`` mode the gate then waits for the
  release, which emits nothing.
* An edge that repeats the current level (a source that reports a level twice) is ignored.
* Times never go backwards inside the gate: an earlier ``now`` counts as the latest one seen.

The machine: states are :class:`PttState`, compared with ``is``; each mode has one table from
``(state, input)`` to ``(next state, output)``, and every transition is logged at debug level::

    hold         IDLE --press--> PENDING --held--> TALKING --release--> IDLE
                                 PENDING --release--> IDLE                  (tap)
                                           TALKING --expire--> WAIT_RELEASE --release--> IDLE
    toggle       IDLE --press--> TALKING --press|expire--> IDLE
    interrupt    IDLE --press--> IDLE
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal, TypeAlias

from .errors import ConfigError

__all__ = [
    "Interrupt",
    "PttAction",
    "PttGate",
    "PttMode",
    "PttState",
    "PttStats",
    "StartTalking",
    "StopReason",
    "StopTalking",
]

log = logging.getLogger(__name__)


class PttMode(Enum):
    """What a press means. Compare with ``is``."""

    HOLD = "hold"
    """Talk while the button is held."""
    TOGGLE = "toggle"
    """Each press starts or ends a turn."""
    INTERRUPT = "interrupt"
    """A press stops the agent; turns come from a VAD."""


class PttState(Enum):
    """Where the gate is. Compare with ``is``."""

    IDLE = "idle"
    """Not talking (the button is up, or it does not matter in this mode)."""
    PENDING = "pending"
    """``hold`` mode: pressed, not yet for ``min_hold_ms``; the agent was interrupted."""
    TALKING = "talking"
    """A user turn is open: stream the microphone."""
    WAIT_RELEASE = "wait_release"
    """``hold`` mode: the talk was ended (max hold or reset) while the button is still down."""


#: Why a talk ended: the button was released, pressed again (toggle), or held too long.
StopReason: TypeAlias = Literal["released", "toggled", "max_hold"]


@dataclass(frozen=True, slots=True)
class StartTalking:
    """Start a user turn; the audio must reach back to ``at`` (the press), via the pre-roll.

    Attributes:
        at: when the button was pressed, s on the caller's monotonic clock.
    """

    at: float


@dataclass(frozen=True, slots=True)
class StopTalking:
    """Commit the user turn (``input_audio_buffer.complete``).

    Attributes:
        at: when the talk ended (the release, the second press, or the max-hold deadline), s.
        reason: why it ended.
    """

    at: float
    reason: StopReason


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Stop the agent and flush playback, without starting a turn.

    Attributes:
        at: when the button was pressed, s.
    """

    at: float


PttAction: TypeAlias = StartTalking | StopTalking | Interrupt


@dataclass(slots=True)
class PttStats:
    """Counters, in edges or events."""

    edges: int = 0
    """Edges given to :meth:`PttGate.edge`."""
    accepted: int = 0
    """Level changes the gate acted on (including those settled after a bounce)."""
    bounced: int = 0
    """Edges ignored because they came within ``bounce_ms`` of the last accepted edge."""
    repeated: int = 0
    """Edges ignored because they repeated the current level."""
    taps: int = 0
    """``hold`` mode: presses released before ``min_hold_ms`` (clicks that only interrupted)."""
    max_hold_stops: int = 0
    """Talks ended by ``max_hold_s``."""


class _In(Enum):
    PRESS = "press"
    RELEASE = "release"
    HELD = "held"
    EXPIRE = "expire"


class _Out(Enum):
    NONE = "none"
    INTERRUPT = "interrupt"
    START = "start"
    STOP_RELEASED = "released"
    STOP_TOGGLED = "toggled"
    STOP_MAX_HOLD = "max_hold"
    TAP = "tap"


_Table: TypeAlias = dict[tuple[PttState, _In], tuple[PttState, _Out]]

_I, _P, _T, _W = PttState.IDLE, PttState.PENDING, PttState.TALKING, PttState.WAIT_RELEASE

_HOLD_COMMON: Final[_Table] = {
    (_T, _In.RELEASE): (_I, _Out.STOP_RELEASED),
    (_T, _In.EXPIRE): (_W, _Out.STOP_MAX_HOLD),
    (_W, _In.RELEASE): (_I, _Out.NONE),
}

#: ``hold`` with ``min_hold_ms > 0``: a press interrupts; the turn starts once it is held.
_HOLD: Final[_Table] = {
    (_I, _In.PRESS): (_P, _Out.INTERRUPT),
    (_P, _In.HELD): (_T, _Out.START),
    (_P, _In.RELEASE): (_I, _Out.TAP),
    **_HOLD_COMMON,
}

#: ``hold`` with ``min_hold_ms == 0``: the press starts the turn (which interrupts by itself).
_HOLD_AT_ONCE: Final[_Table] = {
    (_I, _In.PRESS): (_T, _Out.START),
    **_HOLD_COMMON,
}

_TOGGLE: Final[_Table] = {
    (_I, _In.PRESS): (_T, _Out.START),
    (_T, _In.PRESS): (_I, _Out.STOP_TOGGLED),
    (_T, _In.EXPIRE): (_I, _Out.STOP_MAX_HOLD),
    (_I, _In.RELEASE): (_I, _Out.NONE),
    (_T, _In.RELEASE): (_T, _Out.NONE),
}

_INTERRUPT: Final[_Table] = {
    (_I, _In.PRESS): (_I, _Out.INTERRUPT),
    (_I, _In.RELEASE): (_I, _Out.NONE),
}


def _check_time(value: float, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"must be a number, got {value!r}", key=key)
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"must be a finite number >= 0, got {value!r}", key=key)


class PttGate:
    """Push-to-talk gate fed button edges and ``now``; returns :data:`PttAction` lists.

    Args:
        mode: ``"hold"``, ``"toggle"`` or ``"interrupt"`` (or a :class:`PttMode`).
        bounce_ms: edges closer than this to the last accepted edge are ignored, ms (0 turns
            debouncing off; 50 suits a mechanical button read by gpiozero).
        min_hold_ms: ``hold`` mode: a press shorter than this is a tap that only
            interrupts, ms. Keep the gateway's pre-roll longer than this.
        max_hold_s: a talk is ended after this long, s; ``None`` never ends it.

    Raises:
        ConfigError: an unknown mode, or a negative or non-finite time.
    """

    def __init__(
        self,
        mode: PttMode | str = PttMode.HOLD,
        *,
        bounce_ms: float = 50.0,
        min_hold_ms: float = 150.0,
        max_hold_s: float | None = 60.0,
    ) -> None:
        if not isinstance(mode, PttMode):
            try:
                mode = PttMode(mode)
            except ValueError:
                names = ", ".join(repr(m.value) for m in PttMode)
                raise ConfigError(f"must be one of {names}, got {mode!r}", key="mode") from None
        _check_time(bounce_ms, "bounce_ms")
        _check_time(min_hold_ms, "min_hold_ms")
        if max_hold_s is not None:
            _check_time(max_hold_s, "max_hold_s")
            if max_hold_s == 0:
                raise ConfigError("must be > 0 s, or None for no limit", key="max_hold_s")
        self.mode = mode
        self.bounce_s = bounce_ms / 1000.0
        self.min_hold_s = min_hold_ms / 1000.0
        self.max_hold_s = max_hold_s
        self.stats = PttStats()
        if mode is PttMode.HOLD:
            self._table = _HOLD if self.min_hold_s > 0 else _HOLD_AT_ONCE
        elif mode is PttMode.TOGGLE:
            self._table = _TOGGLE
        else:
            self._table = _INTERRUPT
        self._state = PttState.IDLE
        self._now = -math.inf
        self._down = False  # the accepted (debounced) level
        self._accepted_at = -math.inf
        self._raw = False  # the level of the last edge given, accepted or not
        self._raw_at = -math.inf
        self._pressed_at = -math.inf  # when the current press (or toggle-on) happened

    # ------------------------------------------------------------ state
    @property
    def state(self) -> PttState:
        """The current :class:`PttState`."""
        return self._state

    @property
    def talking(self) -> bool:
        """Whether a user turn is open (stream the microphone)."""
        return self._state is PttState.TALKING

    @property
    def pressed(self) -> bool:
        """The debounced button level."""
        return self._down

    def deadline(self) -> float | None:
        """The next time :meth:`tick` has something to do, s; ``None`` if nothing is pending."""
        due = self._next_timer()
        return None if due is None else due[0]

    # ------------------------------------------------------------ inputs
    def edge(self, pressed: bool, now: float) -> list[PttAction]:
        """Feed one button edge: the new level and when it happened.

        Timers due before ``now`` (a settled bounce, min hold, max hold) fire first.

        Returns:
            The actions to carry out, in order (often none).
        """
        pressed = bool(pressed)
        now = self._advance_time(now)
        out = self._run_timers(now)
        self.stats.edges += 1
        if pressed == self._raw:
            # The level the gate already has, or the one it is settling on after a bounce.
            self.stats.repeated += 1
            return out
        self._raw, self._raw_at = pressed, now
        if pressed == self._down or now - self._accepted_at < self.bounce_s:
            # Inside the window: a bounce (possibly back to the accepted level).
            self.stats.bounced += 1
            return out
        self._accept(pressed, now, out)
        return out

    def tick(self, now: float) -> list[PttAction]:
        """Let time pass: settle bounces, start held presses, end over-long talks.

        Returns:
            The actions to carry out, in order (usually none).
        """
        return self._run_timers(self._advance_time(now))

    def reset(self) -> None:
        """Forget the current talk without an action (the session it belonged to is gone).

        In ``hold`` mode a button that is still down must be released before the next press
        counts; debouncing state is kept.
        """
        target = PttState.IDLE
        if self._down and self.mode is PttMode.HOLD:
            target = PttState.WAIT_RELEASE
        if self._state is not target:
            log.debug("= ptt %s -> %s (reset)", self._state.name, target.name)
        self._state = target

    # ------------------------------------------------------------ the machine
    def _advance_time(self, now: float) -> float:
        if now > self._now:
            self._now = now
        return self._now

    def _next_timer(self) -> tuple[float, _In] | None:
        """The earliest pending timer: ``(due time, input)``, or None."""
        timers: list[tuple[float, _In]] = []
        if self._raw != self._down:
            timers.append(
                (
                    max(self._raw_at, self._accepted_at + self.bounce_s),
                    _In.PRESS if self._raw else _In.RELEASE,
                )
            )
        if self._state is PttState.PENDING:
            timers.append((self._pressed_at + self.min_hold_s, _In.HELD))
        if self._state is PttState.TALKING and self.max_hold_s is not None:
            timers.append((self._pressed_at + self.max_hold_s, _In.EXPIRE))
        return min(timers, key=lambda t: t[0]) if timers else None

    def _run_timers(self, now: float) -> list[PttAction]:
        out: list[PttAction] = []
        while (due := self._next_timer()) is not None and due[0] <= now:
            at, what = due
            if what is _In.PRESS or what is _In.RELEASE:
                # The contacts settled: the level of the last ignored edge stands, dated
                # when that edge happened.
                self._accept(self._raw, self._raw_at, out)
            else:
                self._fire(what, at, out)
        return out

    def _accept(self, pressed: bool, at: float, out: list[PttAction]) -> None:
        self._down = pressed
        self._raw = pressed
        self._accepted_at = at
        self.stats.accepted += 1
        self._fire(_In.PRESS if pressed else _In.RELEASE, at, out)

    def _fire(self, what: _In, at: float, out: list[PttAction]) -> None:
        old = self._state
        step = self._table.get((old, what))
        if step is None:  # pragma: no cover - the level alternates, so this is a bug here
            raise AssertionError(f"illegal PTT transition {old.name} on {what.value}")
        new, output = step
        if what is _In.PRESS and (new is PttState.PENDING or new is PttState.TALKING):
            self._pressed_at = at
        self._state = new
        log.debug("= ptt %s -> %s (%s at %.3f)", old.name, new.name, what.value, at)
        if output is _Out.INTERRUPT:
            out.append(Interrupt(at))
        elif output is _Out.START:
            out.append(StartTalking(self._pressed_at))
        elif output is _Out.STOP_RELEASED:
            out.append(StopTalking(at, "released"))
        elif output is _Out.STOP_TOGGLED:
            out.append(StopTalking(at, "toggled"))
        elif output is _Out.STOP_MAX_HOLD:
            self.stats.max_hold_stops += 1
            log.info("push-to-talk held for %.1f s: the talk is ended", self.max_hold_s)
            out.append(StopTalking(at, "max_hold"))
        elif output is _Out.TAP:
            self.stats.taps += 1
