"""Delta pacing: burst speed, frame_size_ms and limit_config windows (spec 2.4 D7, 2.5.4)."""

from __future__ import annotations

import base64
import itertools
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_emulator_harness import Frame, Harness

from voicegw.emulator.pacing import BURST_SPEED, Limit, schedule, window_index
from voicegw.emulator.turns import Timing


def test_without_a_limit_audio_flows_at_six_times_real_time() -> None:
    times = schedule([0.25] * 8, 10.0)
    assert times == pytest.approx([10.0 + i * 0.25 / BURST_SPEED for i in range(8)])


def test_ready_times_hold_deltas_back() -> None:
    times = schedule([0.1] * 4, 0.0, ready=[0.0, 0.0, 1.0, 1.0])
    assert times[:2] == pytest.approx([0.0, 0.1 / 6]) and times[2] == 1.0
    assert times[3] == pytest.approx(1.0)  # burst pacing is behind by now: no extra wait


def test_fixed_window_is_aligned_to_the_first_delta() -> None:
    times = schedule([0.05] * 50, 3.3, limit=Limit(1.0, 22))
    assert times[0] == 3.3
    assert times[22] == pytest.approx(4.3) and times[44] == pytest.approx(5.3)
    counts = Counter(window_index(t, 3.3, 1.0) for t in times)
    assert counts == {0: 22, 1: 22, 2: 6}


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 300),
    frame_ms=st.sampled_from([2.5, 5, 10, 20, 40, 50, 60]),
    period=st.integers(1, 3),
    max_frames=st.integers(1, 60),
    start=st.floats(0, 1e6),
)
def test_limit_is_never_exceeded(
    n: int, frame_ms: float, period: int, max_frames: int, start: float
) -> None:
    times = schedule([frame_ms / 1000] * n, start, limit=Limit(period, max_frames))
    assert all(b >= a for a, b in itertools.pairwise(times))
    counts = Counter(window_index(t, times[0], period) for t in times)
    assert max(counts.values()) <= max_frames
    slower_than_burst = max_frames * frame_ms / 1000 / period < BURST_SPEED
    if slower_than_burst:  # every window but the last is full: throughput is exactly the limit
        last = max(counts)
        assert all(counts[w] == max_frames for w in range(last))


# ---------------------------------------------------------------- through the core, fake clock


LONG = " ".join(["alpha bravo charlie delta echo foxtrot golf hotel india juliet."] * 4)


def reply_deltas(output_audio: dict, text: str = LONG) -> list[Frame]:
    """The audio deltas of the echo bot's reply to a typed text (one tone per word, ~6 s)."""
    h = Harness("echo")
    h.pump()
    h.update({"output_audio": output_audio})
    h.say(text)
    return [f for f in h.run() if f["event_type"] == "conversation.audio.delta"]


def sizes(deltas: list[Frame]) -> list[int]:
    return [len(base64.b64decode(f["data"]["content"])) for f in deltas]


def test_pcm_frame_size_and_limit_against_the_clock() -> None:
    deltas = reply_deltas(
        {
            "codec": "pcm",
            "pcm_config": {
                "sample_rate": 16000,
                "frame_size_ms": 50,
                "limit_config": {"period": 1, "max_frame_num": 22},
            },
        }
    )
    assert set(sizes(deltas)) == {1600}  # 50 ms at 16 kHz s16, the last one too (padded)
    times = [f["t"] for f in deltas]
    counts = Counter(window_index(t, times[0], 1.0) for t in times)
    assert len(counts) >= 3 and max(counts.values()) <= 22
    assert all(counts[w] == 22 for w in range(max(counts)))
    # throughput over whole windows: 22 x 50 ms of audio per second = 1.1x real time
    full = max(counts)
    assert sum(counts[w] for w in range(full)) * 0.05 / full == pytest.approx(1.1)


def test_opus_limit_counts_frames() -> None:
    deltas = reply_deltas(
        {
            "codec": "opus",
            "opus_config": {
                "frame_size_ms": 60,
                "limit_config": {"period": 1, "max_frame_num": 17},
            },
        }
    )
    times = [f["t"] for f in deltas]
    counts = Counter(window_index(t, times[0], 1.0) for t in times)
    assert max(counts.values()) == 17 and len(counts) >= 2


def test_frame_size_without_a_limit_bursts_at_six_times_real_time() -> None:
    deltas = reply_deltas(
        {"codec": "pcm", "pcm_config": {"sample_rate": 24000, "frame_size_ms": 40}}
    )
    assert set(sizes(deltas)) == {1920}
    times = [f["t"] for f in deltas]
    # sentence boundaries may wait for text; within the stream the pace is 40 ms / 6
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.04 / BURST_SPEED)
    assert (times[-1] - times[0]) < len(deltas) * 0.04 / BURST_SPEED + 0.5


ONE_SENTENCE = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


def test_default_output_bursts_in_250_ms_chunks() -> None:
    deltas = reply_deltas({"codec": "pcm"}, ONE_SENTENCE)
    assert sizes(deltas)[:-1] == [12000] * (len(deltas) - 1)  # 250 ms at 24 kHz
    assert 0 < sizes(deltas)[-1] <= 12000
    times = [f["t"] for f in deltas]
    assert times[1] - times[0] == pytest.approx(0.25 / BURST_SPEED)


def test_limit_without_frame_size_is_ignored() -> None:
    deltas = reply_deltas(
        {"codec": "pcm", "pcm_config": {"limit_config": {"period": 1, "max_frame_num": 1}}},
        ONE_SENTENCE,
    )
    times = [f["t"] for f in deltas]
    assert len(deltas) > 4
    assert times[-1] - times[0] == pytest.approx((len(deltas) - 1) * 0.25 / BURST_SPEED)


def test_burst_speed_is_configurable() -> None:
    h = Harness("echo", timing=Timing(burst_speed=math.inf))
    h.pump()
    h.say(ONE_SENTENCE)
    deltas = [f for f in h.run() if f["event_type"] == "conversation.audio.delta"]
    assert len(deltas) > 4 and len({f["t"] for f in deltas}) == 1
