"""PttGate: the push-to-talk machine, on synthetic times (no clock is read anywhere)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voicegw.errors import ConfigError
from voicegw.ptt import (
    Interrupt,
    PttGate,
    PttMode,
    PttState,
    StartTalking,
    StopTalking,
)


def hold(**kw: float | None) -> PttGate:
    return PttGate("hold", **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"mode": "push"}, "mode"),
        ({"bounce_ms": -1.0}, "bounce_ms"),
        ({"bounce_ms": float("nan")}, "bounce_ms"),
        ({"min_hold_ms": float("inf")}, "min_hold_ms"),
        ({"max_hold_s": 0.0}, "max_hold_s"),
        ({"max_hold_s": -5.0}, "max_hold_s"),
        ({"bounce_ms": True}, "bounce_ms"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        PttGate(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


def test_mode_accepts_names_and_enum_members() -> None:
    assert PttGate("toggle").mode is PttMode.TOGGLE
    assert PttGate(PttMode.INTERRUPT).mode is PttMode.INTERRUPT
    gate = PttGate()
    assert gate.mode is PttMode.HOLD
    assert gate.state is PttState.IDLE
    assert not gate.talking and not gate.pressed
    assert gate.deadline() is None


# ---------------------------------------------------------------- hold


def test_hold_press_interrupts_then_starts_once_held_dated_at_the_press() -> None:
    gate = hold(min_hold_ms=150)
    assert gate.edge(True, 10.0) == [Interrupt(10.0)]
    assert gate.state is PttState.PENDING
    assert gate.deadline() == pytest.approx(10.15)
    assert gate.tick(10.149) == []
    assert gate.tick(10.15) == [StartTalking(10.0)]
    assert gate.state is PttState.TALKING and gate.talking
    assert gate.edge(False, 12.0) == [StopTalking(12.0, "released")]
    assert gate.state is PttState.IDLE
    assert gate.tick(100.0) == []


def test_hold_tap_only_interrupts_and_is_counted() -> None:
    gate = hold(min_hold_ms=150)
    assert gate.edge(True, 1.0) == [Interrupt(1.0)]
    assert gate.edge(False, 1.1) == []
    assert gate.state is PttState.IDLE
    assert gate.stats.taps == 1
    assert gate.tick(5.0) == []


def test_hold_release_after_min_hold_without_a_tick_starts_then_stops() -> None:
    gate = hold(min_hold_ms=150)
    gate.edge(True, 0.0)
    assert gate.edge(False, 2.0) == [StartTalking(0.0), StopTalking(2.0, "released")]


def test_hold_without_min_hold_starts_on_the_press_alone() -> None:
    gate = hold(min_hold_ms=0)
    assert gate.edge(True, 0.0) == [StartTalking(0.0)]
    assert gate.talking
    assert gate.edge(False, 0.5) == [StopTalking(0.5, "released")]


def test_hold_max_hold_ends_a_stuck_button_and_swallows_its_release() -> None:
    gate = hold(min_hold_ms=0, max_hold_s=5.0)
    assert gate.edge(True, 0.0) == [StartTalking(0.0)]
    assert gate.deadline() == pytest.approx(5.0)
    assert gate.tick(4.999) == []
    assert gate.tick(5.0) == [StopTalking(5.0, "max_hold")]
    assert gate.state is PttState.WAIT_RELEASE and not gate.talking
    assert gate.stats.max_hold_stops == 1
    assert gate.tick(60.0) == []
    assert gate.edge(False, 61.0) == []
    assert gate.state is PttState.IDLE
    assert gate.edge(True, 62.0) == [StartTalking(62.0)]


def test_max_hold_counts_from_the_press_and_fires_before_a_late_edge() -> None:
    gate = hold(min_hold_ms=150, max_hold_s=5.0)
    gate.edge(True, 0.0)
    assert gate.edge(False, 9.0) == [StartTalking(0.0), StopTalking(5.0, "max_hold")]
    assert gate.state is PttState.IDLE


def test_no_max_hold_never_ends_a_talk() -> None:
    gate = hold(min_hold_ms=0, max_hold_s=None)
    gate.edge(True, 0.0)
    assert gate.deadline() is None
    assert gate.tick(1e6) == []
    assert gate.talking


def test_reset_in_hold_waits_for_the_release_of_a_held_button() -> None:
    gate = hold(min_hold_ms=0)
    gate.edge(True, 0.0)
    gate.reset()
    assert gate.state is PttState.WAIT_RELEASE
    assert gate.edge(False, 1.0) == []
    assert gate.edge(True, 2.0) == [StartTalking(2.0)]


def test_reset_with_the_button_up_goes_idle() -> None:
    gate = PttGate("toggle")
    gate.edge(True, 0.0)
    gate.edge(False, 0.2)
    gate.reset()
    assert gate.state is PttState.IDLE
    assert gate.edge(True, 1.0) == [StartTalking(1.0)]


# ---------------------------------------------------------------- toggle and interrupt


def test_toggle_presses_alternate_and_releases_do_nothing() -> None:
    gate = PttGate("toggle")
    assert gate.edge(True, 0.0) == [StartTalking(0.0)]
    assert gate.edge(False, 0.2) == []
    assert gate.talking
    assert gate.edge(True, 3.0) == [StopTalking(3.0, "toggled")]
    assert gate.edge(False, 3.2) == []
    assert gate.state is PttState.IDLE
    assert gate.edge(True, 4.0) == [StartTalking(4.0)]


def test_toggle_left_on_is_ended_by_max_hold() -> None:
    gate = PttGate("toggle", max_hold_s=30.0)
    gate.edge(True, 0.0)
    gate.edge(False, 0.1)
    assert gate.tick(30.0) == [StopTalking(30.0, "max_hold")]
    assert gate.state is PttState.IDLE
    assert gate.edge(True, 31.0) == [StartTalking(31.0)]


def test_interrupt_mode_never_talks() -> None:
    gate = PttGate("interrupt")
    for i in range(3):
        t = float(i)
        assert gate.edge(True, t) == [Interrupt(t)]
        assert gate.edge(False, t + 0.5) == []
        assert gate.state is PttState.IDLE
    assert gate.tick(1000.0) == []
    assert gate.deadline() is None


# ---------------------------------------------------------------- debounce


def test_contact_bounce_is_one_press_and_one_release() -> None:
    gate = hold(min_hold_ms=150, bounce_ms=50)
    actions = []
    # A press that chatters for 8 ms, then a release that chatters for 6 ms.
    for pressed, t in [(True, 0.0), (False, 0.002), (True, 0.004), (False, 0.006), (True, 0.008)]:
        actions += gate.edge(pressed, t)
    actions += gate.tick(0.2)
    for pressed, t in [(False, 1.0), (True, 1.003), (False, 1.006)]:
        actions += gate.edge(pressed, t)
    actions += gate.tick(2.0)
    assert actions == [Interrupt(0.0), StartTalking(0.0), StopTalking(1.0, "released")]
    assert gate.stats.edges == 8
    assert gate.stats.accepted == 2
    assert gate.stats.bounced == 6


def test_a_release_inside_the_window_still_counts_once_it_settles() -> None:
    gate = hold(min_hold_ms=0, bounce_ms=50)
    assert gate.edge(True, 0.0) == [StartTalking(0.0)]
    assert gate.edge(False, 0.03) == []
    assert gate.stats.bounced == 1
    assert gate.deadline() == pytest.approx(0.05)
    assert gate.tick(0.049) == []
    assert gate.tick(0.05) == [StopTalking(0.03, "released")]
    assert not gate.pressed


def test_a_settled_release_comes_before_the_next_press() -> None:
    gate = hold(min_hold_ms=0, bounce_ms=50)
    gate.edge(True, 0.0)
    gate.edge(False, 0.03)
    assert gate.edge(True, 0.2) == [StopTalking(0.03, "released"), StartTalking(0.2)]


def test_a_very_short_tap_inside_the_window_is_still_a_tap() -> None:
    gate = hold(min_hold_ms=150, bounce_ms=50)
    assert gate.edge(True, 0.0) == [Interrupt(0.0)]
    assert gate.edge(False, 0.01) == []
    assert gate.tick(1.0) == []
    assert gate.state is PttState.IDLE
    assert gate.stats.taps == 1


def test_bounce_back_to_the_accepted_level_changes_nothing() -> None:
    gate = hold(min_hold_ms=0, bounce_ms=50)
    gate.edge(True, 0.0)
    gate.edge(False, 0.01)
    gate.edge(True, 0.02)
    assert gate.deadline() == pytest.approx(60.0)  # only max hold is pending
    assert gate.tick(1.0) == []
    assert gate.talking


def test_repeated_levels_are_ignored_and_counted() -> None:
    gate = hold(min_hold_ms=0)
    assert gate.edge(False, 0.0) == []
    assert gate.edge(True, 1.0) == [StartTalking(1.0)]
    assert gate.edge(True, 2.0) == []
    assert gate.stats.repeated == 2
    assert gate.stats.accepted == 1


def test_zero_bounce_accepts_edges_at_the_same_instant() -> None:
    gate = hold(min_hold_ms=0, bounce_ms=0)
    assert gate.edge(True, 1.0) == [StartTalking(1.0)]
    assert gate.edge(False, 1.0) == [StopTalking(1.0, "released")]


def test_time_never_goes_backwards_inside_the_gate() -> None:
    gate = hold(min_hold_ms=150)
    gate.edge(True, 5.0)
    assert gate.tick(4.0) == []  # an earlier time counts as 5.0
    assert gate.state is PttState.PENDING
    assert gate.tick(5.15) == [StartTalking(5.0)]


# ---------------------------------------------------------------- purity


@pytest.mark.parametrize("module", ["voicegw.ptt", "voicegw.earcons"])
def test_pure_modules_import_no_event_loop(module: str) -> None:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps([m for m in ('asyncio', 'websockets', 'pyaudio', 'gpiozero', "
        "'evdev') if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
