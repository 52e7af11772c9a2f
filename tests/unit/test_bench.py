"""``voicegw bench``: the report's structure and arithmetic, never its timings.

The bench runs once in ``--quick --json`` mode for the whole module and once as a table with
the synthetic signal. The tests check that every row is there, that every number is finite and
positive, and that ratios, baselines and PASS/MISS follow from the reported values; they assert
nothing about how fast anything is.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np
import pytest

from voicegw.bench import SCHEMA, SECTIONS, add_arguments, machine_info, run_bench
from voicegw.bench_bulk import py_alaw, py_ulaw
from voicegw.bench_signal import make_signal
from voicegw.bench_timing import Probe, Target, percentile
from voicegw.codecs.g711 import alaw_encode, ulaw_encode

UPLINK = ("pcm16k", "pcm24k", "g711a", "g711u", "opus16k")
DOWNLINK = ("pcm24k", "g711a", "g711u", "opus24k", "mp3")
G711_OPS = ("alaw-encode", "alaw-decode", "ulaw-encode", "ulaw-decode")
BULK = (
    *(
        f"g711{law}-{op}{kind}"
        for law in "au"
        for op in ("encode", "decode")
        for kind in ("", "-python")
    ),
    "mp3-decode",
    "mp3-encode",
    "opus-decode",
    "resample-24k-48k",
)
EXPECTED = (
    *(f"uplink.{k}" for k in UPLINK),
    *(f"downlink.{k}" for k in DOWNLINK),
    *(f"g711-frame.{k}" for k in G711_OPS),
    *(f"bulk.{k}" for k in BULK),
    "barge-in.wall",
    "barge-in.audio",
    *(f"realtime.{k}" for k in ("uplink", "downlink", "opus", "e2e", "e2e-down")),
)
#: Rows that must carry a target, with the rule PASS/MISS must follow: (on, op, value).
TARGETS: dict[str, tuple[str, str, float]] = {
    **{f"uplink.{k}": ("median", "<=", 40.0) for k in UPLINK if k != "opus16k"},
    **{f"downlink.{k}": ("median", "<=", 20.0) for k in ("pcm24k", "g711a", "g711u")},
    **{f"g711-frame.{k}": ("ratio", "<=", 3.0) for k in G711_OPS},
    **{f"bulk.g711{law}-{op}": ("ratio", ">=", 1.0) for law in "au" for op in ("encode", "decode")},
    "bulk.mp3-decode": ("median", ">=", 500.0),
    "bulk.opus-decode": ("median", ">=", 500.0),
    "barge-in.audio": ("median", "<=", 20.0),
    "realtime.uplink": ("median", "<=", 40.0),
    "realtime.downlink": ("median", "<=", 40.0),
    "realtime.e2e": ("median", "<=", 100.0),
    "realtime.e2e-down": ("median", "<=", 100.0),
}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="voicegw bench")
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    out: list[str] = []
    assert run_bench(_args("--quick", "--json"), out.append) == 0
    assert len(out) == 1, "--json emits exactly one document"
    doc: dict[str, Any] = json.loads(out[0])
    return doc


@pytest.fixture(scope="module")
def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in report["rows"]}


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


# ---------------------------------------------------------------- the JSON document


def test_document_header(report: dict[str, Any]) -> None:
    assert report["schema"] == SCHEMA
    machine = report["machine"]
    for key in ("cpu", "cores", "python", "date", "versions"):
        assert machine[key], key
    for package in ("numpy", "soxr", "av"):
        assert machine["versions"][package]
    assert report["config"]["quick"] is True
    assert report["config"]["repeat"] == 1
    assert _positive(report["elapsed_s"])
    assert report["harness_overhead_ns"]["batch_mean"] >= 0


def test_every_expected_row_is_present_once(report: dict[str, Any]) -> None:
    keys = [row["key"] for row in report["rows"]]
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted(EXPECTED)
    assert {row["section"] for row in report["rows"]} == set(SECTIONS)


def _needs_audioop(key: str) -> bool:
    return key.startswith(("g711-frame.", "bulk.g711"))


def test_numbers_are_finite_and_positive(
    report: dict[str, Any], rows: dict[str, dict[str, Any]]
) -> None:
    no_audioop = report["machine"]["versions"]["audioop"] == "not importable"
    for key, row in rows.items():
        fields = ["median", "p90", "n"]
        if no_audioop and _needs_audioop(key):
            assert row["baseline"] is None and row["ratio"] is None and not row["components"]
        else:
            fields += ["baseline", "ratio"]
            assert row["components"], key
        for field in fields:
            assert _positive(row[field]), (key, field, row[field])
        for name, value in row["components"].items():
            assert _positive(value), (key, name, value)


def test_ratios_and_baselines_follow_from_the_reported_values(
    rows: dict[str, dict[str, Any]],
) -> None:
    for key, row in rows.items():
        if row["baseline"] is None:
            continue
        assert row["baseline"] == pytest.approx(math.fsum(row["components"].values())), key
        assert row["ratio"] == pytest.approx(row["median"] / row["baseline"], rel=1e-12), key


def test_targets_are_present_and_statuses_consistent(rows: dict[str, dict[str, Any]]) -> None:
    for key, row in rows.items():
        rule = TARGETS.get(key)
        if rule is not None and rule[0] == "ratio" and row["baseline"] is None:
            rule = None  # nothing to compare with when audioop is not importable
        if rule is None and key != "barge-in.wall":
            assert row["target"] is None and row["status"] == "-", key
            continue
        assert row["target"], key
        assert row["status"] in ("PASS", "MISS"), key
        if rule is not None:
            on, op, bound = rule
            x = row[on]
            met = x <= bound if op == "<=" else x >= bound
            assert row["status"] == ("PASS" if met else "MISS"), (key, x, row["status"])


def test_units_and_directions(rows: dict[str, dict[str, Any]]) -> None:
    for key, row in rows.items():
        section = key.split(".")[0]
        unit = {
            "uplink": "us/frame",
            "downlink": "us/20ms",
            "g711-frame": "us/frame",
            "bulk": "x realtime",
        }.get(section)
        if unit is not None:
            assert row["unit"] == unit, key
        assert row["better"] == ("higher" if row["unit"] == "x realtime" else "lower"), key


def test_bargein_drops_the_late_audio_of_the_cancelled_chat(
    rows: dict[str, dict[str, Any]],
) -> None:
    assert "reached the buffer: 0 of" in rows["barge-in.audio"]["note"]


def test_plain_python_reference_agrees_with_the_codec(rows: dict[str, dict[str, Any]]) -> None:
    for law in "au":
        for op in ("encode", "decode"):
            assert "bit-exact with ours: True" in rows[f"bulk.g711{law}-{op}-python"]["note"]


# ---------------------------------------------------------------- the table


def test_table_mode_with_the_synthetic_signal() -> None:
    out: list[str] = []
    assert run_bench(_args("--quick", "--synthetic"), out.append) == 0
    text = "\n".join(out)
    assert text.startswith("voicegw bench, ")
    assert "machine: " in text and "python " in text and "numpy " in text
    assert "signal: synthetic" in text
    for section in SECTIONS:
        assert f"[{section}]" in text
    for name in (
        "pcm 16 kHz",
        "opus 24 kHz 60 ms",
        "mp3 decode, streamed deltas",
        "speech_started -> flush applied",
    ):
        assert name in text
    assert "targets: " in out[-1]


# ---------------------------------------------------------------- pieces


def test_arguments() -> None:
    args = _args("--json", "--quick", "--repeat", "2")
    assert (args.json, args.quick, args.repeat, args.synthetic) == (True, True, 2, False)
    assert _args().repeat is None
    with pytest.raises(SystemExit):
        _args("--repeat", "0")


def test_machine_info() -> None:
    info = machine_info()
    assert info["cores"] >= 1
    assert info["date"].endswith("Z")
    assert set(info["versions"]) >= {"numpy", "soxr", "av", "audioop"}


def test_percentile() -> None:
    assert percentile([5.0], 90) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_probe_statistics_subtract_overhead_and_divide_by_units() -> None:
    probe = Probe("fake", lambda _: None, [1, 2], units=[2.0, 2.0])
    probe.means, probe.mean_units = [1100.0, 1300.0, 1200.0], [2.0, 2.0, 2.0]
    probe.samples, probe.sample_units = [float(100 + 100 * i) for i in range(10)], [2.0] * 10
    stats = probe.stats((100.0, 100.0))
    assert stats.median == pytest.approx(0.55)  # (1200 - 100) ns / 2 units, in µs
    assert stats.p90 == pytest.approx(percentile([50.0 * i for i in range(10)], 90) / 1000)
    assert stats.n == 10


def test_target_rules() -> None:
    assert Target("<=", 40.0, "median", "").met(39.0, 100.0)
    assert not Target("<=", 40.0, "median", "").met(41.0, 0.1)
    assert Target(">=", 1.0, "ratio", "").met(0.0, 1.5)
    assert not Target(">=", 1.0, "ratio", "").met(1e9, 0.5)


def test_synthetic_signal_is_deterministic() -> None:
    a = make_signal(synthetic=True, seed=7)
    b = make_signal(synthetic=True, seed=7)
    assert a.source == "synthetic"
    assert np.array_equal(a.mono48k, b.mono48k)
    assert a.stereo48k().shape == (len(a.mono48k), 2)
    assert len(a.looped(8000, 1.5)) == 12000


def test_reference_g711_matches_the_tables() -> None:
    x = np.arange(-32768, 32768, 7, dtype=np.int16)
    assert bytes(py_alaw(int(v)) for v in x) == alaw_encode(x)
    assert bytes(py_ulaw(int(v)) for v in x) == ulaw_encode(x)
