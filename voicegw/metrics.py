"""The daemon's counters, gauges and latency histograms, kept in process.

:class:`Metrics` is a small registry the gateway updates as things happen: turns, the
per-turn latency from the end of the user's speech to the first reply audio received and to
the first reply sample played, speaker underruns, capture overflows, dropped microphone
frames, playback flushes, reconnects and capture restarts.

The numbers live here whether or not prometheus-client is installed. With it installed
(``pip install 'voicegw[metrics]'``), :meth:`Metrics.exposition` renders them in the
Prometheus text format through a private ``CollectorRegistry``: never the library's global
registry, so nothing else in the process leaks into the output and tests stay isolated.
Without it, :meth:`Metrics.exposition` raises :class:`~voicegw.errors.ConfigError`, which
the health endpoint turns into a start-up failure.

Instruments are safe to update from the audio callback thread: one lock guards them all.
Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "LATENCY_BUCKETS_S",
    "Counter",
    "Gauge",
    "Histogram",
    "Metrics",
    "TurnLatency",
    "prometheus_available",
]

#: Upper bounds of the latency histogram buckets, seconds. Coze replies take 1-2 s after the
#: user stops talking; the buckets resolve that range finely and still catch outliers.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.25,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
)

#: Observations kept for the in-process quantiles (P50/P90 in ``/healthz``).
_QUANTILE_WINDOW = 256

_MISSING_HINT = (
    "the metrics endpoint needs prometheus-client, which is not installed: "
    "pip install 'voicegw[metrics]'"
)


def prometheus_available() -> bool:
    """Whether prometheus-client can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("prometheus_client") is not None
    except ValueError:  # a test stubbed the module out of sys.modules
        return False


class TurnLatency(Protocol):
    """What :meth:`Metrics.observe_turn` reads from a turn (``gateway.TurnReport`` fits)."""

    @property
    def status(self) -> str: ...

    @property
    def reply_latency_ms(self) -> float | None: ...

    @property
    def play_latency_ms(self) -> float | None: ...


class Counter:
    """A monotonically increasing count, optionally split by one label.

    Args:
        name: the metric name, without the ``_total`` suffix the exposition adds.
        help: one line describing what is counted.
        label: the label's name, when the count is split by one (``status``).
        lock: the lock shared by the registry's instruments.
    """

    __slots__ = ("_lock", "_values", "help", "label", "name")

    def __init__(
        self, name: str, help: str, *, label: str | None = None, lock: threading.Lock
    ) -> None:
        self.name = name
        self.help = help
        self.label = label
        self._lock = lock
        self._values: dict[str, float] = {} if label else {"": 0.0}

    def inc(self, amount: float = 1.0, *, label: str = "") -> None:
        """Add ``amount`` (>= 0) to the count for ``label``.

        Raises:
            ValueError: ``amount`` is negative, or a label is given to an unlabelled counter.
        """
        if amount < 0:
            raise ValueError("a counter only goes up")
        if label and self.label is None:
            raise ValueError(f"{self.name} has no label")
        with self._lock:
            self._values[label] = self._values.get(label, 0.0) + amount

    def value(self, label: str = "") -> float:
        """The count for ``label`` (0 when never incremented)."""
        with self._lock:
            return self._values.get(label, 0.0)

    def values(self) -> dict[str, float]:
        """Every label value's count (the key is ``""`` for an unlabelled counter)."""
        with self._lock:
            return dict(self._values)


class Gauge:
    """A value that goes up and down (a state such as "connected", as 0 or 1)."""

    __slots__ = ("_lock", "_value", "help", "name")

    def __init__(self, name: str, help: str, *, lock: threading.Lock) -> None:
        self.name = name
        self.help = help
        self._lock = lock
        self._value = 0.0

    def set(self, value: float) -> None:
        """Replace the value."""
        with self._lock:
            self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (negative to subtract)."""
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        """The current value."""
        with self._lock:
            return self._value


class Histogram:
    """A distribution in fixed buckets, plus a window of recent values for quantiles.

    Args:
        name: the metric name (in base units: ``_seconds``).
        help: one line describing what is measured.
        buckets: increasing upper bounds; ``+Inf`` is implied.
        lock: the lock shared by the registry's instruments.
    """

    __slots__ = ("_counts", "_lock", "_recent", "_sum", "buckets", "help", "name")

    def __init__(
        self, name: str, help: str, *, buckets: Sequence[float], lock: threading.Lock
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets must be increasing and not empty")
        self.name = name
        self.help = help
        self.buckets = tuple(float(b) for b in buckets)
        self._lock = lock
        self._counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._recent: deque[float] = deque(maxlen=_QUANTILE_WINDOW)

    def observe(self, value: float) -> None:
        """Record one value (NaN is ignored)."""
        if math.isnan(value):
            return
        index = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        with self._lock:
            self._counts[index] += 1
            self._sum += value
            self._recent.append(value)

    @property
    def count(self) -> int:
        """How many values were observed."""
        with self._lock:
            return sum(self._counts)

    @property
    def sum(self) -> float:
        """The sum of the observed values."""
        with self._lock:
            return self._sum

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, values <= bound)`` per bucket, ending with ``(inf, count)``."""
        with self._lock:
            counts = list(self._counts)
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the recent values (nearest rank), or ``None``."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be within [0, 1]")
        with self._lock:
            values = sorted(self._recent)
        if not values:
            return None
        rank = max(1, math.ceil(q * len(values)))
        return values[rank - 1]


