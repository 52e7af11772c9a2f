"""WatchdogPolicy: fed only while capture and loop are alive, at half the interval; fake times."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voicegw.watchdog import WatchdogPolicy


def alive_policy(interval_s: float = 30.0, capture_timeout_s: float = 5.0) -> WatchdogPolicy:
    p = WatchdogPolicy(interval_s, capture_timeout_s=capture_timeout_s)
    p.capture_alive(0.0)
    p.loop_tick(0.0)
    return p


def pings(policy: WatchdogPolicy, times: list[float], *, feed: bool = True) -> list[float]:
    """Ask the policy at each time (feeding both inputs first when ``feed``); the ping times."""
    out = []
    for t in times:
        if feed:
            policy.capture_alive(t)
            policy.loop_tick(t)
        if policy.should_ping(t):
            out.append(t)
    return out


def test_periods_derive_from_the_systemd_interval() -> None:
    p = WatchdogPolicy(30.0, capture_timeout_s=5.0)
    assert p.ping_period_s == 15.0
    assert p.check_period_s == 3.75
    assert p.loop_timeout_s == 15.0
    assert WatchdogPolicy(30.0, capture_timeout_s=5.0, loop_timeout_s=2.0).loop_timeout_s == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval_s": 0.0, "capture_timeout_s": 5.0},
        {"interval_s": 30.0, "capture_timeout_s": 0.0},
        {"interval_s": 30.0, "capture_timeout_s": -1.0},
        {"interval_s": 30.0, "capture_timeout_s": 5.0, "loop_timeout_s": 0.0},
        {"interval_s": float("nan"), "capture_timeout_s": 5.0},
    ],
)
def test_non_positive_durations_are_refused(kwargs: dict[str, float]) -> None:
    interval = kwargs.pop("interval_s")
    with pytest.raises(ValueError, match="must be positive"):
        WatchdogPolicy(interval, **kwargs)


def test_no_ping_before_the_first_capture_frame() -> None:
    p = WatchdogPolicy(30.0, capture_timeout_s=5.0)
    p.loop_tick(0.0)
    assert not p.should_ping(0.0)
    assert p.failure(0.0) == "no capture frame yet"
    p.capture_alive(1.0)
    assert p.should_ping(1.0)
    assert p.failure(1.0) is None


def test_no_ping_before_the_first_loop_tick() -> None:
    p = WatchdogPolicy(30.0, capture_timeout_s=5.0)
    p.capture_alive(0.0)
    assert not p.should_ping(0.0)
    assert p.failure(0.0) == "event loop stalled"


def test_healthy_pings_at_half_the_interval() -> None:
    p = WatchdogPolicy(30.0, capture_timeout_s=5.0)
    times = [t * 0.5 for t in range(0, 121)]  # 0 .. 60 s, checked every 0.5 s
    assert pings(p, times) == [0.0, 15.0, 30.0, 45.0, 60.0]


def test_a_true_answer_is_the_ping_and_is_not_repeated() -> None:
    p = alive_policy()
    assert p.should_ping(0.0)
    assert not p.should_ping(0.0)
    assert not p.should_ping(14.999)


def test_dead_capture_stops_the_pings_and_recovery_resumes_them() -> None:
    p = alive_policy(interval_s=30.0, capture_timeout_s=5.0)
    assert p.should_ping(0.0)
    for t in range(1, 16):  # the loop keeps ticking; the capture delivered nothing since 0
        p.loop_tick(float(t))
    assert not p.capture_ok(15.0)
    assert not p.should_ping(15.0)
    assert p.failure(15.0) == "capture stalled"
    # Exactly at the timeout the capture still counts as alive; just after, it does not.
    assert p.capture_ok(5.0) and not p.capture_ok(5.001)
    p.capture_alive(16.0)
    p.loop_tick(16.0)
    assert p.should_ping(16.0)


def test_stalled_loop_stops_the_pings_even_with_capture_frames() -> None:
    p = alive_policy(interval_s=30.0, capture_timeout_s=5.0)
    assert p.should_ping(0.0)
    for t in range(1, 40):  # frames keep arriving (the audio thread), the loop tick does not
        p.capture_alive(float(t))
    assert p.loop_ok(15.0) and not p.loop_ok(15.001)
    assert not p.should_ping(20.0)
    assert p.failure(20.0) == "event loop stalled"


def test_capture_death_leaves_systemd_a_full_interval_without_pings() -> None:
    """From the last ping before the capture died, no ping comes for longer than WatchdogSec."""
    interval = 30.0
    p = WatchdogPolicy(interval, capture_timeout_s=5.0)
    step = p.check_period_s
    sent = []
    t = 0.0
    while t <= 120.0:
        if t <= 40.0:  # the capture dies at 40 s
            p.capture_alive(t)
        p.loop_tick(t)
        if p.should_ping(t):
            sent.append(t)
        t += step
    assert sent[-1] <= 40.0
    assert 120.0 - sent[-1] > interval  # systemd's timer ran out: the service is restarted


def test_a_gap_shorter_than_the_timeout_does_not_interrupt_the_pings() -> None:
    p = WatchdogPolicy(30.0, capture_timeout_s=5.0)
    times = [t * 0.25 for t in range(0, 241)]  # 0 .. 60 s
    sent = []
    for t in times:
        if not 20.0 < t < 24.0:  # a 4 s hiccup, under the 5 s timeout
            p.capture_alive(t)
        p.loop_tick(t)
        if p.should_ping(t):
            sent.append(t)
    assert sent == [0.0, 15.0, 30.0, 45.0, 60.0]


def test_the_module_does_no_io() -> None:
    code = (
        "import json, sys, voicegw.watchdog\n"
        "print(json.dumps([m for m in ('asyncio', 'socket') if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
