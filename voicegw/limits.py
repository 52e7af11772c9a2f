"""Output pacing: derive ``frame_size_ms`` and ``limit_config`` from a device's buffer budget.

Spec 2.5.4: ``frame_size_ms`` fixes the audio in each ``conversation.audio.delta`` and
``limit_config`` lets the service send at most ``max_frame_num`` deltas per ``period``
seconds, so that a small device is not flooded by the faster-than-real-time push. The official
examples pair them slightly above real time: PCM 50 ms x 22 per 1 s (1.1x) and Opus
60 ms x 17 per 1 s (1.02x); esp-adf uses 18 Opus frames (1.08x).

With ``f = frame_size_ms``, ``P = period_s * 1000`` (ms) and ``N = max_frame_num``:

* ratio ``r = N f / P``: audio the service may send per unit of wall-clock time.
* ``N = ceil(headroom * P / f)``: the smallest count with ``r >= headroom``, so
  ``headroom <= r < headroom + f / P``.
* **never starves**: ``N f >= P`` (``r >= 1``), guaranteed by ``headroom >= 1``.
* **worst-case burst**: a whole window's allowance, ``N f`` ms, may arrive back to back (the
  emulator sends it so, at the start of each fixed window; whether the real service spreads
  it is not documented), so the device must hold at least that much.
* **surplus**: every window adds ``s = N f - P = P (r - 1)`` ms to the device backlog while a
  reply streams. Right after the burst of window ``k`` (``k = 0, 1, ...``) the backlog is
  ``N f + k s``; it stays within the budget for ``K = floor((budget - N f) / s) + 1``
  windows, i.e. for replies up to ``K N f`` ms of audio (:meth:`LimitPlan.safe_reply_s`).
  Longer replies are the local :class:`LimitEnforcer`'s job.

Choosing the headroom trades stall recovery against that horizon: after a network stall of
``d`` seconds the service catches up in ``d / (r - 1)`` seconds, while the backlog grows by
``r - 1`` seconds per second of reply.

MP3 output has no ``frame_size_ms`` or ``limit_config`` (``mp3_config``, spec 2.2.2), so no
plan exists for it; only the enforcer applies.
"""

from __future__ import annotations

import math
from typing import Final, Literal, NamedTuple, TypeAlias

from .audio import ms_to_samples
from .errors import ConfigError, UnsupportedCodec
from .protocol.objects import OPUS_FRAME_MS, LimitConfig

__all__ = [
    "DEFAULT_FRAME_MS",
    "LimitEnforcer",
    "LimitPlan",
    "LimitPolicy",
    "plan_limits",
]

#: Frame size used when the caller has no preference, ms: the official examples' values.
DEFAULT_FRAME_MS: Final = {"pcm": 50.0, "g711a": 50.0, "g711u": 50.0, "g711": 50.0, "opus": 60.0}
_CODECS: Final = (*DEFAULT_FRAME_MS, "mp3")
#: Bounds of LimitConfig (spec 2.2.2; ``voicegw.protocol.objects.LimitConfig``).
_MAX_PERIOD_S: Final = 3600
_MAX_FRAMES: Final = 100000
_HEADROOM: Final = (1.0, 2.0)

#: What the gateway does when the local buffer is over budget.
LimitPolicy: TypeAlias = Literal["drop_oldest", "count"]


def _ceil_div(a: float, b: float) -> int:
    """``ceil(a / b)`` that does not round 1.1 * 1000 / 50 up to 23."""
    q = a / b
    r = round(q)
    return int(r) if abs(q - r) < 1e-9 * max(1.0, abs(q)) else math.ceil(q)


