"""Timing harness of ``voicegw bench``: probes, their statistics, and the rows they feed.

Method:

* every probe runs in *rounds* (``--repeat``); the caller interleaves the rounds of all probes,
  so a noisy neighbour on a shared machine affects the pipelines and their baselines alike;
* a round warms the probe up, then runs ``batches`` batches; each batch times ``size`` calls
  with one pair of :func:`time.perf_counter_ns` reads (its mean per call is one *batch mean*)
  and then ``size`` more calls timed one by one (the *per-call samples*);
* the garbage collector is disabled during every batch and re-enabled after it;
* the cost of the harness itself (a call of an empty function through the same loop, timers
  included) is measured the same way and subtracted from both kinds of measurement;
* a probe's median is the median of its batch means; its p90 is the 90th percentile of its
  per-call samples. Both are divided by the *units* each item stands for (for example 12.5
  periods of 20 ms in a 250 ms delta), so results come out per unit.
"""

from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MIN_NS",
    "BulkProbe",
    "Context",
    "Harness",
    "Probe",
    "Recorder",
    "RowSpec",
    "Stats",
    "Target",
    "constant",
    "percentile",
]

#: Smallest cost reported after subtracting the harness overhead, ns (keeps ratios finite).
MIN_NS: Final = 1.0


@dataclass(frozen=True, slots=True)
class Stats:
    """A measured quantity: its median and 90th percentile, in the unit of its row.

    Attributes:
        median: for a :class:`Probe`, the median of the batch means, µs per unit; for a
            :class:`BulkProbe`, the median run time, µs; for a :class:`Recorder`, the median
            of the recorded values.
        p90: the 90th percentile of the per-call samples (run times, recorded values).
        n: how many timed calls, runs or values the statistics come from.
    """

    median: float
    p90: float
    n: int


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` with linear interpolation.

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _noop(_item: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Harness:
    """How long to measure: shared by every probe of one run.

    Attributes:
        batches: batches per round.
        batch_ns: aimed duration of the timed part of one batch, ns (sets the batch size).
        warmup_ns: aimed duration of the warm-up of a probe's first round, ns.
        min_batch: fewest calls in one batch.
        max_batch: most calls in one batch.
    """

    batches: int = 15
    batch_ns: int = 2_000_000
    warmup_ns: int = 20_000_000
    min_batch: int = 3
    max_batch: int = 2000

    def overhead(self) -> tuple[float, float]:
        """The harness's own cost per call, ns: (batch mean, median per-call sample)."""
        probe = Probe("harness", _noop, [None])
        for _ in range(3):
            probe.run(self)
        return statistics.median(probe.means), statistics.median(probe.samples)


class Probe:
    """Calls ``op(item)`` on ``items`` in order, cycling, and records its timings.

    Args:
        name: what is measured (for messages).
        op: the operation; stateful operations see the items in order, as a stream.
        items: the inputs; one call consumes one item.
        units: how many units each item stands for (default 1 each); costs are reported per
            unit.
        between: called before every batch, outside the timed region (for example to empty
            a buffer the operation fills).
    """

    def __init__(
        self,
        name: str,
        op: Callable[[Any], object],
        items: Sequence[Any],
        units: Sequence[float] | None = None,
        *,
        between: Callable[[], object] | None = None,
    ) -> None:
        if not items:
            raise ValueError(f"probe {name!r} has no items")
        if units is not None and len(units) != len(items):
            raise ValueError(f"probe {name!r}: {len(units)} units for {len(items)} items")
        self.name = name
        self.op = op
        self.items = list(items)
        self.units = [1.0] * len(items) if units is None else [float(u) for u in units]
        self.between = between
        self.size = 0  # calls per batch, chosen in the first round
        self.means: list[float] = []  # ns per call, one per batch (harness overhead included)
        self.mean_units: list[float] = []  # mean units per call in each batch
        self.samples: list[float] = []  # ns per call (harness overhead included)
        self.sample_units: list[float] = []
        self._pos = 0

    def _take(self, count: int) -> tuple[list[Any], list[float]]:
        n = len(self.items)
        idx = [(self._pos + k) % n for k in range(count)]
        self._pos = (self._pos + count) % n
        return [self.items[i] for i in idx], [self.units[i] for i in idx]

    def _warm_up(self, harness: Harness) -> None:
        op = self.op
        calls = 0
        start = time.perf_counter_ns()
        while True:
            batch, _ = self._take(1)
            op(batch[0])
            calls += 1
            spent = time.perf_counter_ns() - start
            if spent >= harness.warmup_ns or (calls >= 200 and spent >= harness.warmup_ns / 4):
                break
        per_call = max(spent / calls, 1.0)
        size = round(harness.batch_ns / per_call)
        self.size = max(harness.min_batch, min(harness.max_batch, size))

    def run(self, harness: Harness) -> None:
        """One round: warm up (a full warm-up the first time), then ``harness.batches`` batches."""
        if not self.size:
            self._warm_up(harness)
        else:
            for item in self._take(min(self.size, 20))[0]:
                self.op(item)
        op = self.op
        clock = time.perf_counter_ns
        for _ in range(harness.batches):
            items, units = self._take(self.size)
            timed, timed_units = self._take(self.size)
            stamps = [0] * (len(timed) + 1)
            if self.between is not None:
                self.between()
            gc.disable()
            try:
                t0 = clock()
                for item in items:
                    op(item)
                t1 = clock()
                for k, item in enumerate(timed):
                    stamps[k] = clock()
                    op(item)
                stamps[-1] = clock()
            finally:
                gc.enable()
            self.means.append((t1 - t0) / len(items))
            self.mean_units.append(sum(units) / len(units))
            # Back-to-back stamps: call k spans stamps[k] to stamps[k + 1].
            self.samples.extend(float(b - a) for a, b in itertools.pairwise(stamps))
            self.sample_units.extend(timed_units)

    def stats(self, overhead: tuple[float, float]) -> Stats:
        """Net cost per unit after subtracting ``overhead`` (from :meth:`Harness.overhead`).

        Raises:
            ValueError: the probe never ran.
        """
        if not self.means:
            raise ValueError(f"probe {self.name!r} never ran")
        mean_oh, call_oh = overhead
        means = [
            max(m - mean_oh, MIN_NS) / u for m, u in zip(self.means, self.mean_units, strict=True)
        ]
        per_call = [
            max(s - call_oh, MIN_NS) / u
            for s, u in zip(self.samples, self.sample_units, strict=True)
        ]
        return Stats(
            statistics.median(means) / 1000, percentile(per_call, 90) / 1000, len(per_call)
        )


class BulkProbe:
    """Times whole runs of ``op()`` (one run processes all of a workload).

    Args:
        name: what is measured.
        op: one complete run; called once to warm up, then once per timed run.
        scale: factor applied to each run time (to extrapolate a run over part of the
            workload to all of it).
    """

    def __init__(self, name: str, op: Callable[[], object], scale: float = 1.0) -> None:
        self.name = name
        self.op = op
        self.scale = scale
        self.times: list[float] = []  # ns per run, scaled
        self._warm = False

    def run(self, runs: int) -> None:
        """Warm up once (first call only), then time ``runs`` runs with the GC disabled."""
        if not self._warm:
            self.op()
            self._warm = True
        for _ in range(runs):
            gc.disable()
            try:
                t0 = time.perf_counter_ns()
                self.op()
                t1 = time.perf_counter_ns()
            finally:
                gc.enable()
            self.times.append((t1 - t0) * self.scale)

    def stats(self) -> Stats:
        """Median and 90th percentile of the run times, µs.

        Raises:
            ValueError: the probe never ran.
        """
        if not self.times:
            raise ValueError(f"bulk probe {self.name!r} never ran")
        return Stats(
            statistics.median(self.times) / 1000, percentile(self.times, 90) / 1000, len(self.times)
        )


class Recorder:
    """Values recorded one by one (for measurements that need untimed set-up per sample)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.values: list[float] = []

    def add(self, value: float) -> None:
        """Record one value, in the unit of the row it feeds."""
        self.values.append(value)

    def stats(self) -> Stats:
        """Median and 90th percentile of the values.

        Raises:
            ValueError: nothing was recorded.
        """
        if not self.values:
            raise ValueError(f"recorder {self.name!r} holds no values")
        return Stats(statistics.median(self.values), percentile(self.values, 90), len(self.values))


@dataclass(frozen=True, slots=True)
class Target:
    """A requirement on a row: ``median OP value`` or ``ratio OP value``.

    Attributes:
        op: ``"<="`` or ``">="``.
        value: the bound.
        on: ``"median"`` compares the row's median (in its unit), ``"ratio"`` its ratio to
            the baseline.
        text: how the table shows it.
    """

    op: str
    value: float
    on: str
    text: str

    def met(self, median: float, ratio: float) -> bool:
        """Whether a row with this ``median`` and ``ratio`` meets the target."""
        x = median if self.on == "median" else ratio
        return x <= self.value if self.op == "<=" else x >= self.value


@dataclass(slots=True)
class RowSpec:
    """One row of the report, before its numbers are known.

    Attributes:
        section: ``uplink``, ``downlink``, ``g711-frame``, ``bulk`` or ``barge-in``.
        key: stable identifier, unique in the report (``"uplink.pcm16k"``).
        name: what the row measures, for people.
        unit: unit of ``median`` and ``p90`` (``"us/frame"``, ``"us/20ms"``, ``"x realtime"``,
            ``"us"``, ``"ms"``).
        measure: returns the row's statistics once every round has run.
        baseline_name: what the baseline is.
        baseline: its components; the baseline is the sum of their medians (and of their
            p90s). A single component for ``"x realtime"`` rows.
        target: the requirement, or ``None`` when the row is informative.
        better: ``"lower"`` for costs, ``"higher"`` for throughputs.
        note: extra facts for the reader (shown under the table and in the JSON).
        detail: more facts known only after measuring, appended to ``note``.
    """

    section: str
    key: str
    name: str
    unit: str
    measure: Callable[[], Stats]
    baseline_name: str
    baseline: dict[str, Callable[[], Stats]]
    target: Target | None = None
    better: str = "lower"
    note: str = ""
    detail: Callable[[], str] | None = None


@dataclass(slots=True)
class Context:
    """Settings and shared state of one bench run.

    Attributes:
        harness: batch settings of per-call probes.
        repeat: rounds; every probe runs once per round, rounds interleave all probes.
        bulk_seconds: audio length of the bulk workloads, s.
        bulk_runs: timed runs of each bulk probe per round.
        bargein_turns: barge-ins timed per round.
        overhead: the harness's own cost per call, ns, set before any row is read.
    """

    harness: Harness
    repeat: int
    bulk_seconds: float
    bulk_runs: int
    bargein_turns: int
    overhead: tuple[float, float] = (0.0, 0.0)

    def cost(self, probe: Probe) -> Callable[[], Stats]:
        """The net cost of ``probe`` per unit, µs, computed when called."""
        return lambda: probe.stats(self.overhead)

    def per_call(self, probe: Probe) -> Callable[[], None]:
        """A round function running ``probe`` under this run's harness."""
        return lambda: probe.run(self.harness)

    def bulk(self, probe: BulkProbe) -> Callable[[], None]:
        """A round function running ``probe`` ``bulk_runs`` times."""
        return lambda: probe.run(self.bulk_runs)

    def realtime(self, probe: BulkProbe, audio_s: float) -> Callable[[], Stats]:
        """Throughput of ``probe`` on ``audio_s`` seconds of audio, x realtime.

        The median is the median run's throughput; the p90 is the throughput of the
        90th-percentile (slow) run, so it is the lower of the two.
        """

        def stats() -> Stats:
            t = probe.stats()
            return Stats(audio_s * 1e6 / t.median, audio_s * 1e6 / t.p90, t.n)

        return stats


def constant(value: float) -> Callable[[], Stats]:
    """A baseline component that is a fixed number (a configured value, not a measurement)."""
    return lambda: Stats(value, value, 1)
