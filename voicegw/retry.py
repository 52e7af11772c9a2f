"""How long to wait before trying again: reconnecting to the service, reopening a device.

Pure arithmetic, no event loop: the daemon asks a :class:`RetryPolicy` for the next delay and
does the waiting itself (with a sleep function it can be given, so tests never wait for real).

**Ordinary failures** (the network dropped, the service answered 5xx, a device stalled) wait
``initial_s``, then twice as long each time, up to ``cap_s``, each delay scaled by a random
factor in ``[1 - jitter, 1]`` so that many devices behind one outage do not all come back in
the same instant. A good connection (:meth:`RetryPolicy.reset`) starts again from the
beginning.

**Slow codes** are service errors that a quick retry cannot fix but time can: a billing stop
(4027 account overdue, 4028 insufficient credits: the account owner has to act) waits 10 min,
a rate limit (4013, or HTTP 429 which maps to it) waits 1 min. Those waits are at least the
slow value, exactly: ``max(backoff, slow)``; the backoff still advances underneath, so a run
of slow errors followed by network errors does not restart at half a second.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import MappingProxyType

from .errors import backoff

__all__ = ["SLOW_RETRY_S", "RetryPolicy"]

#: Service errors worth retrying only after a long wait, s: billing stops and rate limits.
SLOW_RETRY_S: Mapping[int, float] = MappingProxyType({4027: 600.0, 4028: 600.0, 4013: 60.0})


class RetryPolicy:
    """Delays between attempts: capped exponential backoff with jitter, plus slow codes.

    Args:
        initial_s: the first delay, s.
        cap_s: the longest ordinary delay, s.
        jitter: each ordinary delay is scaled by a random factor in ``[1 - jitter, 1]``.
        slow: error code -> minimum delay, s (default :data:`SLOW_RETRY_S`).
        rng: random numbers in ``[0, 1)`` for the jitter (injectable for tests).
    """

    def __init__(
        self,
        *,
        initial_s: float = 0.5,
        cap_s: float = 30.0,
        jitter: float = 0.25,
        slow: Mapping[int, float] = SLOW_RETRY_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial_s <= cap_s:
            raise ValueError(f"need 0 < initial_s <= cap_s, got {initial_s} and {cap_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.jitter = jitter
        self.slow = dict(slow)
        self._rng = rng
        self._delays = backoff(initial_s, cap=cap_s, jitter=jitter, rng=rng)
        #: Failures since the last :meth:`reset`.
        self.failures = 0

    def next_delay(self, code: int | None = None) -> float:
        """The wait before the next attempt after a failure with service error ``code``."""
        self.failures += 1
        delay = next(self._delays)
        return max(delay, self.slow.get(code, 0.0)) if code is not None else delay

    def reset(self) -> None:
        """The last attempt succeeded: the next failure waits ``initial_s`` again (jittered)."""
        self.failures = 0
        self._delays = backoff(self.initial_s, cap=self.cap_s, jitter=self.jitter, rng=self._rng)
