"""Notifier against real AF_UNIX datagram sockets (path and abstract), and the watchdog task."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import MS

from voicegw.clock import FakeClock
from voicegw.io.systemd import Notifier, feed_watchdog
from voicegw.watchdog import WatchdogPolicy

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107


class Receiver:
    """systemd's end: a bound datagram socket and what arrived on it."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket
        self.sock.settimeout(2000 * MS)

    def recv(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")

    def pending(self) -> list[list[str]]:
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2000 * MS)
        return out


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "notify"
    with tempfile.TemporaryDirectory(prefix="vg-") as short:
        if len(os.fsencode(path)) > _SUN_PATH_MAX:  # a deep tmp_path: bind somewhere shorter
            path = Path(short) / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.fspath(path))
        try:
            yield Receiver(sock, os.fspath(path))
        finally:
            sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"voicegw-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        yield Receiver(sock, "@" + name)
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> Receiver:
    name = "path_receiver" if request.param == "path" else "abstract_receiver"
    r: Receiver = request.getfixturevalue(name)
    return r


# ------------------------------------------------------------------ messages


def test_ready_status_watchdog_stopping_arrive_as_sent(receiver: Receiver) -> None:
    n = Notifier({"NOTIFY_SOCKET": receiver.notify_socket})
    assert n.enabled
    assert n.ready()
    assert receiver.recv() == ["READY=1"]
    assert n.status("connected to ws.coze.cn")
    assert receiver.recv() == ["STATUS=connected to ws.coze.cn"]
    assert n.watchdog()
    assert receiver.recv() == ["WATCHDOG=1"]
    assert n.stopping()
    assert receiver.recv() == ["STOPPING=1"]
    n.close()


def test_one_datagram_carries_several_assignments(receiver: Receiver) -> None:
    n = Notifier({"NOTIFY_SOCKET": receiver.notify_socket})
    n.ready("listening")
    assert receiver.recv() == ["READY=1", "STATUS=listening"]
    n.stopping("shutting down")
    assert receiver.recv() == ["STOPPING=1", "STATUS=shutting down"]
    n.close()


def test_a_newline_in_a_status_cannot_inject_an_assignment(path_receiver: Receiver) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_receiver.notify_socket})
    n.status("bad\nREADY=1")
    assert path_receiver.recv() == ["STATUS=bad READY=1"]
    n.close()


def test_the_socket_is_reopened_after_close(path_receiver: Receiver) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_receiver.notify_socket})
    n.watchdog()
    n.close()
    n.close()
    assert n.watchdog()
    assert path_receiver.pending() == [["WATCHDOG=1"], ["WATCHDOG=1"]]
    n.close()


# ------------------------------------------------------------------ no-op and errors


def test_without_notify_socket_everything_is_a_no_op(path_receiver: Receiver) -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready()
    assert not n.status("x")
    assert not n.watchdog()
    assert not n.stopping()
    assert n.watchdog_interval() is None
    assert path_receiver.pending() == []
    n.close()


@pytest.mark.parametrize("value", ["relative/path", "@", "vsock:2:1234"])
def test_unsupported_addresses_disable_notifications(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="voicegw.io.systemd"):
        n = Notifier({"NOTIFY_SOCKET": value})
    assert not n.enabled
    assert not n.ready()
    assert "not an absolute path" in caplog.text


def test_send_errors_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    missing = "\0" + f"voicegw-test-absent-{uuid.uuid4().hex}"
    n = Notifier({"NOTIFY_SOCKET": "@" + missing[1:]})
    with caplog.at_level(logging.DEBUG, logger="voicegw.io.systemd"):
        assert not n.watchdog()
        assert not n.watchdog()
        assert not n.status("x")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "sd_notify to @voicegw-test-absent-" in warnings[0].getMessage()
    n.close()


def test_a_full_receiver_never_blocks_the_sender(
    path_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """systemd not reading: sends fail at once (EAGAIN) instead of blocking the event loop."""
    n = Notifier({"NOTIFY_SOCKET": path_receiver.notify_socket})

    def fill() -> list[bool]:
        results = []
        for _ in range(10_000):
            results.append(n.watchdog())
            if not results[-1]:
                break
        return results

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="voicegw.io.systemd"):
        results = fill()
        assert not n.watchdog()
    assert results[0] and not results[-1]
    assert time.monotonic() - started < 2000 * MS
    assert len(caplog.records) == 1
    # Once systemd reads again, sends succeed again; a new failure is reported again.
    path_receiver.pending()
    assert n.watchdog()
    with caplog.at_level(logging.WARNING, logger="voicegw.io.systemd"):
        fill()
    assert len(caplog.records) == 2
    n.close()


# ------------------------------------------------------------------ WATCHDOG_USEC


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000"}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_the_environment(
    env: dict[str, str], expected: float | None
) -> None:
    assert Notifier(env, pid=4242).watchdog_interval() == expected


def test_watchdog_pid_defaults_to_this_process() -> None:
    env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(env).watchdog_interval() == 1.0
    env["WATCHDOG_PID"] = str(os.getpid() + 1)
    assert Notifier(env).watchdog_interval() is None


def test_the_environment_is_read_from_os_environ_by_default(
    path_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_receiver.notify_socket)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = Notifier()
    assert n.watchdog_interval() == 2.0
    assert n.ready()
    assert path_receiver.recv() == ["READY=1"]
    n.close()


# ------------------------------------------------------------------ feed_watchdog


class _Done(Exception):
    pass


async def test_feed_watchdog_pings_only_while_capture_and_loop_live(
    path_receiver: Receiver,
) -> None:
    """A fake sleep moves a fake clock; the capture dies at 40 s; the run ends at 80 s."""
    clock = FakeClock()
    policy = WatchdogPolicy(30.0, capture_timeout_s=5.0)
    n = Notifier({"NOTIFY_SOCKET": path_receiver.notify_socket})
    pinged_at: list[float] = []
    original = n.watchdog

    def watchdog() -> bool:
        pinged_at.append(clock.now())
        return original()

    n.watchdog = watchdog  # type: ignore[method-assign]

    async def sleep(seconds: float) -> None:
        assert seconds == policy.check_period_s
        clock.advance(seconds)
        if clock.now() > 80.0:
            raise _Done
        if clock.now() <= 40.0:
            policy.capture_alive(clock.now())
        policy.loop_tick(clock.now())

    with pytest.raises(_Done):
        await feed_watchdog(n, policy, clock=clock, sleep=sleep)
    n.close()

    assert pinged_at == [3.75, 18.75, 33.75]  # from the first frame, every 15 s, then none
    messages = path_receiver.pending()
    assert messages == [
        ["STATUS=watchdog: no capture frame yet"],
        ["WATCHDOG=1"],
        ["STATUS=running"],
        ["WATCHDOG=1"],
        ["WATCHDOG=1"],
        ["STATUS=watchdog: capture stalled"],
    ]


async def test_feed_watchdog_runs_until_cancelled_with_real_sleep(
    path_receiver: Receiver,
) -> None:
    import asyncio

    policy = WatchdogPolicy(200 * MS, capture_timeout_s=1000 * MS)
    clock = FakeClock(100.0)
    policy.capture_alive(100.0)
    policy.loop_tick(100.0)
    n = Notifier({"NOTIFY_SOCKET": path_receiver.notify_socket})
    task = asyncio.create_task(feed_watchdog(n, policy, clock=clock))
    loop = asyncio.get_running_loop()
    first = await asyncio.wait_for(loop.sock_recv(_nonblocking(path_receiver.sock), 4096), 1.0)
    assert first == b"WATCHDOG=1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    n.close()


def _nonblocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock
