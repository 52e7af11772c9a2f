"""The daemon through injected connection faults: reconnect, resend the configuration, go on."""

from __future__ import annotations

import asyncio
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
    # Every connection starts with chat.update before any audio.
    for record in records:
        types = [t for t in record.received_types if t != "input_audio_buffer.append"]
        assert types[0] == "chat.update"
        assert record.received_types.index("chat.update") < record.received_types.index(
            "input_audio_buffer.append"
        )
    assert [t.status for t in daemon.turns] == ["completed"]


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
