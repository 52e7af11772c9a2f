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


# ---------------------------------------------------------------- fade on flush (barge-in)


def test_flush_with_fade_plays_a_decreasing_fade_then_nothing() -> None:
    buf = PlayoutBuffer(16000, prefill_ms=0)
    buf.write(np.full(16000, 20000, dtype=np.int16))
    first = buf.read(320)
    assert first is not None and first[-1] == 20000
    dropped = buf.flush(fade_ms=10)  # 160 samples kept for the fade
    assert dropped == 16000 - 320 - 160
    assert not buf.idle and not buf.playing
    out = buf.read(320)  # one device period of 20 ms
    assert out is not None and len(out) == 320
    fade = out[:160].astype(np.int32)
    assert np.all(np.diff(fade) < 0)  # strictly decreasing (constant input)
    assert fade[0] < 20000 and 0 <= fade[-1] < 200
    assert not out[160:].any()  # silence after the fade
    assert buf.read(320) is None and buf.idle
    assert buf.stats.fades == 1 and buf.stats.faded == 160
    assert buf.stats.flushed == dropped


def test_fade_follows_the_audio_that_was_at_the_head() -> None:
    buf = PlayoutBuffer(16000, prefill_ms=0)
    head = (np.sin(np.arange(1000) / 7.0) * 10000).astype(np.int16)
    buf.write(head)
    buf.read(100)
    buf.flush(fade_ms=5)  # 80 samples
    out = buf.read(160)
    assert out is not None
    src = head[100:180].astype(np.float64)
    gain = out[:80] / np.where(src == 0, 1, src)
    ok = np.abs(src) > 500  # where the ratio is well defined
    assert np.all(np.diff(gain[ok]) < 1e-3)  # the envelope only goes down
    assert np.all((gain[ok] > 0) & (gain[ok] < 1))


def test_fade_is_shortened_to_one_device_period() -> None:
    buf = PlayoutBuffer(48000, prefill_ms=0)
    buf.write(np.full(4800, 10000, dtype=np.int16))
    buf.read(240)
    buf.flush(fade_ms=20)  # 960 samples kept, but the device reads 5 ms periods
    out = buf.read(240)
    assert out is not None and len(out) == 240
    assert np.all(np.diff(out.astype(np.int32)) < 0) and out[-1] < 100
    assert buf.read(240) is None  # silent from the second period on
    assert buf.stats.faded == 240
    # Every written sample is accounted for; the unplayed part of the fade counts as flushed.
    st = buf.stats
    assert st.flushed == 4800 - 240 - 240
    assert st.written == st.played + st.faded + st.flushed + buf.queued


def test_fade_only_when_audio_was_playing() -> None:
    buf = PlayoutBuffer(16000, prefill_ms=100)
    buf.write(np.full(800, 1000, dtype=np.int16))  # below prefill: never heard
    assert buf.flush(fade_ms=10) == 800
    assert buf.idle and buf.read(320) is None and buf.stats.fades == 0


def test_new_reply_starts_after_the_fade_and_stale_audio_is_dropped() -> None:
    buf = PlayoutBuffer(16000, prefill_ms=0)
    old = buf.epoch
    buf.write(np.full(3200, 1000, dtype=np.int16), epoch=old)
    buf.read(320)
    buf.flush(fade_ms=10)
    buf.write(np.full(320, 1000, dtype=np.int16), epoch=old)  # late delta: dropped
    buf.write(np.full(640, 7, dtype=np.int16), epoch=buf.epoch)
    fade = buf.read(320)
    assert fade is not None and fade[0] != 7 and not fade[160:].any()
    nxt = buf.read(320)
    assert nxt is not None and np.all(nxt == 7)
    assert buf.stats.stale_dropped == 320


def test_flush_without_fade_cancels_a_pending_fade() -> None:
    buf = PlayoutBuffer(16000, prefill_ms=0)
    buf.write(np.full(3200, 1000, dtype=np.int16))
    buf.read(320)
    buf.flush(fade_ms=10)
    buf.flush()
    assert buf.idle and buf.read(320) is None and buf.stats.fades == 0


@pytest.mark.parametrize("bad", [1.0, 4.9, 20.5, -10.0, float("nan")])
def test_fade_length_is_5_to_20_ms(bad: float) -> None:
    buf = PlayoutBuffer(16000)
    with pytest.raises(ValueError, match="fade_ms"):
        buf.flush(fade_ms=bad)


def test_trim_drops_oldest_and_counts() -> None:
    buf = PlayoutBuffer(1000, prefill_ms=0)
    buf.write(ramp(50))
    buf.write(ramp(50, start=51))
    assert buf.trim(70) == 70 and buf.queued == 30
    assert buf.trim(100) == 30 and buf.queued == 0
    assert buf.stats.overflow_dropped == 100
