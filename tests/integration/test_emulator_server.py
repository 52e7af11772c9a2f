"""The emulator over real sockets: handshake, auth, whole turns, keepalive, CLI (spec 1.2-1.8)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.protocol import State

from voicegw.emulator import Emulator
from voicegw.emulator.server import add_arguments, serve_forever

Audio = tuple[NDArray[np.int16], int]
TOKEN = "pat_test-token_123"
BOT = "7496347519799787557"
LOGID = re.compile(r"^02\d{13}[0-9a-f]{38}$")
TIMEOUT = 20_000 * MS


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, bot="echo") as e:
        yield e


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def recv_until(ws: ClientConnection, event_type: str) -> list[dict[str, Any]]:
    out = []
    while True:
        out.append(await recv_json(ws))
        if out[-1]["event_type"] == event_type:
            return out


# ---------------------------------------------------------------- handshake (1.3, 1.4)


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (f"bot_id={BOT}", {}),
        (f"bot_id={BOT}", {"Authorization": "Bearer wrong"}),
        (f"bot_id={BOT}", {"Authorization": TOKEN}),
        (f"bot_id={BOT}&authorization=Bearer%20wrong", {}),
        (f"bot_id={BOT}&authorization={TOKEN}", {}),
    ],
)
async def test_bad_or_missing_token_is_401_with_logid_and_json(
    emu: Emulator, query: str, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{emu.url}/v1/chat?{query}", additional_headers=headers)
    response = info.value.response
    assert response.status_code == 401
    logid = response.headers["X-Tt-Logid"]
    assert LOGID.match(logid)
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert body == {"code": 4100, "msg": "authentication is invalid", "detail": {"logid": logid}}
    assert TOKEN not in response.body.decode()


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (f"bot_id={BOT}", {"Authorization": f"Bearer {TOKEN}"}),
        (f"bot_id={BOT}&authorization=Bearer%20{TOKEN}", {}),
        (f"bot_id={BOT}&authorization=Bearer+{TOKEN}", {}),
        (f"authorization=Bearer%20{TOKEN}&bot_id={BOT}&device_id=42", {}),
    ],
)
async def test_both_token_forms_are_accepted(
    emu: Emulator, query: str, headers: dict[str, str]
) -> None:
    async with connect(f"{emu.url}/v1/chat?{query}", additional_headers=headers) as ws:
        first = await recv_json(ws)
        assert first["event_type"] == "chat.created"
        assert first["detail"]["logid"] == ws.response.headers["X-Tt-Logid"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/chat", 400, 4000),
        ("/v1/chat?bot_id=my-bot", 404, 4200),
        (f"/v1/chat?bot_id={BOT}&device_id=kiosk-3", 400, 4000),
        (f"/v1/audio/simult_interpretation?bot_id={BOT}", 404, 4200),
    ],
)
async def test_bad_path_or_bot_is_refused(emu: Emulator, path: str, status: int, code: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{emu.url}{path}", additional_headers={"Authorization": f"Bearer {TOKEN}"})
    response = info.value.response
    assert response.status_code == status
    assert json.loads(response.body)["code"] == code
    assert json.loads(response.body)["detail"]["logid"] == response.headers["X-Tt-Logid"]


async def test_only_listed_bot_ids_are_known() -> None:
    async with Emulator(token=TOKEN, bot_ids=["1234"]) as e:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with pytest.raises(InvalidStatus):
            await connect(f"{e.url}/v1/chat?bot_id={BOT}", additional_headers=auth)
        async with connect(f"{e.url}/v1/chat?bot_id=1234", additional_headers=auth) as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"


async def test_plain_http_without_upgrade_is_refused_and_forgotten(emu: Emulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    writer.write(
        f"GET /v1/chat?bot_id={BOT} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), TIMEOUT)
    assert status.split()[1] in (b"400", b"426")
    writer.close()
    await writer.wait_closed()
    assert emu._hs.accepted == {}


def test_a_token_is_always_required() -> None:
    with pytest.raises(ValueError, match="token"):
        Emulator(token="")


# ---------------------------------------------------------------- whole turns


async def open_chat(emu: Emulator, update: dict[str, Any]) -> ClientConnection:
    ws = await connect(
        f"{emu.url}/v1/chat?bot_id={BOT}", additional_headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert (await recv_json(ws))["event_type"] == "chat.created"
    await ws.send(json.dumps({"id": "u1", "event_type": "chat.update", "data": update}))
    ack = await recv_json(ws)
    assert (ack["event_type"], ack["id"]) == ("chat.updated", "u1")
    return ws


async def send_audio(ws: ClientConnection, samples: NDArray[np.int16], rate: int) -> None:
    step = rate // 50
    for i in range(0, samples.shape[0], step):
        delta = base64.b64encode(samples[i : i + step].astype("<i2").tobytes()).decode()
        await ws.send(
            json.dumps({"event_type": "input_audio_buffer.append", "data": {"delta": delta}})
        )


async def test_push_to_talk_turn(emu: Emulator, short16k: Audio) -> None:
    ws = await open_chat(emu, {"input_audio": {"format": "pcm", "sample_rate": 16000}})
    async with ws:
        await send_audio(ws, *short16k)
        await ws.send(json.dumps({"id": "done", "event_type": "input_audio_buffer.complete"}))
        frames = await recv_until(ws, "conversation.chat.completed")
    kinds = [f["event_type"] for f in frames]
    assert kinds[0] == "input_audio_buffer.completed" and frames[0]["id"] == "done"
    t = kinds.index("conversation.audio_transcript.completed")
    assert kinds[t + 1 : t + 4] == [
        "conversation.message.completed",
        "conversation.chat.created",
        "conversation.chat.in_progress",
    ]
    assert kinds[-2:] == ["conversation.audio.completed", "conversation.chat.completed"]
    audio = b"".join(
        base64.b64decode(f["data"]["content"])
        for f in frames
        if f["event_type"] == "conversation.audio.delta"
    )
    assert len(audio) == round(short16k[0].shape[0] * 1.5) * 2  # echoed, 16 kHz -> 24 kHz s16
    (record,) = emu.connections
    assert list(record.received_types)[:2] == ["chat.update", "input_audio_buffer.append"]
    assert record.received_types[-1] == "input_audio_buffer.complete"
    assert list(record.sent_types) == ["chat.created", "chat.updated", *kinds]


async def test_server_vad_turn(emu: Emulator, speech16k: Audio) -> None:
    ws = await open_chat(
        emu,
        {
            "input_audio": {"format": "pcm", "sample_rate": 16000},
            "turn_detection": {"type": "server_vad"},
        },
    )
    async with ws:
        await send_audio(ws, *speech16k)  # faster than real time: the VAD follows the audio
        frames = await recv_until(ws, "conversation.chat.completed")
    kinds = [f["event_type"] for f in frames]
    assert kinds[0] == "input_audio_buffer.speech_started"
    stop = kinds.index("input_audio_buffer.speech_stopped")
    assert set(kinds[1:stop]) == {"conversation.audio_transcript.update"}
    assert kinds[stop + 1 : stop + 3] == [
        "conversation.audio_transcript.completed",
        "conversation.message.completed",
    ]


async def test_errors_keep_the_socket_open_and_big_appends_fit(emu: Emulator) -> None:
    ws = await open_chat(emu, {"input_audio": {"format": "pcm", "sample_rate": 48000}})
    async with ws:
        await ws.send("{oops")
        err = await recv_json(ws)
        assert err["data"]["code"] == 4000 and err["detail"]["origin_message"] == "{oops"
        big = np.zeros(480_000, dtype=np.int16).tobytes()  # 10 s, 960 KB raw, 1.28 MB base64
        await ws.send(
            json.dumps(
                {
                    "event_type": "input_audio_buffer.append",
                    "data": {"delta": base64.b64encode(big).decode()},
                }
            )
        )
        await ws.send(json.dumps({"event_type": "input_audio_buffer.complete"}))
        assert (await recv_json(ws))["event_type"] == "input_audio_buffer.completed"


# ---------------------------------------------------------------- keepalive (1.8)


async def test_keepalive_maps_missed_pongs_to_ping_timeout() -> None:
    interval = 100 * MS
    async with Emulator(
        token=TOKEN, ping_interval=interval, missed_pongs=4, close_timeout=interval
    ) as e:
        assert e.ping_timeout == pytest.approx(4 * interval)
        quiet = await open_chat(e, {})
        deaf = await open_chat(e, {})
        try:
            deaf.transport.pause_reading()  # stops answering pings
            paused_at = asyncio.get_running_loop().time()
            record = e.connections[1]
            await asyncio.wait_for(record.closed.wait(), TIMEOUT)
            assert asyncio.get_running_loop().time() - paused_at >= 4 * interval
            assert record.close_code == 1006  # the deaf client never completed the closing
            # a client that answers stays connected through many intervals
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(quiet.recv(), 10 * interval)
            assert quiet.state is State.OPEN and e.connections[0].open
        finally:
            deaf.transport.resume_reading()
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(deaf.recv(), TIMEOUT)
            await quiet.close()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "keepalive ping timeout")


# ---------------------------------------------------------------- command line


async def test_cli_prints_the_url_first_then_the_generated_token() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicegw.emulator",
        "--port",
        "0",
        "--bot",
        "tone",
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        match = re.fullmatch(r"listening on (ws://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        second = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        token = second.removeprefix("token: ").strip()
        assert second.startswith("token: ") and len(token) >= 20
        third = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        assert re.fullmatch(r"http api on http://127\.0\.0\.1:\d+\n", third), third
        async with connect(f"{match[1]}/v1/chat?bot_id={BOT}&authorization=Bearer%20{token}") as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


def test_add_arguments_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args([])
    assert (ns.host, ns.port, ns.bot, ns.token, ns.ping_interval) == (
        "127.0.0.1",
        0,
        "echo",
        None,
        15.0,
    )


async def test_serve_forever_writes_the_url_first_and_stops_on_cancel() -> None:
    lines: list[str] = []
    ready = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        ready.set()

    task = asyncio.create_task(serve_forever(port=0, token=TOKEN, bot="tone", out=out))
    await asyncio.wait_for(ready.wait(), TIMEOUT)
    assert lines[0].startswith("listening on ws://127.0.0.1:")
    assert lines[1:] == [lines[1]] and lines[1].startswith("http api on http://127.0.0.1:")
    url = lines[0].removeprefix("listening on ")
    async with connect(f"{url}/v1/chat?bot_id={BOT}&authorization=Bearer+{TOKEN}") as ws:
        assert (await recv_json(ws))["event_type"] == "chat.created"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
