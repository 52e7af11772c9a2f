"""When to feed systemd's watchdog: a pure policy fed the time by its caller.

systemd restarts a ``WatchdogSec=`` service that stops sending ``WATCHDOG=1``. Pinging from
a timer alone only proves that the timer runs; a daemon whose microphone went silent or
whose pipeline is stuck would keep the watchdog happy forever. So the policy pings only
while two liveness inputs are fresh:

* ``capture_alive(now)``: the capture stream delivered a frame (called per frame);
* ``loop_tick(now)``: the event loop is doing the gateway's work (called from a task that
  runs every few tens of milliseconds, such as the playout task).

When either goes stale, :meth:`WatchdogPolicy.should_ping` returns ``False``, systemd's
timer runs out, and the service is restarted with a fresh device and a fresh loop.

Pings go out every half of the systemd interval, as sd_watchdog_enabled(3) recommends, so
one late ping never trips the watchdog.

This module never reads the clock and imports nothing outside the standard library.
"""

from __future__ import annotations

__all__ = ["WatchdogPolicy"]

#: Stable reasons returned by :meth:`WatchdogPolicy.failure` (stable so that a STATUS= line
#: or a health check changes only when the reason changes).
_NO_CAPTURE_YET = "no capture frame yet"
_CAPTURE_STALLED = "capture stalled"
_LOOP_STALLED = "event loop stalled"


class WatchdogPolicy:
    """Decides when ``WATCHDOG=1`` may be sent.

    Args:
        interval_s: systemd's watchdog interval (``WatchdogSec=``, from
            :meth:`voicegw.io.systemd.Notifier.watchdog_interval`), seconds.
        capture_timeout_s: the capture stream counts as dead after this long without a
            frame, seconds.
        loop_timeout_s: the loop counts as stalled after this long without a tick, seconds
            (default: half of ``interval_s``).

    Raises:
        ValueError: a duration is not positive.
    """

    __slots__ = (
        "_last_capture",
        "_last_ping",
        "_last_tick",
        "capture_timeout_s",
        "interval_s",
        "loop_timeout_s",
    )

    def __init__(
        self,
        interval_s: float,
        *,
        capture_timeout_s: float,
        loop_timeout_s: float | None = None,
    ) -> None:
        if loop_timeout_s is None:
            loop_timeout_s = interval_s / 2
        for name, value in (
            ("interval_s", interval_s),
            ("capture_timeout_s", capture_timeout_s),
            ("loop_timeout_s", loop_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.interval_s = interval_s
        self.capture_timeout_s = capture_timeout_s
        self.loop_timeout_s = loop_timeout_s
        self._last_capture: float | None = None
        self._last_tick: float | None = None
        self._last_ping: float | None = None

    @property
    def ping_period_s(self) -> float:
        """Seconds between pings while healthy: half of the systemd interval."""
        return self.interval_s / 2

    @property
    def check_period_s(self) -> float:
        """How often a caller should ask :meth:`should_ping`, seconds.

        A quarter of the ping period, so a ping that became due (or a recovery) is noticed
        long before systemd's interval runs out.
        """
        return self.ping_period_s / 4

    # ------------------------------------------------------------------ inputs
    def capture_alive(self, now: float) -> None:
        """Record that the capture stream delivered a frame at ``now`` (monotonic seconds)."""
        self._last_capture = now

    def loop_tick(self, now: float) -> None:
        """Record that the event loop did the gateway's work at ``now`` (monotonic seconds)."""
        self._last_tick = now

    # ----------------------------------------------------------------- outputs
    def capture_ok(self, now: float) -> bool:
        """Whether the capture stream delivered a frame within ``capture_timeout_s``."""
        return self._last_capture is not None and now - self._last_capture <= self.capture_timeout_s

    def loop_ok(self, now: float) -> bool:
        """Whether the loop ticked within ``loop_timeout_s``."""
        return self._last_tick is not None and now - self._last_tick <= self.loop_timeout_s

    def failure(self, now: float) -> str | None:
        """Why the watchdog is not being fed at ``now``, or ``None`` when all is well.

        The strings are stable (no numbers in them), fit for a ``STATUS=`` line.
        """
        if self._last_capture is None:
            return _NO_CAPTURE_YET
        if not self.capture_ok(now):
            return _CAPTURE_STALLED
        if not self.loop_ok(now):
            return _LOOP_STALLED
        return None

    def should_ping(self, now: float) -> bool:
        """Whether to send ``WATCHDOG=1`` now; a ``True`` answer counts as the ping.

        Returns ``True`` at most once per :attr:`ping_period_s`, and only while the capture
        stream and the loop are both alive. The caller must send the ping when it gets
        ``True``: the policy has already recorded it.
        """
        if self.failure(now) is not None:
            return False
        if self._last_ping is not None and now - self._last_ping < self.ping_period_s:
            return False
        self._last_ping = now
        return True