class LimitPlan(NamedTuple):
    """A ``frame_size_ms`` / ``limit_config`` pair (unpacks as a 3-tuple).

    Attributes:
        frame_size_ms: audio per delta, ms.
        period_s: ``limit_config.period``, s.
        max_frame_num: ``limit_config.max_frame_num``, deltas per period.
    """

    frame_size_ms: float
    period_s: int
    max_frame_num: int

    @property
    def period_ms(self) -> float:
        """The period in ms."""
        return self.period_s * 1000.0

    @property
    def ratio(self) -> float:
        """Audio the service may send per unit of wall-clock time (1.1 means 1.1x real time)."""
        return self.burst_ms / self.period_ms

    @property
    def burst_ms(self) -> float:
        """One window's allowance, ms: what may arrive back to back."""
        return self.max_frame_num * self.frame_size_ms

    @property
    def surplus_ms(self) -> float:
        """Backlog added per period while a reply streams, ms (``period * (ratio - 1)``)."""
        return self.burst_ms - self.period_ms

    def backlog_ms(self, window: int) -> float:
        """Worst-case backlog right after the burst of window ``window`` (0-based), ms."""
        return self.burst_ms + window * self.surplus_ms

    def safe_reply_s(self, budget_ms: float) -> float:
        """Longest reply, s of audio, whose worst-case backlog stays within ``budget_ms``.

        Returns ``inf`` when the ratio is exactly 1 (no surplus) and the burst fits, 0 when
        even one burst does not fit.
        """
        if self.burst_ms > budget_ms:
            return 0.0
        if self.surplus_ms <= 0:
            return math.inf
        windows = math.floor((budget_ms - self.burst_ms) / self.surplus_ms + 1e-9) + 1
        return windows * self.burst_ms / 1000.0

    def limit_config(self) -> LimitConfig:
        """The ``limit_config`` object for ``pcm_config`` / ``opus_config``."""
        return LimitConfig(period=self.period_s, max_frame_num=self.max_frame_num)


def plan_limits(
    codec: str,
    budget_ms: float,
    *,
    headroom: float = 1.1,
    frame_size_ms: float | None = None,
    period_s: int = 1,
    reply_s: float | None = None,
) -> LimitPlan:
    """Pick ``frame_size_ms``, ``period`` and ``max_frame_num`` for a device buffer budget.

    Args:
        codec: output codec: ``pcm``, ``g711a``, ``g711u`` (or ``g711``), ``opus``.
        budget_ms: audio the device can hold, ms.
        headroom: lowest acceptable ratio of sent audio to real time, 1.0-2.0 (1.05-1.1 is
            usual; the plan's ratio is the smallest step of ``frame_size_ms / period`` above).
        frame_size_ms: preferred frame size, ms; Opus allows only 2.5/5/10/20/40/60. ``None``
            uses :data:`DEFAULT_FRAME_MS` (50 ms PCM/G.711, 60 ms Opus).
        period_s: ``limit_config.period``, whole seconds (1-3600). The shortest period gives
            the smallest bursts, so 1 is the default.
        reply_s: when given, also require that replies of this many seconds of audio never
            push the worst-case backlog over the budget (:meth:`LimitPlan.safe_reply_s`).

    Returns:
        The plan; it unpacks as ``(frame_size_ms, period_s, max_frame_num)``.

    Raises:
        UnsupportedCodec: ``codec`` is not an output codec.
        ConfigError: a value is out of range, the codec has no ``limit_config`` (mp3), one
            window's burst does not fit the budget, or ``reply_s`` cannot be met (the
            message says which headroom would meet it).
    """
    if codec not in _CODECS:
        raise UnsupportedCodec(f"unknown output codec {codec!r}; expected one of {_CODECS}")
    if codec == "mp3":
        raise ConfigError(
            "mp3_config has no frame_size_ms or limit_config (spec 2.2.2), so the service "
            "cannot be throttled; bound the local buffer with LimitEnforcer instead",
            key="codec",
        )
    if not (math.isfinite(budget_ms) and budget_ms > 0):
        raise ConfigError(f"must be a positive number of ms, got {budget_ms}", key="budget_ms")
    lo, hi = _HEADROOM
    if not lo <= headroom <= hi:
        raise ConfigError(
            f"must be between {lo} and {hi} (ratio of sent audio to real time); below 1 "
            f"playback starves, got {headroom}",
            key="headroom",
        )
    if isinstance(period_s, bool) or not isinstance(period_s, int):
        raise ConfigError(f"must be a whole number of seconds, got {period_s!r}", key="period_s")
    if not 1 <= period_s <= _MAX_PERIOD_S:
        raise ConfigError(f"must be 1-{_MAX_PERIOD_S} s, got {period_s}", key="period_s")
    period_ms = period_s * 1000.0

    frame = DEFAULT_FRAME_MS[codec] if frame_size_ms is None else float(frame_size_ms)
    if codec == "opus":
        if frame not in OPUS_FRAME_MS:
            raise ConfigError(
                f"Opus frames are {', '.join(f'{v:g}' for v in OPUS_FRAME_MS)} ms, got {frame:g}",
                key="frame_size_ms",
            )
    elif not (math.isfinite(frame) and 1.0 <= frame <= period_ms):
        raise ConfigError(
            f"must be 1 ms to the period ({period_ms:g} ms), got {frame:g}", key="frame_size_ms"
        )

    count = _ceil_div(headroom * period_ms, frame)
    if count > _MAX_FRAMES:
        raise ConfigError(
            f"{count} frames per period exceeds limit_config's {_MAX_FRAMES}; use a shorter "
            "period or larger frames",
            key="period_s",
        )
    plan = LimitPlan(frame, period_s, count)
    if plan.burst_ms > budget_ms:
        raise ConfigError(
            f"one period's allowance ({count} x {frame:g} ms = {plan.burst_ms:g} ms) may arrive "
            f"at once and does not fit the {budget_ms:g} ms budget; use a larger budget, a "
            "shorter period or a lower headroom",
            key="budget_ms",
        )
    if reply_s is not None and plan.safe_reply_s(budget_ms) < reply_s:
        raise ConfigError(_reply_advice(plan, budget_ms, reply_s), key="headroom")
    return plan


