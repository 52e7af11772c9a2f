"""When each ``conversation.audio.delta`` of a reply is due (spec 2.4 D7, 2.5.4).

A pure function of the deltas' durations, a start time and the pacing settings; it never reads
a clock. The I/O adapter turns the returned times into absolute monotonic deadlines.

Rules:

* **Burst.** The service pushes audio much faster than real time: 9.7 s of audio arrived in
  about 1.5 s in recorded traffic [TRAFFIC], so the emulator sends at :data:`BURST_SPEED` (6x)
  real time. Delta *i* is due at ``start + (audio before i) / BURST_SPEED``.
* **Ready times.** A delta can never leave before its audio exists; callers may pass per-delta
  ``ready`` times (for example "not before this sentence's text was streamed").
* **limit_config.** At most ``max_frame_num`` deltas per ``period`` seconds. The window is
  FIXED and aligned to the first delta's due time: windows are ``[t0 + k*period,
  t0 + (k+1)*period)`` (INFERRED: spec 2.5.4 says fixed or rolling is unknown and suggests
  fixed). A delta that would overflow its window moves to the start of the next window. With
  both the burst speed and a limit, the slower of the two governs, so the throughput under a
  limit below 6x real time is exactly ``max_frame_num * frame_size_ms`` per ``period``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BURST_SPEED", "Limit", "schedule", "window_index"]

#: How many times faster than real time replies are pushed (spec 2.4 D7, 8.4: about 6x).
BURST_SPEED = 6.0

# Slack for float sums landing a hair before a window boundary.
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Limit:
    """``limit_config``: at most ``max_frames`` deltas per ``period_s`` seconds."""

    period_s: float
    max_frames: int

    def __post_init__(self) -> None:
        if self.period_s <= 0:
            raise ValueError(f"period must be positive, got {self.period_s}")
        if self.max_frames < 1:
            raise ValueError(f"max_frame_num must be at least 1, got {self.max_frames}")


def window_index(t: float, first: float, period_s: float) -> int:
    """Index of the fixed window holding time ``t`` (windows start at ``first``)."""
    return math.floor((t - first) / period_s + _EPS)


def schedule(
    durations: Sequence[float],
    start: float,
    *,
    speed: float = BURST_SPEED,
    limit: Limit | None = None,
    ready: Sequence[float] | None = None,
) -> list[float]:
    """Due time of each delta, non-decreasing.

    Args:
        durations: seconds of audio in each delta, in sending order.
        start: when the first delta may leave.
        speed: burst speed, a multiple of real time (must be positive).
        limit: ``limit_config`` to honour, or ``None`` for no cap.
        ready: optional earliest time for each delta (same length as ``durations``).

    Returns:
        One time per delta.

    Raises:
        ValueError: ``speed`` is not positive or ``ready`` has the wrong length.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    if ready is not None and len(ready) != len(durations):
        raise ValueError("ready needs one time per delta")
    out: list[float] = []
    audio = 0.0
    prev = start
    first: float | None = None
    window = 0
    used = 0
    for i, d in enumerate(durations):
        t = max(prev, start + audio / speed)
        if ready is not None:
            t = max(t, ready[i])
        if limit is not None:
            if first is None:
                first = t
            k = window_index(t, first, limit.period_s)
            if k != window:
                window, used = k, 0
            if used >= limit.max_frames:
                window, used = window + 1, 0
                t = max(t, first + window * limit.period_s)
            used += 1
        out.append(t)
        prev = t
        audio += d
    return out
