"""The emulator's fault injection (:mod:`voicegw.emulator.faults`) seen by a real client."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import pytest
from helpers import MS
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from voicegw.emulator import Emulator
from voicegw.emulator.faults import FaultPlan, plan_for
from voicegw.emulator.server import add_arguments

TOKEN = "pat_fault-token"
BOT = "7496347519799787557"
TIMEOUT = 20_000 * MS
QUIET = 300 * MS


def chat_url(emu: Emulator) -> str:
    return f"{emu.url}/v1/chat?bot_id={BOT}&authorization=Bearer%20{TOKEN}"


async def recv_text(ws: ClientConnection) -> str:
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(frame, str)
    return frame


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await recv_text(ws))
    return event


async def recv_all(ws: ClientConnection) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    """Every event until the connection closes, and how it closed."""
    out = []
    while True:
        try:
            out.append(await recv_json(ws))
        except ConnectionClosed as exc:
            return out, exc


async def assert_alive(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"id": "alive", "event_type": "chat.update", "data": {}}))
    while (event := await recv_json(ws))["event_type"] != "chat.updated":
        pass
    assert event["id"] == "alive"


def text_message(text: str = "hello there") -> str:
    return json.dumps(
        {
            "event_type": "conversation.message.create",
            "data": {"role": "user", "content_type": "text", "content": text},
        }
    )


# ---------------------------------------------------------------- handshake refusals


@pytest.mark.parametrize(("status", "code"), [(401, 4100), (403, 4101), (429, 4013), (500, 5000)])
async def test_refuse_answers_the_upgrade_with_status_json_and_logid(
    status: int, code: int
) -> None:
    async with Emulator(token=TOKEN, faults=FaultPlan(refuse=status)) as emu:
        with pytest.raises(InvalidStatus) as info:
            await connect(chat_url(emu))
        assert list(emu.refused) == [(1, status)]
        assert not emu.connections
    response = info.value.response
    assert response.status_code == status
    logid = response.headers["X-Tt-Logid"]
    assert logid and response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert body["code"] == code and body["msg"] and body["detail"] == {"logid": logid}


# ---------------------------------------------------------------- silence and closes


async def test_silent_never_sends_chat_created_and_ignores_input() -> None:
    async with Emulator(token=TOKEN, faults=FaultPlan(silent=True)) as emu:
        async with connect(chat_url(emu)) as ws:
            await ws.send(text_message())
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), QUIET)
        record = emu.connections[0]
        await asyncio.wait_for(record.closed.wait(), TIMEOUT)
    assert list(record.sent_types) == [] and list(record.received_types) == []
    assert record.faults_injected == ["silent"]


async def test_close_at_closes_with_the_code_right_after_the_nth_event() -> None:
    async with Emulator(token=TOKEN, faults=FaultPlan.parse("close_at=2,close_code=4500")) as emu:
        async with connect(chat_url(emu)) as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"
            await ws.send("{oops")  # answered by an error 4000: the second event
            await ws.send("{oops")
            events, closed = await recv_all(ws)
        record = emu.connections[0]
        await asyncio.wait_for(record.closed.wait(), TIMEOUT)
    assert [e["event_type"] for e in events] == ["error"]
    assert closed.rcvd is not None and closed.rcvd.code == 4500
    assert record.close_code == 4500
    assert record.faults_injected == ["close_at=2:4500"]


async def test_close_at_abrupt_drops_tcp_without_a_close_frame() -> None:
    async with Emulator(token=TOKEN, faults=FaultPlan(close_at=1, abrupt=True)) as emu:
        async with connect(chat_url(emu)) as ws:
            events, closed = await recv_all(ws)
        record = emu.connections[0]
        await asyncio.wait_for(record.closed.wait(), TIMEOUT)
    assert [e["event_type"] for e in events] == ["chat.created"]
    assert isinstance(closed, ConnectionClosedError) and closed.rcvd is None
    assert record.faults_injected == ["close_at=1:abort"]


async def test_close_mid_reply_closes_after_the_first_audio_delta() -> None:
    async with (
        Emulator(token=TOKEN, bot="tone", faults=FaultPlan(close_mid_reply=True)) as emu,
        connect(chat_url(emu)) as ws,
    ):
        await ws.send(text_message())
        events, closed = await recv_all(ws)
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "chat.created" and "conversation.chat.created" in kinds
    assert kinds[-1] == "conversation.audio.delta" and kinds.count("conversation.audio.delta") == 1
    assert closed.rcvd is not None and closed.rcvd.code == 1011


# ---------------------------------------------------------------- bad frames


async def test_malformed_at_sends_a_non_json_frame_in_position() -> None:
    async with Emulator(token=TOKEN, faults=FaultPlan(malformed_at=2)) as emu:
        async with connect(chat_url(emu)) as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"
            with pytest.raises(json.JSONDecodeError):
                json.loads(await recv_text(ws))
            await assert_alive(ws)
        assert emu.connections[0].faults_injected == ["malformed_at@2"]


async def test_unknown_event_at_sends_a_future_event_type() -> None:
    async with (
        Emulator(token=TOKEN, faults=FaultPlan(unknown_event_at=1)) as emu,
        connect(chat_url(emu)) as ws,
    ):
        first = await recv_json(ws)
        assert (await recv_json(ws))["event_type"] == "chat.created"
        await assert_alive(ws)
    assert first["event_type"] == "x.future_event" and first["id"]
    assert first["detail"]["logid"]


async def test_wrong_type_at_sends_a_known_event_with_a_mistyped_field() -> None:
    async with (
        Emulator(token=TOKEN, faults=FaultPlan(wrong_type_at=2)) as emu,
        connect(chat_url(emu)) as ws,
    ):
        assert (await recv_json(ws))["event_type"] == "chat.created"
        event = await recv_json(ws)
        await assert_alive(ws)
    assert event["event_type"] == "conversation.chat.created"
    assert event["data"]["created_at"] == "soon" and event["data"]["bot_id"] == BOT


async def test_oversized_at_sends_one_frame_of_exactly_that_size() -> None:
    size = 2 * 1024 * 1024
    async with Emulator(token=TOKEN, faults=FaultPlan(oversized_at=2)) as emu:
        async with connect(chat_url(emu), max_size=None) as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"
            text = await recv_text(ws)
            await assert_alive(ws)
        async with connect(chat_url(emu)) as small:  # the client's default 1 MiB limit
            _, closed = await recv_all(small)
    assert len(text.encode()) == size
    assert json.loads(text)["event_type"] == "x.oversized_event"
    assert closed.sent is not None and closed.sent.code == 1009


async def test_error_at_sends_the_code_and_keeps_the_socket_open() -> None:
    async with Emulator(token=TOKEN, faults=FaultPlan.parse("error_at=2:4029")) as emu:
        async with connect(chat_url(emu)) as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"
            error = await recv_json(ws)
            await assert_alive(ws)
        assert emu.connections[0].faults_injected == ["error_at=4029@2"]
    assert error["event_type"] == "error" and error["data"]["code"] == 4029


@pytest.mark.parametrize("code", [4027, 4028])
async def test_billing_errors_are_followed_by_a_close(code: int) -> None:
    async with (
        Emulator(token=TOKEN, faults=FaultPlan(error_at=(1, code))) as emu,
        connect(chat_url(emu)) as ws,
    ):
        events, closed = await recv_all(ws)
    assert [(e["event_type"], e["data"]["code"]) for e in events] == [("error", code)]
    assert closed.rcvd is not None and closed.rcvd.code == 1011


# ---------------------------------------------------------------- slow and deaf peers


async def test_no_pong_makes_a_pinging_client_time_out_with_1011() -> None:
    async with Emulator(token=TOKEN, ping_interval=None, faults=FaultPlan(no_pong=True)) as emu:
        async with connect(chat_url(emu), ping_interval=50 * MS, ping_timeout=50 * MS) as ws:
            assert (await recv_json(ws))["event_type"] == "chat.created"
            _, closed = await recv_all(ws)
        assert emu.connections[0].faults_injected == ["no_pong"]
    assert closed.sent is not None
    assert (closed.sent.code, closed.sent.reason) == (1011, "keepalive ping timeout")


async def test_pongs_flow_without_the_fault() -> None:
    async with (
        Emulator(token=TOKEN, ping_interval=None) as emu,
        connect(chat_url(emu), ping_interval=None) as ws,
    ):
        assert (await recv_json(ws))["event_type"] == "chat.created"
        latency = await asyncio.wait_for(await ws.ping(), TIMEOUT)
    assert latency >= 0


async def test_stall_reads_delays_the_answer_to_input() -> None:
    stall = 200 * MS
    async with Emulator(token=TOKEN, faults=FaultPlan(stall_reads=stall)) as emu:
        async with connect(chat_url(emu)) as ws:
            sent_at = asyncio.get_running_loop().time()
            await assert_alive(ws)
            elapsed = asyncio.get_running_loop().time() - sent_at
        assert emu.connections[0].faults_injected == [f"stall_reads={stall}"]
    assert elapsed >= stall * 0.9


async def test_throttle_reads_paces_reading_to_the_rate() -> None:
    rate = 20_000
    padding = "x" * 4_000  # about 200 ms of reading at 20 kB/s
    async with (
        Emulator(token=TOKEN, faults=FaultPlan(throttle_reads=rate)) as emu,
        connect(chat_url(emu)) as ws,
    ):
        assert (await recv_json(ws))["event_type"] == "chat.created"
        started = asyncio.get_running_loop().time()
        await ws.send(json.dumps({"event_type": "x.pad", "data": {"p": padding}}))
        await assert_alive(ws)
        elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= 0.9 * len(padding) / rate


# ---------------------------------------------------------------- per-connection plans


@pytest.mark.parametrize(
    "faults",
    [
        lambda index: FaultPlan(close_at=1) if index == 2 else FaultPlan(),
        FaultPlan.parse("on=2,close_at=1"),
        [FaultPlan.parse("on=2,close_at=1"), FaultPlan(malformed_at=5)],
    ],
)
async def test_only_the_chosen_connection_is_faulted(faults: Any) -> None:
    async with Emulator(token=TOKEN, faults=faults) as emu:
        for index in (1, 2, 3):
            async with connect(chat_url(emu)) as ws:
                if index == 2:
                    events, closed = await recv_all(ws)
                    assert [e["event_type"] for e in events] == ["chat.created"]
                    assert closed.rcvd is not None and closed.rcvd.code == 1011
                else:
                    assert (await recv_json(ws))["event_type"] == "chat.created"
                    await assert_alive(ws)
        records = list(emu.connections)
    assert [r.index for r in records] == [1, 2, 3]
    assert [r.faults_injected for r in records] == [[], ["close_at=1:1011"], []]


# ---------------------------------------------------------------- parsing


def test_parse_builds_the_plan() -> None:
    plan = FaultPlan.parse(" close_at=12 , abrupt, no_pong=false,error_at=3:4028,on=1+3")
    assert plan == FaultPlan(close_at=12, abrupt=True, error_at=(3, 4028), on=frozenset({1, 3}))
    assert FaultPlan.parse("refuse=401").refuse == 401
    assert FaultPlan.parse("stall_reads=0.5,throttle_reads=100").stall_reads == 0.5
    assert FaultPlan.parse("oversized_at=1,oversized_bytes=4096").oversized_bytes == 4096
    assert FaultPlan().active is False and FaultPlan(on=frozenset({2})).active is False
    assert FaultPlan(silent=True).active


def test_plans_merge_in_order_for_their_connections() -> None:
    plans = [
        FaultPlan(close_at=3),
        FaultPlan(close_at=5, on=frozenset({2})),
        FaultPlan(abrupt=True),
    ]
    assert plan_for(1, plans) == FaultPlan(close_at=3, abrupt=True)
    assert plan_for(2, plans) == FaultPlan(close_at=5, abrupt=True)


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("", "empty fault spec"),
        ("close_at=x", "'close_at=x'"),
        ("close_at=0", "close_at=0"),
        ("bogus=1", "unknown fault 'bogus'"),
        ("bogus", "unknown fault 'bogus'"),
        ("close_at", "close_at needs a value"),
        ("refuse=418", "refuse=418"),
        ("error_at=2", "error_at takes N:CODE"),
        ("error_at=2:9999", "error_at=2:9999"),
        ("silent=maybe", "'silent=maybe'"),
        ("close_code=1006", "close_code=1006"),
        ("close_at=1,,silent", "empty item"),
        ("stall_reads=-1", "stall_reads=-1.0"),
    ],
)
def test_parse_errors_name_the_bad_part(spec: str, names: str) -> None:
    with pytest.raises(ValueError) as info:
        FaultPlan.parse(spec)
    assert names in str(info.value)


def test_cli_collects_repeated_faults_and_rejects_bad_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="voicegw emulator")
    add_arguments(parser)
    ns = parser.parse_args(["--fault", "close_at=3", "--fault", "on=2,silent"])
    assert ns.faults == [FaultPlan(close_at=3), FaultPlan(silent=True, on=frozenset({2}))]
    assert parser.parse_args([]).faults == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--fault", "close_at=soon"])
    err = capsys.readouterr().err
    assert "argument --fault" in err and "'close_at=soon'" in err
