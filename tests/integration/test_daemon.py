"""The daemon against the emulator: a GPIO button (gpiozero mock pins) and the control socket."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import MS

from voicegw.config import parse_config
from voicegw.daemon import Daemon
from voicegw.emulator import Emulator
from voicegw.io.files import WavSink, WavSource

TIMEOUT = 30_000 * MS


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, token="tok-" + secrets.token_hex(8), bot="echo") as emu:
        yield emu


class ButtonPressingSource:
    """A real-time WAV microphone whose user holds a GPIO button from ``press_at`` to the end."""

    def __init__(self, path: Path, press_at: float, pin: object) -> None:
        self.inner = WavSource(path, frame_ms=20, realtime=True)
        self.rate = self.inner.rate
        self.channels = self.inner.channels
        self.press_at = press_at
        self.pin = pin

    async def frames(self) -> AsyncIterator[np.ndarray]:
        n = 0
        async for frame in self.inner.frames():
            if n == round(self.press_at / 0.02):
                self.pin.drive_low()  # type: ignore[attr-defined]
            n += 1
            yield frame
        self.pin.drive_high()  # type: ignore[attr-defined]
        # Keep "listening" (silence) while the turn finishes, as a live microphone would.
        silence = np.zeros(self.inner.frame, dtype=np.int16)
        for _ in range(50):
            await asyncio.sleep(0.02)
            yield silence


async def test_gpio_button_turn_with_earcons(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    Device.pin_factory = MockFactory()
    pin = Device.pin_factory.pin(17)
    cfg = parse_config(
        {
            "cloud": {"url": emulator.url, "bot_id": "7000000000000000001"},
            "output": {"sample_rate": 16000},
            "button": {"kind": "gpio", "gpio_pin": 17, "mode": "hold"},
            "audio": {"source": "file:unused.wav", "sink": "file:unused.wav"},
        }
    )
    mic = fixtures_dir / "short16k.wav"
    source = ButtonPressingSource(mic, press_at=0.3, pin=pin)
    sink = WavSink(tmp_path / "out.wav", rate=16000)
    daemon = Daemon(cfg, emulator.token, source=source, sink=sink)
    try:
        async with asyncio.timeout(TIMEOUT):
            await daemon.run()
    finally:
        sink.close()
        Device.pin_factory.close()
        Device.pin_factory = None
    record = emulator.connections[-1]
    assert record.received_types.count("input_audio_buffer.complete") == 1
    assert "conversation.chat.completed" in record.sent_types
    snap = daemon.metrics.snapshot()
    assert snap["voicegw_turns"] == {"completed": 1.0}
    assert snap["voicegw_reply_latency_ms"]["count"] == 1
    played, _ = sf.read(str(tmp_path / "out.wav"), dtype="int16")
    # The press and release earcons were played locally, and the echo of the speech followed.
    assert len(played) > 16000
    press = daemon.earcons["press"]
    corr = np.correlate(played[: 3 * 16000].astype(np.float64), press.astype(np.float64))
    assert corr.max() > 0.9 * float(np.dot(press.astype(np.float64), press.astype(np.float64)))


async def test_control_socket_reads_state_and_sets_volume(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path
) -> None:
    sock = tmp_path / "control.sock"
    cfg = parse_config(
        {
            "cloud": {"url": emulator.url, "bot_id": "7000000000000000001"},
            "audio": {
                "source": f"file:{fixtures_dir / 'short16k.wav'}",
                "sink": f"file:{tmp_path / 'out.wav'}",
            },
            "service": {"control_socket": str(sock)},
        }
    )
    daemon = Daemon(cfg, emulator.token)
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not sock.exists():
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_unix_connection(str(sock))
            state: dict[str, object] = {}
            while state.get("connection") != "ready":
                writer.write(b'{"cmd": "state"}\n')
                await writer.drain()
                state = json.loads(await reader.readline())["state"]
            writer.write(b'{"cmd": "volume", "level": 0.5}\n{"cmd": "bogus"}\n')
            await writer.drain()
            assert json.loads(await reader.readline())["ok"] is True
            bad = json.loads(await reader.readline())
            assert bad["ok"] is False and "bogus" in bad["error"]
            writer.close()
            await task
    finally:
        task.cancel()
    assert daemon.tools.state.volume == pytest.approx(0.5)


async def test_daemon_tells_systemd_ready_status_watchdog_and_stopping(
    emulator: Emulator, fixtures_dir: Path, tmp_path: Path
) -> None:
    import os
    import socket

    from voicegw.io.systemd import Notifier

    path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.setblocking(False)
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(env)
    cfg = parse_config(
        {
            "cloud": {"url": emulator.url, "bot_id": "7000000000000000001"},
            "audio": {
                "source": f"file:{fixtures_dir / 'short16k.wav'}",
                "sink": f"file:{tmp_path / 'out.wav'}",
            },
        }
    )
    daemon = Daemon(cfg, emulator.token, notifier=notifier)
    messages: list[str] = []

    async def listen() -> None:  # systemd reads as they come (a datagram queue holds ~10)
        loop = asyncio.get_running_loop()
        while True:
            messages.append((await loop.sock_recv(receiver, 4096)).decode())

    listener = asyncio.create_task(listen())
    try:
        async with asyncio.timeout(TIMEOUT):
            await daemon.run()
            while not messages[-1].startswith("STOPPING=1"):
                await asyncio.sleep(0.01)
    finally:
        listener.cancel()
        receiver.close()
    text = "\n".join(messages)
    assert "READY=1" in text
    assert "STATUS=connected" in text and "STATUS=turn completed" in text
    # The 3.3 s run is longer than half the 2 s watchdog interval, with capture alive.
    assert "WATCHDOG=1" in text
    assert sum(m.startswith("STOPPING=1") for m in messages) == 1
