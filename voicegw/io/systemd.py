"""systemd service notifications (sd_notify(3)), spoken directly over ``NOTIFY_SOCKET``.

The protocol is one AF_UNIX datagram per notification holding newline-separated
``KEY=VALUE`` assignments (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``).
``NOTIFY_SOCKET`` names the socket: an absolute path, or ``@name`` for the Linux abstract
namespace. No python-systemd and no libsystemd are needed.

:class:`Notifier` never blocks and never raises: the socket is non-blocking, a send that
fails is logged once (and again only after a send has succeeded in between), and without
``NOTIFY_SOCKET`` every call is a no-op, so the same code runs under systemd, in a terminal
and in tests.

:func:`feed_watchdog` is the asyncio task that pings systemd's watchdog as long as a
:class:`~voicegw.watchdog.WatchdogPolicy` says the gateway is alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from ..clock import Clock, SystemClock
from ..watchdog import WatchdogPolicy

__all__ = ["Notifier", "feed_watchdog"]

log = logging.getLogger(__name__)


def _parse_address(value: str) -> str | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value, or ``None`` when unsupported."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        # sd_notify(3): a leading "@" stands for the NUL byte of the abstract namespace.
        return "\0" + value[1:]
    return None


class Notifier:
    """Sends service state notifications to systemd.

    Args:
        env: the environment to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
            ``WATCHDOG_PID`` from (default: :data:`os.environ`, read once, here).
        pid: this process's id, compared with ``WATCHDOG_PID`` (default: :func:`os.getpid`).

    Every sending method returns ``True`` when the datagram was handed to the kernel and
    ``False`` otherwise (no ``NOTIFY_SOCKET``, unsupported address, or a send error, which is
    logged). Use it from one thread: the event loop's.
    """

    def __init__(self, env: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        if env is None:
            env = os.environ
        self._pid = os.getpid() if pid is None else pid
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _parse_address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET=%r is not an absolute path or @name; not notifying", raw)
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._sock: socket.socket | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        """Whether notifications go anywhere (``NOTIFY_SOCKET`` is set and usable)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """systemd's watchdog interval in seconds, or ``None`` when the watchdog is off.

        Read from ``WATCHDOG_USEC``; ``None`` too when ``WATCHDOG_PID`` names another
        process (the variables were inherited, and the watchdog is not ours to feed), or when
        the value is not a positive integer.
        """
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != self._pid:
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 1_000_000

    # --------------------------------------------------------------- messages
    def ready(self, status: str | None = None) -> bool:
        """Tell systemd that start-up finished (``READY=1``), with an optional status line."""
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        """Set the one-line status ``systemctl status`` shows (``STATUS=...``)."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """Feed systemd's watchdog (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd that shutdown began (``STOPPING=1``), with an optional status line."""
        return self.notify("STOPPING=1", *self._status(status))

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram.

        Returns:
            ``True`` when the datagram was sent; ``False`` when notifications are off or the
            send failed (logged at WARNING once, then at DEBUG until a send succeeds).
        """
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "sd_notify to %s failed: %s", self._display_address, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self) -> None:
        """Close the socket; a later notification opens a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ---------------------------------------------------------------- helpers
    @property
    def _display_address(self) -> str:
        assert self._address is not None
        return "@" + self._address[1:] if self._address.startswith("\0") else self._address

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        # One assignment per line: a newline inside the text would start a new key.
        return ("STATUS=" + " ".join(text.splitlines()),)


async def feed_watchdog(
    notifier: Notifier,
    policy: WatchdogPolicy,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Ping systemd's watchdog whenever ``policy`` allows it; runs until cancelled.

    Checks every :attr:`~voicegw.watchdog.WatchdogPolicy.check_period_s`. When the policy
    stops allowing pings, the status line says why (``STATUS=watchdog: capture stalled``),
    so ``systemctl status`` explains the restart that follows; it is cleared on recovery.
    The policy's inputs (``capture_alive``, ``loop_tick``) are fed by the tasks that do the
    work, not by this one.

    Args:
        notifier: where the pings go.
        policy: decides when a ping is allowed.
        clock: the monotonic clock the policy's inputs are stamped with.
        sleep: how to wait between checks (tests pass one that moves a fake clock).
    """
    clock = clock or SystemClock()
    shown: str | None = None
    while True:
        now = clock.now()
        if policy.should_ping(now):
            notifier.watchdog()
        reason = policy.failure(now)
        if reason != shown:
            notifier.status("running" if reason is None else f"watchdog: {reason}")
            shown = reason
        await sleep(policy.check_period_s)
