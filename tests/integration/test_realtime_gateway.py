"""The Realtime gateway end to end: create a room, join it over aiortc on loopback, talk.

Each test runs the real emulator (HTTP create-room and signalling, an aiortc peer per room, the
simulated agent) and the real gateway with a WAV microphone paced in real time (a room is a
live call) and a WAV speaker. The agent is the ``echo`` bot, so replies are audible speech.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import MS

from voicegw.config import AudioConfig, CloudConfig, Config, RealtimeConfig, TurnConfig
from voicegw.daemon import Daemon
from voicegw.emulator import Emulator
from voicegw.emulator.room import EmulatorRoom
from voicegw.io.files import WavSink, WavSource
from voicegw.realtime_gateway import RealtimeGateway

TIMEOUT = 40_000 * MS
BOT = "7000000000000000001"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(
        host="127.0.0.1", port=0, token="tok-" + secrets.token_hex(8), bot="echo"
    ) as e:
        yield e


def rt_config(emu: Emulator, mode: str, **realtime: object) -> Config:
    return Config(
        cloud=CloudConfig(url=emu.url, api_url=emu.api_url, api="realtime", bot_id=BOT),
        turn=TurnConfig(mode=mode),  # type: ignore[arg-type]
        # File devices have no acoustic echo: keep the microphone open while the agent talks,
        # so speech during a reply is a barge-in (as with a speakerphone's AEC).
        audio=AudioConfig(echo_policy="full_duplex", playback_prefill_ms=40),
        realtime=RealtimeConfig(**realtime),  # type: ignore[arg-type]
    )


class Log:
    """Every signalling message in either direction, with its arrival time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.items: list[tuple[float, str, dict[str, object]]] = []

    def __call__(self, direction: str, text: str) -> None:
        self.items.append((self.loop.time(), direction, json.loads(text)))

    def types(self, direction: str) -> list[str]:
        return [str(m["event_type"]) for _, d, m in self.items if d == direction]

    def times(self, direction: str, event_type: str) -> list[float]:
        return [t for t, d, m in self.items if d == direction and m["event_type"] == event_type]


class TimedSink(WavSink):
    """A WAV speaker that also notes when each audible period was written."""

    def __init__(self, path: Path, rate: int) -> None:
        super().__init__(path, rate=rate)
        self.loop = asyncio.get_running_loop()
        self.audible: list[float] = []

    def write(self, samples: np.ndarray) -> None:
        super().write(samples)
        if len(samples) and float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))) > 100:
            self.audible.append(self.loop.time())


def mic_file(tmp_path: Path, speech: tuple[np.ndarray, int], layout: list[float | str]) -> Path:
    """A 16 kHz microphone WAV: ``"speech"`` entries and seconds of silence, in order."""
    samples, rate = speech
    parts = [
        samples if item == "speech" else np.zeros(round(float(item) * rate), np.int16)
        for item in layout
    ]
    path = tmp_path / "mic.wav"
    sf.write(str(path), np.concatenate(parts), rate, subtype="PCM_16")
    return path


