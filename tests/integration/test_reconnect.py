"""The daemon through injected connection faults: reconnect, resend the configuration, go on."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import MS

import voicegw.daemon as daemon_module
from voicegw.config import parse_config
from voicegw.daemon import Daemon
from voicegw.emulator import Emulator
from voicegw.emulator.faults import FaultPlan
from voicegw.errors import CloudError
from voicegw.gateway import Gateway

TIMEOUT = 30_000 * MS


class RecordingGateway(Gateway):
    """A Gateway that remembers the chat.update of every connection."""

    made: ClassVar[list[Gateway]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingGateway.made.append(self)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[Gateway]:
    RecordingGateway.made = []
    monkeypatch.setattr(daemon_module, "Gateway", RecordingGateway)
    return RecordingGateway.made


async def run_daemon(emu: Emulator, mic: Path, out: Path) -> Daemon:
    cfg = parse_config(
        {
            "cloud": {"url": emu.url, "bot_id": "7000000000000000001"},
            "audio": {"source": f"file:{mic}", "sink": f"file:{out}", "realtime": False},
        }
    )
    daemon = Daemon(cfg, emu.token)
    async with asyncio.timeout(TIMEOUT):
        await daemon.run()
    return daemon


async def test_a_reply_cut_by_a_dropped_socket_reconnects_with_the_same_conversation(
    fixtures_dir: Path, tmp_path: Path, recording: list[Gateway]
) -> None:
    # The first connection dies abruptly in the middle of the reply.
    plan = FaultPlan(close_mid_reply=True, abrupt=True, on=frozenset({1}))
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        daemon = await run_daemon(emu, fixtures_dir / "short16k.wav", tmp_path / "out.wav")
        records = list(emu.connections)
    assert len(records) == 2 and records[0].faults_injected
    assert daemon.metrics.snapshot()["voicegw_reconnects"] == 1.0
    first, second = recording
    # The cut reply was flushed from playback, not resumed mid-sentence.
    assert first.report.flushes >= 1
    conversation = first.session.conversation_id
    assert conversation
    sent = second.session.config.chat_config
    assert sent is not None and sent.conversation_id == conversation
    assert second.session.config.input_audio == first.session.config.input_audio
    # Every connection starts with chat.update, before any audio.
    for record in records:
        assert record.received_types[0] == "chat.update"
    # The utterance was committed on the first connection; the cut reply is not resumed and
    # the (one-shot, file) microphone has nothing more to say on the second.
    assert records[0].received_types.count("input_audio_buffer.complete") == 1
    assert "input_audio_buffer.append" not in records[1].received_types
    assert daemon.turns == []


async def test_a_refused_token_is_not_retried(fixtures_dir: Path, tmp_path: Path) -> None:
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=FaultPlan(refuse=403)
    ) as emu:
        with pytest.raises(CloudError) as info:
            await run_daemon(emu, fixtures_dir / "short16k.wav", tmp_path / "out.wav")
        assert len(emu.refused) == 1  # one attempt, no retry loop
    assert info.value.code == 4101 and not info.value.retryable


async def test_a_server_error_midway_is_survived(
    fixtures_dir: Path, tmp_path: Path, recording: list[Gateway]
) -> None:
    # A malformed frame and an unknown event arrive before the turn: both are reported and
    # ignored, and the turn completes on the same connection.
    plan = FaultPlan(malformed_at=2, unknown_event_at=3)
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        daemon = await run_daemon(emu, fixtures_dir / "short16k.wav", tmp_path / "out.wav")
        assert len(emu.connections) == 1
    assert [t.status for t in daemon.turns] == ["completed"]


class QueueMic:
    """A microphone the test speaks into: 20 ms frames from a queue, ``None`` ends it."""

    rate = 16000
    channels = 1

    def __init__(self, fail_first: bool = False) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.fail_first = fail_first
        self.opened = 0

    async def frames(self) -> Any:
        self.opened += 1
        if self.fail_first and self.opened == 1:
            from voicegw.errors import DeviceError

            raise DeviceError("capture stalled: no frame for 5 s (USB unplugged?)")
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            yield frame

    def speak(self, samples: Any) -> None:
        for i in range(0, len(samples) - 319, 320):
            self.queue.put_nowait(samples[i : i + 320])


async def wait_for(condition: Any) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.005)


def config_for(emu: Emulator, tmp_path: Path, mode: str = "ptt") -> Any:
    return parse_config(
        {
            "cloud": {"url": emu.url, "bot_id": "7000000000000000001"},
            "turn": {"mode": mode},
            "output": {"sample_rate": 16000},
            "audio": {
                "source": "file:unused.wav",
                "sink": f"file:{tmp_path / 'out.wav'}",
                "realtime": False,
            },
        }
    )


async def test_push_to_talk_during_a_disconnect_is_sent_after_reconnecting(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    import soundfile as sf

    from voicegw.io.files import WavSink
    from voicegw.ptt import StartTalking, StopTalking

    speech, _ = sf.read(str(fixtures_dir / "short16k.wav"), dtype="int16")
    # The first connection drops right after chat.updated.
    plan = FaultPlan(close_at=2, abrupt=True, on=frozenset({1}))
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        mic = QueueMic()
        sink = WavSink(tmp_path / "out.wav", rate=16000)
        daemon = Daemon(config_for(emu, tmp_path), emu.token, source=mic, sink=sink)
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: len(emu.connections) >= 1 and not emu.connections[0].open)
        await wait_for(lambda: daemon.gateway is None)  # the daemon noticed: reconnecting
        # The user presses, speaks and releases while the daemon is reconnecting.
        daemon.apply([StartTalking(at=0.0)])
        mic.speak(speech)
        await wait_for(lambda: mic.queue.empty())  # the release comes after the speech
        daemon.apply([StopTalking(at=0.0, reason="released")])
        assert daemon.gateway is None, "reconnected too early for this test to mean anything"
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
        sink.close()
        records = list(emu.connections)
    assert len(records) == 2
    assert records[1].received_types.count("input_audio_buffer.complete") == 1
    assert [t.status for t in daemon.turns] == ["completed"]
    played, _ = sf.read(str(tmp_path / "out.wav"), dtype="int16")
    # The whole utterance was kept: the echo is as long as what was spoken.
    assert abs(len(played) - len(speech)) < 16000 * 0.1


async def test_vad_audio_during_a_gap_is_dropped_and_counted(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    plan = FaultPlan(close_at=2, abrupt=True, on=frozenset({1}))
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        mic = QueueMic()
        daemon = Daemon(config_for(emu, tmp_path, "server_vad"), emu.token, source=mic)
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: len(emu.connections) >= 1 and not emu.connections[0].open)
        await wait_for(lambda: daemon.gateway is None)
        mic.speak(np.full(16000, 3000, dtype=np.int16))  # 1 s during the gap
        await wait_for(lambda: mic.queue.empty())
        assert daemon.gateway is None
        await wait_for(lambda: daemon.gateway is not None and daemon.gateway.ready)
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
        second = emu.connections[1]
    assert daemon.dropped_offline >= 40  # the gap's frames, never replayed late
    assert "input_audio_buffer.speech_started" not in second.sent_types


async def test_a_failed_capture_is_reopened(fixtures_dir: Path, tmp_path: Path) -> None:
    import soundfile as sf

    from voicegw.io.files import WavSink
    from voicegw.ptt import StartTalking, StopTalking

    speech, _ = sf.read(str(fixtures_dir / "short16k.wav"), dtype="int16")
    async with Emulator(port=0, token="tok-" + secrets.token_hex(8), bot="echo") as emu:
        mic = QueueMic(fail_first=True)
        sink = WavSink(tmp_path / "out.wav", rate=16000)
        daemon = Daemon(config_for(emu, tmp_path), emu.token, source=mic, sink=sink)
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: mic.opened >= 2)
        daemon.apply([StartTalking(at=0.0)])
        mic.speak(speech)
        await wait_for(lambda: mic.queue.empty())  # the release comes after the speech
        daemon.apply([StopTalking(at=0.0, reason="released")])
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
        sink.close()
    assert daemon.metrics.snapshot()["voicegw_capture_restarts"] == 1.0
    assert [t.status for t in daemon.turns] == ["completed"]


async def test_a_silent_peer_is_detected_by_ping_and_replaced(
    fixtures_dir: Path, tmp_path: Path, recording: list[Gateway]
) -> None:
    # The first connection stops answering pings: with a 0.2 s ping interval the gateway
    # declares it dead and the daemon reconnects.
    plan = FaultPlan(no_pong=True, on=frozenset({1}))
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        mic = QueueMic()
        cfg = parse_config(
            {
                "cloud": {"url": emu.url, "bot_id": "7000000000000000001", "ping_interval_s": 0.2},
                "audio": {"source": "file:unused.wav", "sink": f"file:{tmp_path / 'o.wav'}"},
            }
        )
        daemon = Daemon(cfg, emu.token, source=mic)
        task = asyncio.create_task(daemon.run())
        await wait_for(
            lambda: (
                len(emu.connections) >= 2 and daemon.gateway is not None and daemon.gateway.ready
            )
        )
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
    assert daemon.metrics.snapshot()["voicegw_reconnects"] >= 1.0
    assert "no_pong" in emu.connections[0].faults_injected


async def test_an_oversized_frame_drops_the_connection_not_the_daemon(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    plan = FaultPlan(oversized_at=3, oversized_bytes=3 * 1024 * 1024, on=frozenset({1}))
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        mic = QueueMic()
        daemon = Daemon(config_for(emu, tmp_path), emu.token, source=mic)
        task = asyncio.create_task(daemon.run())
        await wait_for(
            lambda: (
                len(emu.connections) >= 2 and daemon.gateway is not None and daemon.gateway.ready
            )
        )
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
        first = emu.connections[0]
    assert first.close_code == 1009  # "message too big": the 1 MiB inbound cap held
    assert daemon.metrics.snapshot()["voicegw_reconnects"] == 1.0


class FailingSink:
    """A speaker that fails for its first writes (a USB DAC re-enumerating)."""

    def __init__(self, rate: int, failures: int) -> None:
        self.rate = rate
        self.failures = failures
        self.written = 0

    def write(self, samples: Any) -> None:
        from voicegw.errors import DeviceError

        if self.failures > 0:
            self.failures -= 1
            raise DeviceError("playback device vanished")
        self.written += len(samples)


async def test_a_speaker_error_does_not_take_capture_down(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    import soundfile as sf

    from voicegw.ptt import StartTalking, StopTalking

    speech, _ = sf.read(str(fixtures_dir / "short16k.wav"), dtype="int16")
    async with Emulator(port=0, token="tok-" + secrets.token_hex(8), bot="echo") as emu:
        mic = QueueMic()
        sink = FailingSink(16000, failures=10)
        daemon = Daemon(config_for(emu, tmp_path), emu.token, source=mic, sink=sink)
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.gateway is not None and daemon.gateway.ready)
        daemon.apply([StartTalking(at=0.0)])
        mic.speak(speech)
        await wait_for(lambda: mic.queue.empty())
        daemon.apply([StopTalking(at=0.0, reason="released")])
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
    assert [t.status for t in daemon.turns] == ["completed"]
    assert sink.failures == 0 and sink.written > 16000  # it played once the device came back


# ---------------------------------------------------------------- how long the daemon waits


class Clockwork:
    """The daemon's sleep: records each delay asked for; ``release()`` lets the wait end.

    Waits of at least ``hold_s``, and the ``hold_at``-th wait (from 1), block until released
    (the test checks the daemon while it waits); the others end at once: no test waits for
    real backoff.
    """

    def __init__(self, hold_s: float = 30.0, hold_at: int | None = None) -> None:
        self.asked: list[float] = []
        self.hold_s = hold_s
        self.hold_at = hold_at
        self.waiting = asyncio.Event()
        self._go = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        if delay >= self.hold_s or len(self.asked) == self.hold_at:
            self.waiting.set()
            await self._go.wait()
            self._go.clear()
            self.waiting.clear()
        else:
            await asyncio.sleep(0)

    def release(self) -> None:
        self._go.set()


def slow_config(url: str, tmp_path: Path, reconnect_max_s: float = 30.0) -> Any:
    return parse_config(
        {
            "cloud": {"url": url, "bot_id": "7000000000000000001", "connect_timeout_s": 5.0},
            "output": {"sample_rate": 16000},
            "audio": {
                "source": "file:unused.wav",
                "sink": f"file:{tmp_path / 'out.wav'}",
                "realtime": False,
            },
            "service": {"reconnect_max_s": reconnect_max_s},
        }
    )


@pytest.mark.parametrize(
    ("plan", "wait_s"),
    [
        # Billing stops arrive as an error event on an open session; the service then closes.
        (FaultPlan(error_at=(3, 4027)), 600.0),
        (FaultPlan(error_at=(3, 4028)), 600.0),
        # A rate limit: refused at the upgrade (HTTP 429), or an error while configuring.
        (FaultPlan(refuse=429), 60.0),
        (FaultPlan(error_at=(2, 4013)), 60.0),
    ],
    ids=["4027-overdue", "4028-no-credits", "http-429", "4013-rate-limited"],
)
async def test_billing_stops_and_rate_limits_wait_long_then_reconnect(
    tmp_path: Path, plan: FaultPlan, wait_s: float
) -> None:
    plan = dataclasses.replace(plan, on=frozenset({1}))
    clock = Clockwork()
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        mic = QueueMic()
        daemon = Daemon(slow_config(emu.url, tmp_path), emu.token, source=mic, sleep=clock)
        task = asyncio.create_task(daemon.run())
        async with asyncio.timeout(TIMEOUT):
            await clock.waiting.wait()
        # The daemon asked for the long wait, and is in it: nothing reconnects meanwhile.
        assert clock.asked == [wait_s]
        attempts = len(emu.connections) + len(emu.refused)
        assert attempts == 1 and daemon.gateway is None and not task.done()
        assert daemon.metrics.snapshot()["voicegw_cloud_connected"] == 0.0
        clock.release()  # ... ten (or one) minutes later
        await wait_for(lambda: daemon.gateway is not None and daemon.gateway.ready)
        mic.queue.put_nowait(None)  # then the microphone ends: a clean stop
        async with asyncio.timeout(TIMEOUT):
            await task
    assert clock.asked == [wait_s]
    assert daemon.metrics.snapshot()["voicegw_reconnects"] == 1.0


async def test_network_errors_retry_with_capped_jittered_backoff(tmp_path: Path) -> None:
    # The service answers 503 to five upgrades in a row, then accepts.
    plan = FaultPlan(refuse=503, on=frozenset(range(1, 6)))
    clock = Clockwork()
    async with Emulator(
        port=0, token="tok-" + secrets.token_hex(8), bot="echo", faults=plan
    ) as emu:
        mic = QueueMic()
        cfg = slow_config(emu.url, tmp_path, reconnect_max_s=2.0)
        daemon = Daemon(cfg, emu.token, source=mic, sleep=clock)
        task = asyncio.create_task(daemon.run())
        await wait_for(lambda: daemon.gateway is not None and daemon.gateway.ready)
        mic.queue.put_nowait(None)
        async with asyncio.timeout(TIMEOUT):
            await task
        assert [status for _, status in emu.refused] == [503] * 5
    # 0.5, 1, 2, then capped at reconnect_max_s = 2, each scaled by [0.75, 1] of jitter.
    assert len(clock.asked) == 5
    for delay, top in zip(clock.asked, [0.5, 1.0, 2.0, 2.0, 2.0], strict=True):
        assert 0.75 * top <= delay <= top, clock.asked
    assert daemon.metrics.snapshot()["voicegw_reconnects"] == 5.0


async def test_an_unreachable_service_is_retried_until_stopped(tmp_path: Path) -> None:
    import socket

    # A port nobody listens on: every connect is refused by the kernel (a network error).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = Clockwork(hold_at=4)  # the fourth wait holds; the first three pass
    mic = QueueMic()
    sink = FailingSink(16000, failures=0)
    cfg = slow_config(f"ws://127.0.0.1:{port}", tmp_path, reconnect_max_s=8.0)
    daemon = Daemon(cfg, "tok-unused", source=mic, sink=sink, sleep=clock)
    task = asyncio.create_task(daemon.run())
    async with asyncio.timeout(TIMEOUT):
        await clock.waiting.wait()
    assert not task.done()  # still trying, never giving up on a network error
    assert len(clock.asked) == 4
    for delay, top in zip(clock.asked, [0.5, 1.0, 2.0, 4.0], strict=True):
        assert 0.75 * top <= delay <= top, clock.asked
    # Stopping the service (SIGTERM cancels the run) ends the wait at once.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(TIMEOUT):
            await task
    assert daemon.gateway is None and daemon.metrics.snapshot()["voicegw_reconnects"] == 4.0
