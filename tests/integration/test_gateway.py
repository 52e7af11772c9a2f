"""The gateway against the emulator over real loopback sockets, in every turn mode and codec.

The microphone is a real espeak-ng sentence in a WAV file and the speaker is a WAV file. With
the emulator's ``echo`` bot the reply is the user's own speech, so what reaches the speaker can
be checked against what went into the microphone, through every codec.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import MS

from voicegw.config import AudioConfig, CloudConfig, Config, InputConfig, OutputConfig, TurnConfig
from voicegw.dsp import resample
from voicegw.emulator import Emulator
from voicegw.errors import CloudError
from voicegw.gateway import Gateway, RunReport
from voicegw.io.files import WavSink, WavSource

TIMEOUT = 20_000 * MS


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(
        host="127.0.0.1", port=0, token="tok-" + secrets.token_hex(8), bot="echo"
    ) as emu:
        yield emu


def make_config(emu: Emulator, mode: str = "ptt", **output: object) -> Config:
    return Config(
        cloud=CloudConfig(url=emu.url, bot_id="7000000000000000001", connect_timeout_s=5.0),
        # The fixture pauses ~440 ms between its two sentences: keep them one turn.
        turn=TurnConfig(mode=mode, silence_threshold_ms=800),  # type: ignore[arg-type]
        input=InputConfig(codec="pcm", sample_rate=16000, frame_ms=20),
        output=OutputConfig(**output),  # type: ignore[arg-type]
        audio=AudioConfig(realtime=False, playback_prefill_ms=0),
    )


async def run_gateway(
    emu: Emulator, cfg: Config, mic: Path, out: Path
) -> tuple[RunReport, np.ndarray]:
    source = WavSource(mic, frame_ms=20, realtime=False)
    sink = WavSink(out, rate=cfg.output.sample_rate)
    try:
        async with asyncio.timeout(TIMEOUT):
            report = await Gateway(cfg, emu.token, source=source, sink=sink).run()
    finally:
        sink.close()
    played, _ = sf.read(str(out), dtype="int16")
    return report, played


def similarity(reply: np.ndarray, original: np.ndarray) -> float:
    """Peak normalised cross-correlation between the reply and the original speech."""
    a = reply.astype(np.float64)
    b = original.astype(np.float64)
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.max(np.abs(corr)) / denom) if denom else 0.0


def speech_only(samples: np.ndarray, rate: int) -> np.ndarray:
    # The fixtures carry 1.0 s of digital silence on each side.
    return samples[rate : len(samples) - rate]


async def test_push_to_talk_turn(emulator: Emulator, fixtures_dir: Path, tmp_path: Path) -> None:
    mic = fixtures_dir / "speech16k.wav"
    original, rate = sf.read(str(mic), dtype="int16")
    report, played = await run_gateway(emulator, make_config(emulator), mic, tmp_path / "r.wav")
    assert [t.status for t in report.turns] == ["completed"]
    turn = report.turns[0]
    assert "s of speech" in turn.transcript  # the emulator names what it heard
    assert turn.reply_text.startswith("You said")
    assert turn.chat_id and report.logid.startswith("02")
    assert turn.reply_latency_ms is not None and turn.play_latency_ms is not None
    assert turn.play_latency_ms >= turn.reply_latency_ms
    # PTT commits the whole held buffer; the echo comes back at the output rate.
    expected = resample(np.asarray(original), rate, 24000)
    assert similarity(played, speech_only(expected, 24000)) > 0.9
    assert report.dropped_mic_frames == 0


@pytest.mark.parametrize("mode", ["server_vad", "semantic_vad"])
async def test_vad_turn(emulator: Emulator, fixtures_dir: Path, tmp_path: Path, mode: str) -> None:
    mic = fixtures_dir / "speech16k.wav"
    original, rate = sf.read(str(mic), dtype="int16")
    report, played = await run_gateway(
        emulator, make_config(emulator, mode), mic, tmp_path / "r.wav"
    )
    assert [t.status for t in report.turns] == ["completed"]
    sent = emulator.connections[-1].received_types
    assert "input_audio_buffer.complete" not in sent  # the server decides end of turn
    assert "input_audio_buffer.speech_started" in emulator.connections[-1].sent_types
    expected = resample(np.asarray(original), rate, 24000)
    assert similarity(played, speech_only(expected, 24000)) > 0.9


@pytest.mark.parametrize(
    "output,threshold",
    [
        ({"codec": "pcm", "sample_rate": 16000}, 0.95),
        ({"codec": "pcm", "sample_rate": 48000}, 0.95),
        ({"codec": "g711a", "sample_rate": 8000}, 0.9),
        ({"codec": "g711u", "sample_rate": 8000}, 0.9),
        ({"codec": "opus", "sample_rate": 24000, "frame_size_ms": 20}, 0.7),
        ({"codec": "mp3", "sample_rate": 44100}, 0.7),
    ],
)
async def test_every_output_codec_reaches_the_speaker(
    emulator: Emulator,
    fixtures_dir: Path,
    tmp_path: Path,
    output: dict[str, object],
    threshold: float,
) -> None:
    mic = fixtures_dir / "speech16k.wav"
    original, rate = sf.read(str(mic), dtype="int16")
    cfg = make_config(emulator, **output)
    report, played = await run_gateway(emulator, cfg, mic, tmp_path / "r.wav")
    assert [t.status for t in report.turns] == ["completed"]
    out_rate = cfg.output.sample_rate
    whole = resample(np.asarray(original), rate, out_rate)
    assert similarity(played, speech_only(whole, out_rate)) > threshold
    # The echo of the whole held buffer, and not much more (no garbage, no repeats; codec
    # delay and frame padding add a little).
    assert len(whole) * 0.98 < len(played) < len(whole) + out_rate // 5


async def test_limit_config_paces_fixed_size_deltas(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path
) -> None:
    cfg = make_config(
        emulator,
        codec="pcm",
        sample_rate=16000,
        frame_size_ms=40,
        limit_period_s=1,
        limit_max_frames=30,
    )
    report, played = await run_gateway(
        emulator, cfg, fixtures_dir / "short16k.wav", tmp_path / "r.wav"
    )
    assert [t.status for t in report.turns] == ["completed"]
    assert len(played) > 0


async def test_bad_token_is_refused_and_not_retryable(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path
) -> None:
    cfg = make_config(emulator)
    source = WavSource(fixtures_dir / "short16k.wav", realtime=False)
    sink = WavSink(tmp_path / "r.wav", rate=24000)
    with pytest.raises(CloudError) as info:
        await Gateway(cfg, "wrong-token", source=source, sink=sink).run()
    sink.close()
    assert info.value.code == 4100
    assert not info.value.retryable
    assert info.value.logid
    assert "wrong-token" not in str(info.value)


async def test_local_vad_turn_sends_complete_from_the_device(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path
) -> None:
    mic = fixtures_dir / "speech16k.wav"
    original, rate = sf.read(str(mic), dtype="int16")
    report, played = await run_gateway(
        emulator, make_config(emulator, "local_vad"), mic, tmp_path / "r.wav"
    )
    assert [t.status for t in report.turns] == ["completed"]
    record = emulator.connections[-1]
    assert record.received_types.count("input_audio_buffer.complete") == 1
    assert "input_audio_buffer.speech_started" not in record.sent_types  # no server VAD
    expected = resample(np.asarray(original), rate, 24000)
    assert similarity(played, speech_only(expected, 24000)) > 0.9
    # The device committed speech plus its pre-roll and stop tail, not the leading silence.
    assert len(played) < len(expected) - 0.5 * 24000


class LatePressSource:
    """A WAV microphone whose user presses the button ``press_at`` seconds into the file."""

    def __init__(self, path: Path, press_at: float) -> None:
        self.inner = WavSource(path, frame_ms=20, realtime=False)
        self.rate = self.inner.rate
        self.channels = self.inner.channels
        self.press_at = press_at
        self.gateway: Gateway | None = None

    async def frames(self) -> AsyncIterator[np.ndarray]:
        n = 0
        async for frame in self.inner.frames():
            if n == round(self.press_at / 0.02) and self.gateway is not None:
                self.gateway.press()
            n += 1
            yield frame
        if self.gateway is not None:
            self.gateway.release()


async def test_preroll_keeps_audio_from_before_a_late_press(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path
) -> None:
    mic = fixtures_dir / "speech16k.wav"
    original, rate = sf.read(str(mic), dtype="int16")
    cfg = make_config(emulator, codec="pcm", sample_rate=16000)
    source = LatePressSource(mic, press_at=1.2)  # 200 ms after the speech starts
    sink = WavSink(tmp_path / "r.wav", rate=16000)
    gw = Gateway(cfg, emulator.token, source=source, sink=sink, hold_to_talk=False)
    source.gateway = gw
    async with asyncio.timeout(TIMEOUT):
        report = await gw.run()
    sink.close()
    played, _ = sf.read(str(tmp_path / "r.wav"), dtype="int16")
    assert [t.status for t in report.turns] == ["completed"]
    # 300 ms of pre-roll: the utterance starts at ~0.9 s of the file, not at the press.
    preroll = cfg.turn.preroll_ms / 1000
    expected_len = len(original) - round((1.2 - preroll) * rate)
    assert abs(len(played) - expected_len) < 0.05 * rate
    start = round((1.2 - preroll) * rate)
    head = np.asarray(original[start : start + rate // 2], dtype=np.float64)
    got = played[: rate // 2].astype(np.float64)
    corr = float(np.dot(head, got) / np.sqrt(np.dot(head, head) * np.dot(got, got)))
    assert corr > 0.95  # the first syllable (1.0-1.2 s) is in the reply, aligned


class TypingSource:
    """A silent microphone whose user types one message once the session is ready."""

    def __init__(self, path: Path, text: str) -> None:
        self.inner = WavSource(path, frame_ms=20, realtime=False)
        self.rate = self.inner.rate
        self.channels = self.inner.channels
        self.text = text
        self.gateway: Gateway | None = None

    async def frames(self) -> AsyncIterator[np.ndarray]:
        if self.gateway is not None:
            self.gateway.send_text(self.text)
        async for frame in self.inner.frames():
            yield np.zeros_like(frame)


@pytest.mark.parametrize(
    "text,allowed",
    [('/tool set_volume {"level": 30}', True), ('/tool unlock_door {"code": 1234}', False)],
)
async def test_tool_call_runs_builtins_and_refuses_the_rest(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path, text: str, allowed: bool
) -> None:
    cfg = make_config(emulator)
    source = TypingSource(fixtures_dir / "short16k.wav", text)
    sink = WavSink(tmp_path / "r.wav", rate=24000)
    gw = Gateway(cfg, emulator.token, source=source, sink=sink, hold_to_talk=False)
    source.gateway = gw
    async with asyncio.timeout(TIMEOUT):
        report = await gw.run()
    sink.close()
    record = emulator.connections[-1]
    assert "conversation.chat.requires_action" in record.sent_types
    assert record.received_types.count("conversation.chat.submit_tool_outputs") == 1
    assert [t.status for t in report.turns] == ["completed"]
    if allowed:
        assert gw.tools.state.volume == pytest.approx(0.3)
        assert gw.tools.refused == 0
    else:
        assert gw.tools.refused == 1 and gw.tools.state.volume == 1.0
