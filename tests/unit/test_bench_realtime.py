"""The realtime section of ``voicegw bench``: what its probes do and what its rows report.

Nothing here asserts how fast anything is. The tests check that each probe does the work its
row claims (the microphone frame reaches the outbound track intact, agent frames reach the
playout buffer, the click survives aiortc's Opus and is found by the detector) and that one
real e2e round over aiortc on loopback fills every record.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from voicegw.bench import _context, _resolve
from voicegw.bench_realtime import (
    _agent_frames,
    _aiortc_codecs,
    _bare_opus,
    _downlink_op,
    _track_frames,
    _uplink_op,
    build_realtime,
)
from voicegw.bench_realtime_e2e import CLICK_THRESHOLD, FRAME, E2e, _Detector, click_frame
from voicegw.bench_signal import Signal, frames, make_signal
from voicegw.bench_timing import Harness
from voicegw.dsp import StreamResampler
from voicegw.dsp.channels import to_mono
from voicegw.io.webrtc import track_to_mono


@pytest.fixture(scope="module")
def signal() -> Signal:
    return make_signal(synthetic=True, seed=3)


def _peak(x: np.ndarray) -> int:
    return int(np.max(np.abs(x.astype(np.int32)))) if len(x) else 0


def test_click_frame_is_a_short_burst_then_silence() -> None:
    click = click_frame()
    assert click.dtype == np.int16 and click.shape == (FRAME,)
    assert _peak(click[:48]) > 10_000
    assert not np.any(click[48:])


def test_the_click_survives_aiortcs_opus_in_one_frame_and_silence_stays_zero() -> None:
    silence = np.zeros(FRAME * 10, dtype=np.int16)
    stream = np.concatenate((silence, click_frame(), silence))
    enc, dec, jitter_frame = _aiortc_codecs()
    decoded = []
    for f in _track_frames(stream):
        payloads, ts = enc.encode(f)
        for p in payloads:
            decoded += [track_to_mono(x) for x in dec.decode(jitter_frame(p, ts))]
    loud = [i for i, pcm in enumerate(decoded) if _peak(pcm) >= CLICK_THRESHOLD]
    assert len(loud) == 1, loud
    assert all(not np.any(pcm) for i, pcm in enumerate(decoded) if i < loud[0])


def test_detector_times_the_first_loud_frame_after_arming() -> None:
    det = _Detector()
    loud, quiet = click_frame(), np.zeros(FRAME, dtype=np.int16)
    det.frame(loud)  # nothing pending: counted, not timed
    assert det.unexpected == 1 and not det.heard.is_set()
    det.arm()
    det.frame(quiet)
    assert not det.heard.is_set()
    det.frame(loud)
    assert det.heard.is_set() and det.latency_ms >= 0
    det.frame(loud)  # the click was already timed
    assert det.unexpected == 2


def test_uplink_probe_carries_the_mic_frame_to_the_outbound_track(signal: Signal) -> None:
    op = _uplink_op()
    stereo = frames(signal.stereo48k(), FRAME)[40:45]
    for frame in stereo:
        out = op(frame)
        assert out.format.name == "s16" and out.layout.name == "mono"
        assert out.samples == FRAME and out.sample_rate == 48000
        assert np.array_equal(out.to_ndarray().reshape(-1), to_mono(frame))


def test_agent_frames_are_what_aiortc_delivers(signal: Signal) -> None:
    agent = _agent_frames(signal.at(48000))
    assert len(agent) >= len(signal.at(48000)) // FRAME - 2
    for f in agent[:5]:
        assert (f.format.name, f.layout.name, f.samples, f.sample_rate) == (
            "s16",
            "stereo",
            FRAME,
            48000,
        )
    assert max(_peak(track_to_mono(f)) for f in agent) > 1000  # speech, not silence


def test_downlink_probe_fills_the_playout_buffer_at_the_speaker_rate(signal: Signal) -> None:
    agent = _agent_frames(signal.at(48000))[:50]
    op, reset = _downlink_op()
    for f in agent:
        op(f)
    # 50 frames of 20 ms at 24 kHz, less what the resampler still holds back
    reference = StreamResampler(48000, 24000)
    expected = sum(len(reference.process(track_to_mono(f))) for f in agent)
    assert 50 * 480 - 1000 < expected <= 50 * 480
    assert reset() == expected  # flushing the playout buffer drops exactly what was written


def test_bare_opus_baseline_encodes_and_decodes(signal: Signal) -> None:
    encode, stereo, decode, packets = _bare_opus(signal.at(48000))
    assert stereo and len(packets) >= len(stereo) - 2
    assert all(0 < len(p) < 1500 for p in packets)
    decoded = decode(packets[10])
    assert isinstance(decoded, list) and decoded[0].samples == FRAME
    assert all(len(bytes(p)) > 0 for p in encode(stereo[0]))  # the encoder keeps going


def test_rows_without_e2e_have_finite_baselines_and_consistent_ratios(signal: Signal) -> None:
    ctx = _context(True, 1)
    ctx.harness = Harness(batches=2, batch_ns=100_000, warmup_ns=500_000)
    rounds, specs = build_realtime(signal, ctx, clicks=0)
    assert [s.key for s in specs] == ["realtime.uplink", "realtime.downlink", "realtime.opus"]
    for fn in rounds:
        fn()
    for row in map(_resolve, specs):
        assert row.section == "realtime" and row.better == "lower"
        assert row.unit in ("us/frame", "us/20ms")
        assert row.components and all(v > 0 for v in row.components.values())
        assert row.baseline == pytest.approx(math.fsum(row.components.values()))
        assert row.ratio == pytest.approx(row.median / row.baseline)
        assert math.isfinite(row.median) and row.median > 0
    opus = _resolve(specs[2])
    assert "x realtime" in opus.note and opus.target is None


def test_one_e2e_round_over_aiortc_fills_every_record() -> None:
    e2e = E2e(clicks=3, seed=1)
    e2e.round()
    for rec in (e2e.up, e2e.down, e2e.rtt):
        assert len(rec.values) == 3, rec.name
        assert all(math.isfinite(v) and v > 0 for v in rec.values), rec.name
    assert len(e2e.connect_ms) == 1 and len(e2e.first_audio_ms) == 1
    assert e2e.first_audio_ms[0] >= e2e.connect_ms[0]
    assert e2e.unexpected == 0
    assert "1 connection(s)" in e2e.detail()


def test_e2e_rows_split_the_clicks_over_the_rounds(signal: Signal) -> None:
    ctx = _context(True, 3)
    rounds, specs = build_realtime(signal, ctx, clicks=7)
    e2e_specs = [s for s in specs if s.key.startswith("realtime.e2e")]
    assert [s.key for s in e2e_specs] == ["realtime.e2e", "realtime.e2e-down"]
    for spec in e2e_specs:
        assert spec.unit == "ms" and spec.target is not None
        assert list(spec.baseline) == ["send_message -> echo -> messages()"]
    e2e = rounds[-1].__self__  # type: ignore[attr-defined]
    assert isinstance(e2e, E2e) and e2e.clicks == 3  # ceil(7 / 3) per round
