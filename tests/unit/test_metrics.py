"""Metrics: counters, gauges, histograms, turn latencies, Prometheus text, and life without it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading

import pytest

from voicegw.errors import ConfigError
from voicegw.gateway import TurnReport
from voicegw.metrics import LATENCY_BUCKETS_S, Histogram, Metrics, prometheus_available

NAMES = (
    "voicegw_turns_total",
    "voicegw_reply_latency_seconds",
    "voicegw_play_latency_seconds",
    "voicegw_playback_underruns_total",
    "voicegw_capture_overflows_total",
    "voicegw_dropped_mic_frames_total",
    "voicegw_playback_flushes_total",
    "voicegw_reconnects_total",
    "voicegw_capture_restarts_total",
    "voicegw_cloud_connected",
    "voicegw_capture_alive",
)


def turn(
    status: str, speech_end: float | None, delta: float | None, play: float | None
) -> TurnReport:
    return TurnReport(status=status, speech_end=speech_end, first_delta=delta, first_play=play)


@pytest.fixture
def no_prometheus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import prometheus_client`` fail, as when the extra is not installed."""
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)


# ---------------------------------------------------------------- instruments


def test_counters_start_at_zero_and_only_go_up() -> None:
    m = Metrics()
    assert m.underruns.value() == 0
    m.underruns.inc()
    m.underruns.inc(3)
    assert m.underruns.value() == 4
    with pytest.raises(ValueError, match="only goes up"):
        m.underruns.inc(-1)
    with pytest.raises(ValueError, match="has no label"):
        m.underruns.inc(label="x")


def test_labelled_counter_keeps_one_count_per_label() -> None:
    m = Metrics()
    m.turns.inc(label="completed")
    m.turns.inc(label="completed")
    m.turns.inc(label="canceled")
    assert m.turns.values() == {"completed": 2.0, "canceled": 1.0}
    assert m.turns.value("failed") == 0


def test_gauge_goes_both_ways() -> None:
    m = Metrics()
    m.cloud_connected.set(1)
    assert m.cloud_connected.value == 1.0
    m.cloud_connected.inc(-1)
    assert m.cloud_connected.value == 0.0


def test_histogram_buckets_sum_count_and_quantiles() -> None:
    h = Histogram("x_seconds", "x", buckets=(0.5, 1.0, 2.0), lock=threading.Lock())
    for v in (0.2, 0.5, 0.7, 1.5, 9.0, float("nan")):
        h.observe(v)
    assert h.count == 5
    assert h.sum == pytest.approx(11.9)
    assert h.cumulative() == [(0.5, 2), (1.0, 3), (2.0, 4), (math.inf, 5)]
    assert h.quantile(0.5) == 0.7
    assert h.quantile(0.9) == 9.0
    assert h.quantile(0.0) == 0.2
    with pytest.raises(ValueError):
        h.quantile(1.5)
    assert Histogram("y", "y", buckets=(1.0,), lock=threading.Lock()).quantile(0.5) is None


@pytest.mark.parametrize("buckets", [(), (1.0, 0.5), (1.0, 1.0)])
def test_histogram_buckets_must_increase(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        Histogram("x", "x", buckets=buckets, lock=threading.Lock())


def test_quantiles_use_a_bounded_window_of_recent_values() -> None:
    h = Histogram("x", "x", buckets=LATENCY_BUCKETS_S, lock=threading.Lock())
    for _ in range(1000):
        h.observe(5.0)
    for _ in range(256):
        h.observe(0.1)
    assert h.count == 1256  # the buckets keep everything
    assert h.quantile(0.9) == 0.1  # the quantiles only the recent values


def test_updates_from_threads_are_not_lost() -> None:
    m = Metrics()

    def work() -> None:
        for _ in range(10_000):
            m.overflows.inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.overflows.value() == 40_000


# ------------------------------------------------------------------ turns


def test_observe_turn_counts_and_records_both_latencies() -> None:
    m = Metrics()
    m.observe_turn(turn("completed", 10.0, 11.2, 11.3))
    m.observe_turn(turn("completed", 20.0, 20.8, 21.0))
    m.observe_turn(turn("canceled", 30.0, None, None))  # no reply audio: no latency
    m.observe_turn(turn("", None, None, None))
    assert m.turns.values() == {"completed": 2.0, "canceled": 1.0, "unknown": 1.0}
    assert m.reply_latency.count == 2
    assert m.reply_latency.sum == pytest.approx(2.0)
    assert m.play_latency.count == 2
    assert m.play_latency.quantile(0.9) == pytest.approx(1.3)


def test_snapshot_is_json_ready_with_p50_p90_in_ms() -> None:
    m = Metrics()
    for latency in (1.0, 1.2, 1.4, 1.6, 2.0):
        m.observe_turn(turn("completed", 0.0, latency, latency + 0.1))
    m.reconnects.inc()
    snap = json.loads(json.dumps(m.snapshot()))
    assert snap["voicegw_turns"] == {"completed": 5.0}
    assert snap["voicegw_reconnects"] == 1.0
    assert snap["voicegw_reply_latency_ms"] == {"count": 5, "p50": 1400.0, "p90": 2000.0}
    assert snap["voicegw_play_latency_ms"]["p50"] == 1500.0
    assert snap["voicegw_cloud_connected"] == 0.0


# ---------------------------------------------------------------- exposition


def test_exposition_has_every_metric_in_prometheus_text() -> None:
    pytest.importorskip("prometheus_client")
    m = Metrics()
    m.observe_turn(turn("completed", 0.0, 1.1, 1.2))
    m.dropped_mic_frames.inc(7)
    m.cloud_connected.set(1)
    body, content_type = m.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'voicegw_turns_total{status="completed"} 1.0' in text
    assert "voicegw_dropped_mic_frames_total 7.0" in text
    assert "voicegw_cloud_connected 1.0" in text
    assert 'voicegw_reply_latency_seconds_bucket{le="1.25"} 1.0' in text
    assert 'voicegw_reply_latency_seconds_bucket{le="1.0"} 0.0' in text
    assert 'voicegw_reply_latency_seconds_bucket{le="+Inf"} 1.0' in text
    assert "voicegw_reply_latency_seconds_count 1.0" in text


def test_exposition_uses_a_private_registry() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    m = Metrics()
    text = m.exposition()[0].decode()
    assert "python_gc_objects_collected_total" not in text  # the global registry's defaults
    assert m.prometheus_registry() is not prometheus_client.REGISTRY
    other = Metrics()
    other.reconnects.inc(5)
    assert "voicegw_reconnects_total 0.0" in m.exposition()[0].decode()


def test_exposition_reflects_later_updates() -> None:
    pytest.importorskip("prometheus_client")
    m = Metrics()
    assert "voicegw_reconnects_total 0.0" in m.exposition()[0].decode()
    m.reconnects.inc()
    assert "voicegw_reconnects_total 1.0" in m.exposition()[0].decode()


def test_without_prometheus_client_counting_works_and_exposition_explains(
    no_prometheus: None,
) -> None:
    assert not prometheus_available()
    m = Metrics()
    m.underruns.inc()
    m.observe_turn(turn("completed", 0.0, 1.0, 1.1))
    assert m.snapshot()["voicegw_playback_underruns"] == 1.0
    with pytest.raises(ConfigError, match=r"prometheus-client.*voicegw\[metrics\]"):
        m.exposition()


def test_importing_metrics_does_not_import_prometheus_or_asyncio() -> None:
    code = (
        "import json, sys, voicegw.metrics\n"
        "print(json.dumps([m for m in ('asyncio', 'prometheus_client') if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