def _reply_advice(plan: LimitPlan, budget_ms: float, reply_s: float) -> str:
    """Explain an unmet ``reply_s`` and name the highest ratio that would meet it."""
    frame, period_s, _ = plan
    lowest = _ceil_div(period_s * 1000.0, frame)  # ratio >= 1
    best = None
    for count in range(plan.max_frame_num - 1, lowest - 1, -1):
        if LimitPlan(frame, period_s, count).safe_reply_s(budget_ms) >= reply_s:
            best = LimitPlan(frame, period_s, count)
            break
    have = plan.safe_reply_s(budget_ms)
    msg = (
        f"at {plan.ratio:.3g}x ({plan.max_frame_num} x {frame:g} ms per {period_s} s) the "
        f"backlog of a {reply_s:g} s reply may exceed the {budget_ms:g} ms budget (safe up to "
        f"{have:.3g} s)"
    )
    if best is None:
        return msg + "; no ratio >= 1 fits, so use a larger budget"
    return msg + f"; a headroom up to {best.ratio:.4g} ({best.max_frame_num} frames) fits"


class LimitEnforcer:
    """Watches the local playout depth against the device budget.

    Policies:

    * ``drop_oldest`` (default): :meth:`check` returns how many of the oldest queued samples
      the caller must drop (:meth:`voicegw.playout.PlayoutBuffer.trim`), so the buffer never
      holds more than the budget; the service already sent that audio late.
    * ``count``: :meth:`check` only counts; the caller keeps the audio (its own hard cap
      still applies). Use it to observe whether the service honours ``limit_config``.

    Args:
        budget_ms: audio the device may hold, ms.
        rate: sample rate of the buffer being checked, Hz.
        policy: ``"drop_oldest"`` or ``"count"``.

    Raises:
        ConfigError: ``budget_ms`` or ``rate`` is not positive, or ``policy`` is unknown.
    """

    def __init__(self, budget_ms: float, rate: int, *, policy: LimitPolicy = "drop_oldest") -> None:
        if not (math.isfinite(budget_ms) and budget_ms > 0):
            raise ConfigError(f"must be a positive number of ms, got {budget_ms}", key="budget_ms")
        if rate <= 0:
            raise ConfigError(f"must be a positive rate in Hz, got {rate}", key="rate")
        if policy not in ("drop_oldest", "count"):
            raise ConfigError(f"must be 'drop_oldest' or 'count', got {policy!r}", key="policy")
        self.policy: LimitPolicy = policy
        self.rate = rate
        #: The budget in samples.
        self.budget = ms_to_samples(budget_ms, rate)
        #: Checks that found the depth over the budget.
        self.overruns = 0
        #: Samples the caller was told to drop (``drop_oldest`` only).
        self.dropped = 0
        #: Deepest queue seen by :meth:`check`, samples.
        self.peak = 0

    def check(self, queued: int) -> int:
        """Check a queue depth of ``queued`` samples, e.g. after each write.

        Returns:
            Samples to drop from the head now: ``queued - budget`` when over budget under
            ``drop_oldest``, else 0.
        """
        if queued > self.peak:
            self.peak = queued
        excess = queued - self.budget
        if excess <= 0:
            return 0
        self.overruns += 1
        if self.policy == "count":
            return 0
        self.dropped += excess
        return excess

    def room(self, queued: int) -> int:
        """Samples that still fit within the budget at a depth of ``queued`` (0 when full)."""
        return max(0, self.budget - queued)
