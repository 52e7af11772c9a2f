"""PlayoutBuffer and Pacer: bounded, epoch flush, prefill, underrun; absolute timeline."""

from __future__ import annotations

import numpy as np
import pytest

from voicegw.clock import FakeClock
from voicegw.playout import Pacer, PlayoutBuffer


def ramp(n: int, start: int = 1) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int16)


def test_prefill_gates_start_then_plays_in_order() -> None:
    buf = PlayoutBuffer(1000, max_s=1.0, prefill_ms=50)  # prefill = 50 samples
    buf.write(ramp(30))
    assert buf.read(10) is None  # below prefill: nothing plays yet
    buf.write(ramp(30, start=31))
    out = buf.read(40)
    assert out is not None
    assert out.tolist() == list(range(1, 41))
    assert buf.queued == 20


def test_underrun_pads_silence_and_is_counted() -> None:
    buf = PlayoutBuffer(1000, prefill_ms=10)
    buf.write(ramp(15))
    out = buf.read(20)
    assert out is not None and len(out) == 20
    assert out[:15].tolist() == list(range(1, 16))
    assert not out[15:].any()
    assert buf.stats.underruns == 1 and buf.stats.underrun_samples == 5
    assert buf.playing  # a reply in progress keeps playing through an underrun


def test_end_of_reply_starts_below_prefill_and_stops_when_drained() -> None:
    buf = PlayoutBuffer(1000, prefill_ms=500)
    buf.write(ramp(30))
    assert buf.read(10) is None
    buf.end_of_reply()
    first = buf.read(20)
    assert first is not None and first.tolist() == list(range(1, 21))
    tail = buf.read(20)
    assert tail is not None and tail.tolist() == list(range(21, 31))  # short, not padded
    assert buf.read(20) is None and buf.idle
    assert buf.stats.underruns == 0


def test_overflow_drops_oldest_and_counts() -> None:
    buf = PlayoutBuffer(100, max_s=1.0, prefill_ms=0)  # cap 100 samples
    buf.write(ramp(80))
    buf.write(ramp(50, start=81))
    assert buf.queued == 100
    assert buf.stats.overflow_dropped == 30
    out = buf.read(100)
    assert out is not None and out[0] == 31 and out[-1] == 130


def test_flush_empties_at_once_and_drops_stale_epoch() -> None:
    buf = PlayoutBuffer(1000, prefill_ms=0)
    old_epoch = buf.epoch
    buf.write(ramp(500), epoch=old_epoch)
    assert buf.flush() == 500
    assert buf.idle and buf.read(10) is None
    buf.write(ramp(100), epoch=old_epoch)  # a late delta of the cancelled reply
    assert buf.queued == 0 and buf.stats.stale_dropped == 100
    buf.write(ramp(100), epoch=buf.epoch)
    assert buf.queued == 100


@pytest.mark.parametrize("bad", [(0, 1.0, 0), (1000, 0, 0), (1000, 1.0, -1)])
def test_rejects_bad_sizes(bad: tuple[int, float, float]) -> None:
    rate, max_s, prefill = bad
    with pytest.raises(ValueError):
        PlayoutBuffer(rate, max_s=max_s, prefill_ms=prefill)


def test_pacer_deadlines_do_not_accumulate_jitter() -> None:
    clock = FakeClock(10.0)
    pacer = Pacer(0.02, clock.now())
    ticks = 0
    for _ in range(100):
        # Each wake-up is 3 ms late; deadlines stay on start + k * period.
        clock.set(pacer.next_deadline() + 0.003)
        ticks += pacer.due(clock.now())
    assert ticks == 100
    assert pacer.next_deadline() == pytest.approx(10.0 + 100 * 0.02)
    assert pacer.resyncs == 0


def test_pacer_catches_up_small_lag_and_resyncs_large_lag() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(0.02, 0.0, max_lag_s=0.1)
    assert pacer.due(0.0) == 1
    assert pacer.due(0.065) == 3  # deadlines 0.02, 0.04, 0.06
    clock.set(5.0)  # the process stalled: do not burst 250 periods
    assert pacer.due(clock.now()) == 1
    assert pacer.resyncs == 1
    assert pacer.next_deadline() == pytest.approx(5.02)
    assert pacer.due(5.01) == 0
