"""``voicegw bench``: per-frame costs, codec throughput and barge-in latency on this machine.

Every row is measured in one run together with its baseline, and rounds of all probes are
interleaved, so ratios stay meaningful on a noisy machine where absolute numbers drift. Sections:

1. ``uplink``: one 20 ms device frame (48 kHz stereo) to API event text, VAD included, per
   input codec. Baseline: the sum of the bare building blocks (see :mod:`voicegw.bench_paths`).
2. ``downlink``: a ``conversation.audio.delta`` frame to 48 kHz samples in the playout buffer,
   per 20 ms of audio, per output codec; same kind of baseline.
3. ``g711-frame`` and ``bulk``: G.711 per frame against ``audioop``; bulk throughput of the
   codecs and the resampler against the bare library calls (:mod:`voicegw.bench_bulk`).
4. ``barge-in``: from ``speech_started`` to a flushed playout buffer, in wall time, and the
   audio still played afterwards, in device time (:mod:`voicegw.bench_bargein`).
5. ``realtime``: the RTC media path (:mod:`voicegw.bench_realtime`): a microphone frame to the
   outbound track and an aiortc-decoded agent frame to the playout buffer against their floors,
   Opus encode + decode through aiortc against the bare codec, and the one-way latency of a
   click over real aiortc on loopback against the data channel's round trip (wall time).

Method (details in :mod:`voicegw.bench_timing`): warm-up, batches timed with
:func:`time.perf_counter_ns` with the GC disabled, harness overhead subtracted; *median* is the
median of batch means and *p90* the 90th percentile of per-call samples. For ``x realtime``
rows the p90 column is the throughput of the 90th-percentile (slow) run. ``ratio`` is always
``median / baseline``. Benchmarks inform; a MISS does not change the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

from .bench_bargein import build_bargein
from .bench_bulk import build_bulk, build_g711_frame
from .bench_paths import build_downlink, build_uplink
from .bench_realtime import build_realtime
from .bench_signal import load_audioop, make_signal
from .bench_timing import Context, Harness, RowSpec

__all__ = ["SCHEMA", "SECTIONS", "Row", "add_arguments", "machine_info", "run_bench"]

#: Identifies the layout of the JSON document.
SCHEMA: Final = "voicegw.bench/1"
#: Section names, in report order.
SECTIONS: Final = ("uplink", "downlink", "g711-frame", "bulk", "barge-in", "realtime")
_SEED: Final = 1234
_PACKAGES: Final = ("numpy", "soxr", "av", "orjson", "lameenc", "webrtcvad-wheels")


@dataclass(frozen=True, slots=True)
class Row:
    """One measured row, as reported.

    Attributes:
        section: one of :data:`SECTIONS`.
        key: stable identifier (``"uplink.pcm16k"``).
        name: what was measured.
        unit: unit of ``median``, ``p90`` and ``baseline``.
        better: ``"lower"`` or ``"higher"``.
        median: see the module docstring.
        p90: see the module docstring.
        n: samples behind the statistics.
        baseline_name: what the baseline is.
        baseline: sum of ``components``, or ``None`` when there is no baseline.
        components: the baseline's parts (their medians), same unit.
        ratio: ``median / baseline``, or ``None``.
        target: the target as text, or ``None``.
        status: ``"PASS"``, ``"MISS"`` or ``"-"`` (no target).
        note: how the row was measured.
    """

    section: str
    key: str
    name: str
    unit: str
    better: str
    median: float
    p90: float
    n: int
    baseline_name: str
    baseline: float | None
    components: dict[str, float]
    ratio: float | None
    target: str | None
    status: str
    note: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print a JSON document, not a table")
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds, fewer samples (smoke test)"
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=None,
        metavar="N",
        help="interleaved rounds of every measurement (default 3, or 1 with --quick)",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use the synthetic voice even when espeak-ng is installed",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _context(quick: bool, repeat: int | None) -> Context:
    """Settings of a run: ``--quick`` takes a few seconds, the full run well under a minute."""
    if quick:
        rounds = repeat or 1
        return Context(
            harness=Harness(batches=3, batch_ns=300_000, warmup_ns=2_000_000),
            repeat=rounds,
            bulk_seconds=10.0,
            bulk_runs=max(1, -(-3 // rounds)),  # at least 3 timed runs in all
            bargein_turns=10,
        )
    rounds = repeat or 3
    return Context(
        harness=Harness(),
        repeat=rounds,
        bulk_seconds=60.0,
        bulk_runs=max(1, -(-6 // rounds)),  # at least 6 timed runs in all
        bargein_turns=60,
    )


def _e2e_clicks(ctx: Context) -> int:
    """Clicks timed over aiortc in all: about 20, or 6 with ``--quick`` (a few seconds)."""
    return 6 if ctx.bulk_seconds < 60 else 20


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = f.read()
    except OSError:
        info = ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if fields.get(key):
            mhz = fields.get("cpu MHz")
            return f"{fields[key]} @ {float(mhz):.0f} MHz" if mhz else fields[key]
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, OS, Python and library versions, and the current UTC date."""
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    audioop = load_audioop()
    if audioop is None:
        versions["audioop"] = "not importable"
    else:
        versions["audioop"] = "stdlib" if "site-packages" not in str(audioop) else "audioop-lts"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "usable_cores": usable or 0,
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": versions,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _resolve(spec: RowSpec) -> Row:
    stats = spec.measure()
    parts = {name: fn() for name, fn in spec.baseline.items()}
    components = {name: s.median for name, s in parts.items()}
    baseline = math.fsum(components.values()) if components else None
    ratio = stats.median / baseline if baseline else None
    status = "-"
    target = spec.target
    if target is not None and (target.on == "median" or ratio is not None):
        status = "PASS" if target.met(stats.median, ratio if ratio is not None else 0.0) else "MISS"
    note = spec.note if spec.detail is None else f"{spec.note}; {spec.detail()}"
    return Row(
        spec.section,
        spec.key,
        spec.name,
        spec.unit,
        spec.better,
        stats.median,
        stats.p90,
        stats.n,
        spec.baseline_name,
        baseline,
        components,
        ratio,
        target.text if target is not None else None,
        status,
        note,
    )


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _ratio(x: float) -> str:
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def _header(info: dict[str, Any], ctx: Context) -> list[str]:
    v = info["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in _PACKAGES)
    lines = [
        f"voicegw bench, {info['date']}",
        f"machine: {info['cpu']}; {info['cores']} cores ({info['usable_cores']} usable); "
        f"{info['machine']}, {info['os']}",
        f"python {info['python']} ({info['implementation']}); {libs}; audioop: {v['audioop']}",
        f"run: {ctx.repeat} interleaved round(s), {ctx.harness.batches} batches per round, "
        f"bulk {ctx.bulk_seconds:g} s x {ctx.bulk_runs * ctx.repeat} runs",
    ]
    return lines


def _table(rows: list[Row]) -> list[str]:
    head = (
        f"{'row':<38} {'median':>9} {'p90':>9} {'unit':<10} {'baseline':>9} {'ratio':>7}  "
        f"{'target':<28} status"
    )
    lines: list[str] = []
    for section in SECTIONS:
        chunk = [r for r in rows if r.section == section]
        if not chunk:
            continue
        lines += ["", f"[{section}]", head]
        for r in chunk:
            ratio = "-" if r.ratio is None else f"{_ratio(r.ratio)}x"
            lines.append(
                f"{r.name:<38} {_fmt(r.median):>9} {_fmt(r.p90):>9} {r.unit:<10} "
                f"{_fmt(r.baseline):>9} {ratio:>7}  {r.target or '-':<28} {r.status}"
            )
    lines += ["", "baselines and notes:"]
    for r in rows:
        parts = " + ".join(f"{k} {_fmt(v)}" for k, v in r.components.items()) or "none"
        lines.append(f"  {r.key}: {r.baseline_name} = {parts}")
        lines.append(f"    {r.note}")
    return lines


def run_bench(args: argparse.Namespace, emit: Callable[[str], None] = print) -> int:
    """Run the benchmark and emit a table (or, with ``args.json``, one JSON document).

    Args:
        args: options from :func:`add_arguments` (``json``, ``quick``, ``repeat``,
            ``synthetic``; missing ones take their defaults).
        emit: receives each output line (the whole document when ``json`` is set).

    Returns:
        0: a benchmark reports; a missed target is in the output, not the exit status.
    """
    as_json = bool(getattr(args, "json", False))
    ctx = _context(bool(getattr(args, "quick", False)), getattr(args, "repeat", None))
    started = time.perf_counter()
    info = machine_info()
    if not as_json:
        for line in _header(info, ctx):
            emit(line)
    signal = make_signal(synthetic=bool(getattr(args, "synthetic", False)), seed=_SEED)
    if not as_json:
        emit(f"signal: {signal.source}, {signal.seconds:.2f} s utterance")
    ctx.overhead = ctx.harness.overhead()
    rounds: list[Callable[[], None]] = []
    specs: list[RowSpec] = []
    for fns, section_specs in (
        build_uplink(signal, ctx),
        build_downlink(signal, ctx, _SEED),
        build_g711_frame(signal, ctx),
        build_bulk(signal, ctx, _SEED, 0.05 if ctx.bulk_seconds < 60 else 0.5),
        build_bargein(signal, ctx),
        build_realtime(signal, ctx, _e2e_clicks(ctx), _SEED),
    ):
        rounds += fns
        specs += section_specs
    for _ in range(ctx.repeat):
        for fn in rounds:
            fn()
    rows = [_resolve(s) for s in specs]
    elapsed = time.perf_counter() - started
    summary = {s: sum(r.status == s for r in rows) for s in ("PASS", "MISS", "-")}
    if as_json:
        doc = {
            "schema": SCHEMA,
            "machine": info,
            "config": {
                "quick": bool(getattr(args, "quick", False)),
                "repeat": ctx.repeat,
                "batches": ctx.harness.batches,
                "bulk_seconds": ctx.bulk_seconds,
                "bulk_runs": ctx.bulk_runs * ctx.repeat,
                "bargein_turns": ctx.bargein_turns * ctx.repeat,
                "e2e_clicks": -(-_e2e_clicks(ctx) // ctx.repeat) * ctx.repeat,
                "signal": signal.source,
                "seed": _SEED,
            },
            "harness_overhead_ns": {"batch_mean": ctx.overhead[0], "per_call": ctx.overhead[1]},
            "rows": [asdict(r) for r in rows],
            "summary": summary,
            "elapsed_s": elapsed,
        }
        emit(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 0
    for line in _table(rows):
        emit(line)
    emit("")
    emit(
        f"targets: {summary['PASS']} PASS, {summary['MISS']} MISS, {summary['-']} informative; "
        f"harness overhead {ctx.overhead[0]:.0f} ns/call subtracted; {elapsed:.1f} s"
    )
    return 0
