"""The pure delay policy behind reconnects and device reopening (voicegw.retry)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw import gateway
from voicegw.retry import SLOW_RETRY_S, RetryPolicy


def no_jitter() -> float:
    return 0.0


def full_jitter() -> float:
    return 1.0


def test_ordinary_failures_double_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_s=0.5, cap_s=5.0, rng=no_jitter)
    assert [policy.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert policy.failures == 7


def test_jitter_only_shortens_a_delay_by_at_most_the_jitter_share() -> None:
    policy = RetryPolicy(initial_s=1.0, cap_s=8.0, jitter=0.25, rng=full_jitter)
    assert [policy.next_delay() for _ in range(5)] == [0.75, 1.5, 3.0, 6.0, 6.0]


def test_billing_stops_wait_ten_minutes_and_rate_limits_one() -> None:
    policy = RetryPolicy(rng=no_jitter)
    assert policy.next_delay(4027) == 600.0
    assert policy.next_delay(4028) == 600.0
    assert policy.next_delay(4013) == 60.0
    # The backoff advanced underneath (0.5, 1, 2 were skipped over): a network error next
    # waits 4 s, not half a second.
    assert policy.next_delay() == 4.0
    assert policy.next_delay(None) == 8.0
    # Other codes (a 5xx mapped to 5000, an unknown code) are ordinary failures.
    assert policy.next_delay(5000) == 16.0


def test_a_good_connection_starts_the_backoff_again() -> None:
    policy = RetryPolicy(initial_s=0.5, cap_s=30.0, rng=no_jitter)
    for _ in range(4):
        policy.next_delay()
    policy.reset()
    assert policy.failures == 0
    assert policy.next_delay() == 0.5
    # ... but never shortens a slow wait.
    policy.reset()
    assert policy.next_delay(4028) == 600.0


def test_slow_codes_can_be_replaced_or_turned_off() -> None:
    device = RetryPolicy(initial_s=0.5, cap_s=10.0, slow={}, rng=no_jitter)
    assert device.next_delay(4028) == 0.5
    custom = RetryPolicy(slow={4013: 5.0}, rng=no_jitter)
    assert custom.next_delay(4013) == 5.0
    assert custom.next_delay(4027) == 1.0


def test_the_gateway_and_the_policy_share_one_table() -> None:
    assert gateway.SLOW_RETRY_S is SLOW_RETRY_S
    assert {4013, 4027, 4028} == gateway.SLOW_RETRY_CODES
    with pytest.raises(TypeError):
        SLOW_RETRY_S[4013] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_s": 0.0}, {"initial_s": 5.0, "cap_s": 1.0}, {"jitter": 1.0}, {"jitter": -0.1}],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


@settings(max_examples=200, deadline=None)
@given(
    codes=st.lists(st.sampled_from([None, 4013, 4027, 4028, 5000, 503]), max_size=30),
    initial=st.floats(0.01, 5.0),
    cap_factor=st.floats(1.0, 100.0),
    jitter=st.floats(0.0, 0.99),
    rolls=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=10),
)
def test_every_delay_is_within_the_jittered_backoff_or_the_slow_wait(
    codes: list[int | None], initial: float, cap_factor: float, jitter: float, rolls: list[float]
) -> None:
    cap = initial * cap_factor
    rng = itertools.cycle(rolls).__next__
    policy = RetryPolicy(initial_s=initial, cap_s=cap, jitter=jitter, rng=rng)
    for n, code in enumerate(codes):
        top = min(cap, initial * 2.0**n)
        delay = policy.next_delay(code)
        slow = SLOW_RETRY_S.get(code, 0.0) if code is not None else 0.0
        assert delay >= slow
        if delay > slow:
            assert top * (1 - jitter) - 1e-9 <= delay <= top + 1e-9
        assert delay <= max(top, slow) + 1e-9
