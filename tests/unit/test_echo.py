"""EchoGuard policies (half duplex, duck, full duplex), the tail, and default_policy."""

from __future__ import annotations

import numpy as np
import pytest

from voicegw.clock import FakeClock
from voicegw.dsp import db_to_gain
from voicegw.echo import EchoGuard, EchoState, default_policy
from voicegw.errors import ConfigError

FRAME_S = 0.02


def frame(value: int = 1000, n: int = 320) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def run(guard: EchoGuard, clock: FakeClock, seconds: float) -> list[bool]:
    """Gate 20 ms frames for ``seconds``; True where the frame passed unchanged."""
    passed = []
    for _ in range(round(seconds / FRAME_S)):
        clock.advance(FRAME_S)
        f = frame()
        out = guard.gate(f, clock.now())
        passed.append(out is f)
    return passed


def test_half_duplex_mutes_during_playback_and_tail() -> None:
    clock = FakeClock(50.0)
    guard = EchoGuard("half_duplex", tail_ms=300)
    assert guard.state is EchoState.OPEN
    assert all(run(guard, clock, 0.2))
    guard.playback(True, clock.now())
    assert guard.state is EchoState.PLAYING
    assert guard.gate(frame(), clock.now() + 0.01) is None
    assert not any(run(guard, clock, 1.0))
    stop = clock.now()
    guard.playback(False, stop)
    assert guard.state is EchoState.TAIL
    clock.advance(0.299)
    assert guard.muted(clock.now()) and guard.gate(frame(), clock.now()) is None
    clock.set(stop + 0.3)
    out = guard.gate(f := frame(), clock.now())
    assert out is f and guard.state is EchoState.OPEN
    assert guard.stats.muted == 1 + 50 + 1 and guard.stats.passed == 10 + 1


def test_repeated_playback_edges_are_idempotent() -> None:
    guard = EchoGuard("half_duplex", tail_ms=100)
    guard.playback(True, 0.0)
    guard.playback(False, 1.0)
    guard.playback(False, 1.05)  # a later "still not playing" must not extend the tail
    assert guard.gate(frame(), 1.099) is None
    assert guard.gate(frame(), 1.1) is not None
    guard.playback(False, 2.0)  # already open: stays open
    assert guard.state is EchoState.OPEN and guard.gate(frame(), 2.0) is not None


def test_playback_resuming_in_the_tail_mutes_again_until_its_own_tail() -> None:
    guard = EchoGuard("half_duplex", tail_ms=200)
    guard.playback(True, 0.0)
    guard.playback(False, 1.0)
    guard.playback(True, 1.1)
    assert guard.state is EchoState.PLAYING
    assert guard.gate(frame(), 1.5) is None  # past the first tail, but playing again
    guard.playback(False, 2.0)
    assert guard.gate(frame(), 2.1) is None
    assert guard.gate(frame(), 2.2) is not None


def test_duck_attenuates_by_duck_db_instead_of_muting() -> None:
    guard = EchoGuard("duck", tail_ms=100, duck_db=-20)
    loud = frame(10000)
    assert guard.gate(loud, 0.0) is loud
    guard.playback(True, 0.0)
    out = guard.gate(loud, 0.02)
    assert out is not None and out is not loud
    assert out.dtype == np.int16 and out.shape == loud.shape
    assert out[0] == round(10000 * db_to_gain(-20)) == 1000
    guard.playback(False, 1.0)
    ducked = guard.gate(loud, 1.05)
    assert ducked is not None and ducked[0] == 1000  # still ducked in the tail
    assert guard.gate(loud, 1.1) is loud
    assert guard.stats.ducked == 2 and guard.stats.muted == 0
    assert not guard.muted(0.5)


def test_full_duplex_passes_everything_but_still_tracks_playback() -> None:
    clock = FakeClock()
    guard = EchoGuard("full_duplex")
    guard.playback(True, 0.0)
    assert all(run(guard, clock, 0.5))
    assert guard.state is EchoState.PLAYING
    assert guard.stats.passed == 25 and guard.stats.muted == 0


@pytest.mark.parametrize(
    ("mode", "aec", "policy"),
    [
        ("ptt", False, "full_duplex"),
        ("server_vad", False, "half_duplex"),
        ("semantic_vad", False, "half_duplex"),
        ("local_vad", False, "half_duplex"),
        ("server_vad", True, "full_duplex"),
        ("ptt", True, "full_duplex"),
    ],
)
def test_default_policy(mode: str, aec: bool, policy: str) -> None:
    assert default_policy(mode, aec=aec) == policy


def test_default_policy_rejects_unknown_modes() -> None:
    with pytest.raises(ConfigError, match="turn_mode"):
        default_policy("wake_word")


def test_why_ptt_is_not_half_duplex() -> None:
    """A press flushes playback, so under half duplex the tail would mute the first words.

    The reply plays until the press at t=10; the user starts speaking right away. The
    default PTT policy passes every frame of the press; half duplex would drop the first
    tail_ms of the utterance, the syllable the pre-roll exists to keep.
    """
    results = {}
    for policy in ("half_duplex", default_policy("ptt")):
        guard = EchoGuard(policy, tail_ms=310)
        guard.playback(True, 5.0)
        guard.playback(False, 10.0)  # the press cancels the reply and flushes playback
        clock = FakeClock(10.0)
        results[policy] = run(guard, clock, 1.0)
    assert all(results["full_duplex"])
    lost = results["half_duplex"].count(False)
    assert lost == 15  # the frames captured at 10.02 ... 10.30 fall inside the 310 ms tail
    assert results["half_duplex"][:15] == [False] * 15


def test_why_vad_modes_are_half_duplex() -> None:
    """While the reply plays, a server/local VAD would hear it: half duplex sends nothing."""
    guard = EchoGuard(default_policy("server_vad"))
    clock = FakeClock()
    guard.playback(True, clock.now())
    assert not any(run(guard, clock, 2.0))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"policy": "mute"}, "policy"),
        ({"tail_ms": -1}, "tail_ms"),
        ({"tail_ms": float("nan")}, "tail_ms"),
        ({"duck_db": 20}, "duck_db"),
        ({"duck_db": 0}, "duck_db"),
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        EchoGuard(**kwargs)  # type: ignore[arg-type]
