"""PreRoll: bounded ring of the newest samples, oldest first on take, drops counted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegw.errors import ConfigError
from voicegw.preroll import PreRoll


def ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_keeps_the_newest_samples_oldest_first() -> None:
    ring = PreRoll(1000, 10)  # 10 samples
    assert ring.capacity == 10
    ring.push(ramp(4))
    ring.push(ramp(4, 4))
    assert len(ring) == 8 and ring.dropped == 0
    ring.push(ramp(5, 8))  # wraps: 13 pushed, the 3 oldest are overwritten
    assert len(ring) == 10 and ring.dropped == 3
    assert ring.take().tolist() == list(range(3, 13))


def test_take_clears_and_take_last_returns_only_the_newest() -> None:
    ring = PreRoll(1000, 10)
    ring.push(ramp(8))
    assert ring.take(3).tolist() == [5, 6, 7]
    assert len(ring) == 0 and ring.dropped == 5  # the 5 older samples were never taken
    assert ring.take().shape == (0,)
    ring.push(ramp(2, 100))
    assert ring.take(50).tolist() == [100, 101]  # asking for more returns what is held


def test_frame_longer_than_the_ring_keeps_its_tail() -> None:
    ring = PreRoll(1000, 10)
    ring.push(ramp(3))
    ring.push(ramp(25, 3))
    assert ring.take().tolist() == list(range(18, 28))
    assert ring.dropped == 18


def test_stereo_frames_keep_rows_together() -> None:
    ring = PreRoll(1000, 5, channels=2)
    frame = np.stack([ramp(7), -ramp(7)], axis=1)
    ring.push(frame[:4])
    ring.push(frame[4:])
    out = ring.take()
    assert out.shape == (5, 2)
    assert np.array_equal(out, frame[2:])


def test_zero_length_ring_keeps_nothing_and_counts() -> None:
    ring = PreRoll(16000, 0)
    ring.push(ramp(320))
    assert len(ring) == 0 and ring.dropped == 320
    assert ring.take().shape == (0,)


def test_clear_counts_and_duration() -> None:
    ring = PreRoll(16000, 300)
    ring.push(ramp(1600))
    assert ring.duration_ms == pytest.approx(100.0)
    ring.clear()
    assert len(ring) == 0 and ring.dropped == 1600


def test_rejects_bad_frames_and_settings() -> None:
    ring = PreRoll(16000, 100)
    with pytest.raises(TypeError):
        ring.push(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        ring.push(np.zeros((10, 2), dtype=np.int16))
    with pytest.raises(ValueError):
        PreRoll(16000, 100, channels=2).push(np.zeros(10, dtype=np.int16))
    with pytest.raises(ConfigError, match="preroll_ms"):
        PreRoll(16000, -1)
    with pytest.raises(ConfigError, match="rate"):
        PreRoll(0, 100)
    with pytest.raises(ConfigError, match="channels"):
        PreRoll(16000, 100, channels=0)


def test_taken_array_does_not_alias_the_ring() -> None:
    ring = PreRoll(1000, 10)
    ring.push(ramp(5))
    out = ring.take()
    ring.push(ramp(5, 50))
    assert out.tolist() == [0, 1, 2, 3, 4]


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(0, 40),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.integers(0, 60)),
            st.tuples(st.just("take"), st.one_of(st.none(), st.integers(0, 50))),
        ),
        max_size=40,
    ),
)
def test_matches_a_reference_model(capacity: int, ops: list[tuple[str, int | None]]) -> None:
    """Every take equals the newest samples of a plain list; pushed = taken + dropped + held."""
    ring = PreRoll(1000, capacity)
    model: list[int] = []
    pushed = taken = 0
    for op, arg in ops:
        if op == "push":
            assert arg is not None
            frame = ramp(arg, pushed)
            ring.push(frame)
            model = (model + frame.tolist())[-capacity:] if capacity else []
            pushed += arg
        else:
            want = model if arg is None else model[len(model) - min(arg, len(model)) :]
            got = ring.take(arg)
            assert got.tolist() == want
            taken += len(got)
            model = []
        assert len(ring) == len(model) <= capacity
        assert pushed == taken + ring.dropped + len(ring)