class Metrics:
    """Every instrument the daemon updates, and their Prometheus exposition.

    Attributes are the instruments; update them directly
    (``metrics.underruns.inc()``, ``metrics.cloud_connected.set(1)``) or through
    :meth:`observe_turn`.
    """

    def __init__(self) -> None:
        lock = threading.Lock()
        self._lock = lock
        self.turns = Counter(
            "voicegw_turns", "User turns, by how they ended", label="status", lock=lock
        )
        self.reply_latency = Histogram(
            "voicegw_reply_latency_seconds",
            "End of user speech to first reply audio received from the cloud",
            buckets=LATENCY_BUCKETS_S,
            lock=lock,
        )
        self.play_latency = Histogram(
            "voicegw_play_latency_seconds",
            "End of user speech to first reply sample written to the speaker",
            buckets=LATENCY_BUCKETS_S,
            lock=lock,
        )
        self.underruns = Counter(
            "voicegw_playback_underruns", "Speaker periods padded with silence", lock=lock
        )
        self.overflows = Counter(
            "voicegw_capture_overflows", "Capture overruns reported by the device", lock=lock
        )
        self.dropped_mic_frames = Counter(
            "voicegw_dropped_mic_frames", "Microphone frames dropped before the cloud", lock=lock
        )
        self.flushes = Counter(
            "voicegw_playback_flushes", "Playback flushed by a barge-in or cancel", lock=lock
        )
        self.reconnects = Counter(
            "voicegw_reconnects", "Cloud connections re-established after a loss", lock=lock
        )
        self.capture_restarts = Counter(
            "voicegw_capture_restarts", "Capture streams reopened after a failure", lock=lock
        )
        self.cloud_connected = Gauge(
            "voicegw_cloud_connected", "1 while the cloud session is established", lock=lock
        )
        self.capture_alive = Gauge(
            "voicegw_capture_alive", "1 while the capture stream delivers frames", lock=lock
        )
        self._registry: CollectorRegistry | None = None

    @property
    def counters(self) -> tuple[Counter, ...]:
        """Every counter, in exposition order."""
        return (
            self.turns,
            self.underruns,
            self.overflows,
            self.dropped_mic_frames,
            self.flushes,
            self.reconnects,
            self.capture_restarts,
        )

    @property
    def gauges(self) -> tuple[Gauge, ...]:
        """Every gauge, in exposition order."""
        return (self.cloud_connected, self.capture_alive)

    @property
    def histograms(self) -> tuple[Histogram, ...]:
        """Every histogram, in exposition order."""
        return (self.reply_latency, self.play_latency)

    def observe_turn(self, turn: TurnLatency) -> None:
        """Count a finished turn and record its latencies (those that were measured)."""
        self.turns.inc(label=turn.status or "unknown")
        if turn.reply_latency_ms is not None:
            self.reply_latency.observe(turn.reply_latency_ms / 1000)
        if turn.play_latency_ms is not None:
            self.play_latency.observe(turn.play_latency_ms / 1000)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready summary: counters, gauges, and latency P50/P90 in milliseconds."""
        out: dict[str, Any] = {}
        for c in self.counters:
            values = c.values()
            out[c.name] = values if c.label else values[""]
        for g in self.gauges:
            out[g.name] = g.value
        for h in self.histograms:
            p50, p90 = h.quantile(0.5), h.quantile(0.9)
            out[h.name.removesuffix("_seconds") + "_ms"] = {
                "count": h.count,
                "p50": None if p50 is None else round(p50 * 1000, 1),
                "p90": None if p90 is None else round(p90 * 1000, 1),
            }
        return out

    # ------------------------------------------------------------- exposition
    def prometheus_registry(self) -> CollectorRegistry:
        """The private prometheus-client registry that reads these instruments.

        Raises:
            ConfigError: prometheus-client is not installed (install the ``metrics`` extra).
        """
        if self._registry is None:
            if not prometheus_available():
                raise ConfigError(_MISSING_HINT, key="metrics")
            from prometheus_client.registry import CollectorRegistry

            registry = CollectorRegistry(auto_describe=True)
            registry.register(_make_collector(self))
            self._registry = registry
        return self._registry

    def exposition(self) -> tuple[bytes, str]:
        """The instruments in the Prometheus text format, and its Content-Type.

        Raises:
            ConfigError: prometheus-client is not installed (install the ``metrics`` extra).
        """
        registry = self.prometheus_registry()
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(registry), CONTENT_TYPE_LATEST


def _make_collector(metrics: Metrics) -> Any:
    """A prometheus-client collector that yields ``metrics``' current values."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.registry import Collector

    class _Collector(Collector):
        def collect(self) -> Iterator[Any]:
            for c in metrics.counters:
                labels = [c.label] if c.label else None
                family = CounterMetricFamily(c.name, c.help, labels=labels)
                for value_label, value in sorted(c.values().items()):
                    family.add_metric([value_label] if c.label else [], value)
                yield family
            for g in metrics.gauges:
                yield GaugeMetricFamily(g.name, g.help, value=g.value)
            for h in metrics.histograms:
                cumulative = h.cumulative()
                yield HistogramMetricFamily(
                    h.name,
                    h.help,
                    buckets=[
                        ("+Inf" if math.isinf(b) else _bound(b), float(n)) for b, n in cumulative
                    ],
                    sum_value=h.sum,
                )

    return _Collector()


def _bound(value: float) -> str:
    """A bucket bound as Prometheus writes it (``0.5``, ``1.0``)."""
    return repr(float(value))