async def run(
    emu: Emulator, cfg: Config, mic: Path, out: Path
) -> tuple[RealtimeGateway, TimedSink, Log]:
    log = Log()
    sink = TimedSink(out, rate=24000)
    gw = RealtimeGateway(
        cfg,
        emu.token,
        source=WavSource(mic, frame_ms=20, realtime=True),
        sink=sink,
        observer=log,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.run()
    finally:
        sink.close()
    return gw, sink, log


def played(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="int16")
    return np.asarray(data)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


async def test_push_to_talk_turn(emu: Emulator, speech16k, tmp_path: Path) -> None:
    mic = mic_file(tmp_path, speech16k, [0.3, "speech", 0.3])
    gw, _, log = await run(emu, rt_config(emu, "ptt"), mic, tmp_path / "out.wav")

    up = log.types(">")
    assert up[:3] == ["session.update", "input_audio_buffer.start", "input_audio_buffer.complete"]
    down = log.types("<")
    assert down[:3] == ["session.created", "session.updated", "conversation.created"]
    assert down.index("input_audio_buffer.started") < down.index("input_audio_buffer.completed")
    assert down.index("input_audio_buffer.completed") < down.index("conversation.chat.created")
    # The room was created for push-to-talk, and its session.update carried no VAD type.
    room = next(iter(emu.http.api.rooms.values()))
    assert isinstance(room, EmulatorRoom)
    assert room.setup.turn_type == "client_interrupt"
    update = next(m for _, d, m in log.items if d == ">" and m["event_type"] == "session.update")
    assert "turn_detection" not in update["data"]  # type: ignore[operator]

    [turn] = gw.report.turns
    assert turn.status == "completed"
    assert turn.transcript and turn.reply_text.startswith("You said")
    assert turn.reply_latency_ms is not None and turn.play_latency_ms is not None
    assert turn.play_latency_ms >= turn.reply_latency_ms
    # The echo bot speaks the user's own audio back: the speaker got most of it, audibly.
    out = played(tmp_path / "out.wav")
    assert len(out) > 0.7 * len(speech16k[0]) * 24000 / 16000
    assert rms(out) > 300


async def test_server_vad_turn_with_barge_in(emu: Emulator, speech16k, tmp_path: Path) -> None:
    # Speak, pause long enough for the agent to start its (long, echoed) reply, then speak
    # again over it.
    seconds = len(speech16k[0]) / speech16k[1]
    mic = mic_file(tmp_path, speech16k, [0.5, "speech", 3.0, "speech", 0.5])
    gw, sink, log = await run(emu, rt_config(emu, "server_vad"), mic, tmp_path / "out.wav")

    assert "input_audio_buffer.start" not in log.types(">")  # the agent's VAD decides
    started = log.times("<", "audio.user.speech_started")
    agent_on = log.times("<", "audio.agent.speech_started")
    agent_off = log.times("<", "audio.agent.speech_stopped")
    assert len(started) >= 2 and agent_on and agent_off
    barge = started[1]
    assert agent_on[0] < barge, "the second utterance must start while the agent talks"
    # The agent stopped at once, and the gateway flushed its speaker.
    assert any(barge <= t < barge + 1.0 for t in agent_off)
    assert gw.player.flushes >= 1
    statuses = [t.status for t in gw.report.turns]
    assert statuses[0] == "interrupted"
    assert statuses[-1] == "completed"
    # Nothing of the cut reply reached the speaker after the flush (allowing one period in
    # flight and the 10 ms fade), until the agent answered the second utterance.
    second_reply = min(t for t in agent_on if t > barge)
    late = [t for t in sink.audible if barge + 0.1 < t < second_reply]
    assert not late, f"{len(late)} audible periods of the cut reply after the barge-in"
    # The first reply was cut: far less than the echoed utterance was played before it.
    first = gw.report.turns[0]
    assert first.reply_samples < 0.9 * seconds * 24000


async def test_client_vad_turn(emu: Emulator, speech16k, tmp_path: Path) -> None:
    mic = mic_file(tmp_path, speech16k, [0.5, "speech", 0.3])
    gw, _, log = await run(emu, rt_config(emu, "local_vad"), mic, tmp_path / "out.wav")

    vads = [
        m["data"]["vad"]  # type: ignore[index]
        for _, d, m in log.items
        if d == ">" and m["event_type"] == "client.vad"
    ]
    assert vads[:2] == [True, False]
    assert all(a != b for a, b in itertools.pairwise(vads)), "sent on change only"
    update = next(m for _, d, m in log.items if d == ">" and m["event_type"] == "session.update")
    assert update["data"]["turn_detection"]["type"] == "client_vad"  # type: ignore[index]
    assert log.times("<", "audio.user.speech_stopped")[0] > log.times(">", "client.vad")[1] - 1e-3
    turns = [t for t in gw.report.turns if t.status == "completed"]
    assert turns and turns[0].transcript
    assert rms(played(tmp_path / "out.wav")) > 300


async def test_inactivity_4029_then_a_new_room(
    emu: Emulator, speech16k, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The room hears 2.5 s of silence (longest_silence_ms is 1 s): the agent dismisses it
    # with 4029; the daemon creates a new room and the utterance that follows is answered.
    mic = mic_file(tmp_path, speech16k, [2.5, "speech", 0.5])
    cfg = rt_config(emu, "server_vad", longest_silence_ms=1000)
    cfg = dataclasses.replace(cfg, service=dataclasses.replace(cfg.service, reconnect_max_s=1.0))
    sink = WavSink(tmp_path / "out.wav", rate=24000)
    daemon = Daemon(cfg, emu.token, source=WavSource(mic, frame_ms=20, realtime=True), sink=sink)
    try:
        async with asyncio.timeout(TIMEOUT):
            await daemon.run()
    finally:
        sink.close()
    rooms = list(emu.http.api.rooms.values())
    assert len(rooms) >= 2
    first = rooms[0]
    assert isinstance(first, EmulatorRoom)
    assert first.agent.closed  # the agent dismissed it; it is never reopened
    reconnects = [
        r.getMessage()
        for r in caplog.records
        if r.name == "voicegw.daemon" and "4029" in r.getMessage()
    ]
    assert reconnects, "the daemon saw the 4029 and created a new room"
    assert [t.status for t in daemon.turns][-1:] == ["completed"]
    assert rms(played(tmp_path / "out.wav")) > 300


async def test_typed_turn_runs_a_device_tool(emu: Emulator, tmp_path: Path) -> None:
    # No speech: a typed message asks the agent to call set_volume on the device; the
    # gateway runs it, submits the output, and the agent speaks the result.
    mic = tmp_path / "silence.wav"
    sf.write(str(mic), np.zeros(16000 * 2, np.int16), 16000, subtype="PCM_16")
    log = Log()
    sink = WavSink(tmp_path / "out.wav", rate=24000)
    loop = asyncio.get_running_loop()
    gw: RealtimeGateway

    def ready() -> None:
        loop.call_soon(gw.send_text, '/tool set_volume {"level": 0.3}')

    gw = RealtimeGateway(
        rt_config(emu, "server_vad"),
        emu.token,
        source=WavSource(mic, frame_ms=20, realtime=True),
        sink=sink,
        observer=log,
        hold_to_talk=False,
        on_ready=ready,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.run()
    finally:
        sink.close()
    assert gw.tools.state.volume == pytest.approx(0.3)
    up = log.types(">")
    assert up.index("conversation.message.create") < up.index(
        "conversation.chat.submit_tool_outputs"
    )
    submit = next(
        m
        for _, d, m in log.items
        if d == ">" and m["event_type"] == "conversation.chat.submit_tool_outputs"
    )
    outputs = submit["data"]["tool_outputs"]  # type: ignore[index]
    assert json.loads(outputs[0]["output"])["ok"] is True
    [turn] = gw.report.turns
    assert turn.status == "completed"
    assert "set_volume" in turn.reply_text
    assert rms(played(tmp_path / "out.wav")) > 100  # the agent's answer was heard


async def test_audio_faster_than_real_time_is_paced_not_dropped(
    emu: Emulator, speech16k, tmp_path: Path
) -> None:
    # An unpaced file delivers the whole utterance at once, as the daemon does when it replays
    # push-to-talk audio kept through a disconnect. RTC media is real time: the gateway holds
    # the source back instead of letting the transport's queue drop the oldest audio.
    mic = mic_file(tmp_path, speech16k, ["speech", 0.2])
    sink = WavSink(tmp_path / "out.wav", rate=24000)
    gw = RealtimeGateway(
        rt_config(emu, "ptt"),
        emu.token,
        source=WavSource(mic, frame_ms=20, realtime=False),
        sink=sink,
    )
    stats = []
    real_factory = gw._transport_factory

    def factory():  # type: ignore[no-untyped-def]
        t = real_factory()
        stats.append(t.stats)  # type: ignore[attr-defined]
        return t

    gw._transport_factory = factory
    try:
        async with asyncio.timeout(TIMEOUT):
            await gw.run()
    finally:
        sink.close()
    [st] = stats
    # The transport queue holds 1 s; the utterance is ~8 s, all of it sent and none dropped.
    frames = len(speech16k[0]) / speech16k[1] / 0.02
    assert st.frames_dropped == 0
    assert st.frames_sent >= frames
    [turn] = gw.report.turns
    assert turn.status == "completed" and turn.transcript


async def test_release_waits_for_the_media_so_the_last_syllable_is_heard(
    emu: Emulator, tmp_path: Path
) -> None:
    # The key goes up the moment the 1 s sound ends. input_audio_buffer.complete travels on
    # the data channel, which overtakes the media by ~100 ms: sent at once, the agent would
    # cut the utterance short. The emulator's transcript states how much speech it heard.
    t = np.arange(16000) / 16000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    mic = tmp_path / "tone.wav"
    sf.write(str(mic), tone, 16000, subtype="PCM_16")
    gw, _, log = await run(emu, rt_config(emu, "ptt"), mic, tmp_path / "out.wav")
    [turn] = gw.report.turns
    heard = float(turn.transcript.strip("()").split()[0])
    assert heard >= 0.96, turn.transcript
    # And complete was sent after the key went up, not with it.
    [complete] = log.times(">", "input_audio_buffer.complete")
    [start] = log.times(">", "input_audio_buffer.start")
    assert complete - start >= 1.0


async def test_a_prologue_is_played_but_opens_no_turn(
    emu: Emulator, speech16k, tmp_path: Path
) -> None:
    mic = mic_file(tmp_path, speech16k, [3.0, "speech", 0.5])
    cfg = rt_config(emu, "server_vad", prologue_content="Welcome back.", prologue_delay_ms=0)
    gw, _, log = await run(emu, cfg, mic, tmp_path / "out.wav")
    down = log.types("<")
    assert down.count("audio.agent.speech_started") == 2  # the prologue, then the reply
    created = next(m for _, d, m in log.items if m["event_type"] == "conversation.created")
    assert created["data"]["prologue"] == "Welcome back."  # type: ignore[index]
    [turn] = gw.report.turns
    assert turn.status == "completed" and turn.transcript
    assert turn.reply_latency_ms is not None and turn.reply_latency_ms > 0
