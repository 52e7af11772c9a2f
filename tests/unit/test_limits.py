"""plan_limits (spec 2.5.4 frame_size_ms / limit_config) and LimitEnforcer."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from voicegw.errors import ConfigError, UnsupportedCodec
from voicegw.limits import DEFAULT_FRAME_MS, LimitEnforcer, LimitPlan, plan_limits
from voicegw.playout import PlayoutBuffer
from voicegw.protocol.objects import OPUS_FRAME_MS, LimitConfig

# ---------------------------------------------------------------- official examples (2.5.4)


def test_pcm_example_50ms_x22_per_second() -> None:
    plan = plan_limits("pcm", 3000, headroom=1.1, frame_size_ms=50)
    assert tuple(plan) == (50.0, 1, 22)
    assert plan.ratio == pytest.approx(1.1)
    assert plan.limit_config() == LimitConfig(period=1, max_frame_num=22)


def test_opus_example_60ms_x17_per_second() -> None:
    frame, period, count = plan_limits("opus", 3000, headroom=1.0, frame_size_ms=60)
    assert (frame, period, count) == (60.0, 1, 17)
    assert count * frame / (period * 1000) == pytest.approx(1.02)


def test_esp_adf_18_opus_frames_is_the_5_percent_plan() -> None:
    plan = plan_limits("opus", 3000, headroom=1.05)
    assert tuple(plan) == (60.0, 1, 18)
    assert plan.ratio == pytest.approx(1.08)


def test_defaults_follow_the_examples() -> None:
    assert plan_limits("pcm", 2000).frame_size_ms == DEFAULT_FRAME_MS["pcm"] == 50.0
    assert plan_limits("g711a", 2000).frame_size_ms == 50.0
    assert plan_limits("opus", 2000).frame_size_ms == 60.0
    assert plan_limits("pcm", 2000).max_frame_num == 22  # default headroom 1.1


# ---------------------------------------------------------------- derived quantities


def test_burst_surplus_and_safe_reply() -> None:
    plan = LimitPlan(50.0, 1, 22)
    assert plan.burst_ms == 1100 and plan.surplus_ms == pytest.approx(100)
    assert plan.backlog_ms(0) == 1100 and plan.backlog_ms(19) == pytest.approx(3000)
    # Windows 0..19 fit a 3000 ms budget: 20 windows x 1.1 s of audio.
    assert plan.safe_reply_s(3000) == pytest.approx(22.0)
    assert plan.safe_reply_s(1099) == 0.0
    assert LimitPlan(50.0, 1, 20).safe_reply_s(1000) == math.inf  # exactly real time


def test_reply_s_is_enforced_with_advice() -> None:
    assert plan_limits("pcm", 3000, headroom=1.1, reply_s=22).max_frame_num == 22
    with pytest.raises(ConfigError, match=r"headroom up to 1\.05 \(21 frames\)"):
        plan_limits("pcm", 3000, headroom=1.1, reply_s=40)
    with pytest.raises(ConfigError, match="no ratio >= 1 fits"):
        plan_limits("pcm", 1100, headroom=1.0, reply_s=40, frame_size_ms=30)  # 34 x 30 ms


def test_budget_must_hold_one_window() -> None:
    with pytest.raises(ConfigError, match=r"22 x 50 ms = 1100 ms.*1000 ms budget"):
        plan_limits("pcm", 1000, headroom=1.1)
    assert tuple(plan_limits("pcm", 1000, headroom=1.0)) == (50.0, 1, 20)


@pytest.mark.parametrize(
    ("codec", "kwargs", "error", "match"),
    [
        ("mp3", {}, ConfigError, "mp3_config has no frame_size_ms"),
        ("aac", {}, UnsupportedCodec, "unknown output codec"),
        ("opus", {"frame_size_ms": 30}, ConfigError, "Opus frames are 2.5, 5, 10, 20, 40, 60"),
        ("pcm", {"frame_size_ms": 0.5}, ConfigError, "frame_size_ms"),
        ("pcm", {"frame_size_ms": 1500}, ConfigError, "frame_size_ms"),
        ("pcm", {"headroom": 0.95}, ConfigError, "starves"),
        ("pcm", {"headroom": 3.0}, ConfigError, "headroom"),
        ("pcm", {"period_s": 0}, ConfigError, "period_s"),
        ("pcm", {"period_s": 1.5}, ConfigError, "whole number"),
        ("opus", {"frame_size_ms": 2.5, "period_s": 3600}, ConfigError, "100000"),
    ],
)
def test_rejects(codec: str, kwargs: dict[str, float], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        plan_limits(codec, 10_000_000, **kwargs)  # type: ignore[arg-type]


def test_rejects_bad_budget() -> None:
    for bad in (0, -5, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="budget_ms"):
            plan_limits("pcm", bad)


# ---------------------------------------------------------------- properties


def simulate_fixed_windows(plan: LimitPlan, reply_frames: int) -> tuple[Fraction, Fraction]:
    """Worst-case service: each window's whole allowance at the window's start.

    The device plays at exactly real time from the first delta. Returns the peak backlog
    (right after a burst) and the lowest backlog just before a later burst, in ms, exactly.
    """
    f = Fraction(plan.frame_size_ms)
    period = Fraction(plan.period_s * 1000)
    sent = Fraction(0)
    peak = Fraction(0)
    low = Fraction(10**12)
    remaining = reply_frames
    k = 0
    while remaining:
        if k:
            low = min(low, sent - k * period)
        burst = min(plan.max_frame_num, remaining)
        sent += burst * f
        remaining -= burst
        peak = max(peak, sent - k * period)
        k += 1
    return peak, low


plans = st.builds(
    lambda codec, frame, pcm_frame, headroom, period, budget: (
        codec,
        frame if codec == "opus" else pcm_frame,
        headroom,
        period,
        budget,
    ),
    st.sampled_from(["pcm", "g711a", "g711u", "opus"]),
    st.sampled_from(OPUS_FRAME_MS),
    st.integers(1, 200).map(float) | st.sampled_from([2.5, 12.5, 62.5]),
    st.floats(1.0, 1.25),
    st.integers(1, 3),
    st.floats(500, 10_000),
)


@settings(max_examples=300, deadline=None)
@given(plans)
def test_plan_invariants(args: tuple[str, float, float, int, float]) -> None:
    codec, frame, headroom, period, budget = args
    try:
        plan = plan_limits(codec, budget, headroom=headroom, frame_size_ms=frame, period_s=period)
    except ConfigError as exc:
        # The only refusal for valid inputs: one window's burst does not fit the budget.
        assert "does not fit" in str(exc)
        n = math.ceil(headroom * period * 1000 / frame - 1e-9)
        assert n * frame > budget
        return
    f, p, n = plan
    assert (f, p) == (frame, period)
    if codec == "opus":
        assert f in OPUS_FRAME_MS
    assert n * f >= p * 1000  # never starves (spec 2.5.4 rule of thumb)
    assert n * f >= headroom * p * 1000 - 1e-6  # at least the asked headroom ...
    assert (n - 1) * f < headroom * p * 1000  # ... and only one frame above it
    assert plan.ratio < headroom + f / (p * 1000) + 1e-9
    assert plan.burst_ms <= budget
    assert plan.surplus_ms == pytest.approx(p * 1000 * (plan.ratio - 1))
    # An evenly paced service never starves either: frame j arrives at j * P / N and the
    # device has played j * P / N ms by then, having received j * f >= that.
    assert Fraction(f) >= Fraction(p * 1000, n)


@settings(max_examples=150, deadline=None)
@given(plans)
def test_safe_reply_is_tight_under_the_worst_case_service(
    args: tuple[str, float, float, int, float],
) -> None:
    codec, frame, headroom, period, budget = args
    try:
        plan = plan_limits(codec, budget, headroom=headroom, frame_size_ms=frame, period_s=period)
    except ConfigError:
        return
    safe = plan.safe_reply_s(budget)
    assume(math.isfinite(safe) and safe < 600)
    frames = round(Fraction(safe * 1000) / Fraction(plan.frame_size_ms))
    peak, low = simulate_fixed_windows(plan, frames)
    assert peak <= Fraction(budget) + Fraction(1, 10**6)  # never flooded up to safe_reply_s
    assert low >= 0  # and never starved
    peak_more, _ = simulate_fixed_windows(plan, frames + plan.max_frame_num)
    assert peak_more > budget  # one more window would flood: the bound is tight


# ---------------------------------------------------------------- LimitEnforcer


def test_enforcer_drop_oldest_returns_the_excess() -> None:
    enforcer = LimitEnforcer(100, 1000)  # 100 samples
    assert enforcer.budget == 100
    assert enforcer.check(80) == 0 and enforcer.room(80) == 20
    assert enforcer.check(130) == 30
    assert enforcer.overruns == 1 and enforcer.dropped == 30 and enforcer.peak == 130
    assert enforcer.room(130) == 0


def test_enforcer_count_policy_only_counts() -> None:
    enforcer = LimitEnforcer(100, 1000, policy="count")
    assert enforcer.check(150) == 0 and enforcer.check(170) == 0
    assert enforcer.overruns == 2 and enforcer.dropped == 0 and enforcer.peak == 170


def test_enforcer_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="budget_ms"):
        LimitEnforcer(0, 1000)
    with pytest.raises(ConfigError, match="rate"):
        LimitEnforcer(100, 0)
    with pytest.raises(ConfigError, match="policy"):
        LimitEnforcer(100, 1000, policy="drop_newest")  # type: ignore[arg-type]


def play_reply(plan: LimitPlan, budget_ms: float, reply_s: float) -> tuple[PlayoutBuffer, int]:
    """A fixed-window service into a PlayoutBuffer guarded by a LimitEnforcer.

    1 sample per ms; the device reads 20 ms every 20 ms, after the writes of the same instant.
    Returns the buffer and the enforcer's drops.
    """
    rate = 1000
    buf = PlayoutBuffer(rate, max_s=60, prefill_ms=0)
    enforcer = LimitEnforcer(budget_ms, rate)
    frame = round(plan.frame_size_ms)
    remaining = round(reply_s * 1000 / frame)
    period = plan.period_s * 1000
    for t in range(0, 120_000, 20):
        if t % period == 0 and remaining:
            for _ in range(min(plan.max_frame_num, remaining)):
                buf.write(np.ones(frame, dtype=np.int16))
                buf.trim(enforcer.check(buf.queued))
            remaining -= min(plan.max_frame_num, remaining)
            if not remaining:
                buf.end_of_reply()
        if buf.read(20) is None and not remaining:
            break
    return buf, enforcer.dropped


def test_plan_and_enforcer_together() -> None:
    plan = plan_limits("pcm", 3000, headroom=1.1)
    buf, dropped = play_reply(plan, 3000, plan.safe_reply_s(3000))
    assert dropped == 0 and buf.stats.underruns == 0
    assert buf.stats.played == 22_000
    buf, dropped = play_reply(plan, 3000, 30.0)  # longer than the plan is safe for
    assert dropped > 0 and buf.stats.overflow_dropped == dropped
    assert buf.stats.underruns == 0
