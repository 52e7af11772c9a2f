"""The REST client against the emulator's HTTP API over real sockets (spec 3.2, 7.1)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from helpers import MS

from voicegw.config import CloudConfig
from voicegw.emulator import Emulator
from voicegw.errors import CloudError
from voicegw.io.rest import bind_device, create_room, post_json
from voicegw.realtime.rooms import CreateRoomRequest, RoomConfig, RoomTurnDetection

TOKEN = "pat_rest-token_123"
BOT = "7496347519799787557"
TIMEOUT = 10_000 * MS


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, bot="echo", seed=7) as e:
        yield e


def cloud_for(emu: Emulator) -> CloudConfig:
    return CloudConfig(url=emu.url, api_url=emu.api_url, bot_id=BOT, connect_timeout_s=TIMEOUT)


async def raw_post(url: str, body: Any, token: str = TOKEN) -> tuple[int, dict[str, Any], str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json(), resp.headers.get("X-Tt-Logid", "")


async def test_create_room_returns_the_room_and_remembers_it(emu: Emulator) -> None:
    req = CreateRoomRequest(
        bot_id=BOT,
        uid="user-1",
        config=RoomConfig(
            turn_detection=RoomTurnDetection(type="client_interrupt"), prologue_content="Hi."
        ),
    )
    room = await create_room(cloud_for(emu), TOKEN, req)
    assert room.room_id.startswith("room_")
    assert room.uid == "user-1"
    assert room.token and room.token != TOKEN
    assert room.app_id
    kept = emu.http.api.rooms[room.room_id]
    assert kept.setup.turn_type == "client_interrupt"
    assert kept.setup.prologue == "Hi."
    assert kept.setup.bot_id == BOT
    assert not kept.closed


async def test_create_room_defaults(emu: Emulator) -> None:
    room = await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id=BOT))
    setup = emu.http.api.rooms[room.room_id].setup
    assert room.uid.startswith("uid_")
    assert setup.turn_type == "server_vad"  # the RTC default (spec 3.2)
    assert setup.prologue_delay_ms == 500
    assert setup.conversation_id.isdigit()
    second = await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id=BOT))
    assert second.room_id != room.room_id


async def test_bad_token_is_4100_and_not_retryable(emu: Emulator) -> None:
    with pytest.raises(CloudError) as info:
        await create_room(cloud_for(emu), "wrong", CreateRoomRequest(bot_id=BOT))
    assert info.value.code == 4100
    assert info.value.retryable is False
    assert len(info.value.logid) == 53
    assert "wrong" not in str(info.value)
    status, body, logid = await raw_post(f"{emu.api_url}/v1/audio/rooms", {"bot_id": BOT}, "x")
    assert status == 401
    assert body["code"] == 4100 and body["msg"] == "authentication is invalid"
    assert body["detail"]["logid"] == logid


async def test_bind_with_bad_token_is_4100(emu: Emulator) -> None:
    with pytest.raises(CloudError) as info:
        await bind_device(cloud_for(emu), "nope", "7470849514748000000", "51237825")
    assert info.value.code == 4100
    assert emu.http.api.bound_devices("7470849514748000000") == set()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "bot_id"),
        ({"bot_id": 7}, "bot_id"),
        ({"bot_id": BOT, "config": {"prologue_delay_duration_ms": 9000}}, "prologue_delay"),
        ({"bot_id": BOT, "config": {"turn_detection": {"type": "shout"}}}, "turn_detection.type"),
        ({"bot_id": BOT, "config": {"audio_config": {"codec": "MP3"}}}, "audio_config.codec"),
        ({"bot_id": BOT, "uid": 5}, "uid"),
    ],
)
async def test_create_room_validation_names_the_field(
    emu: Emulator, body: dict[str, Any], field: str
) -> None:
    status, reply, logid = await raw_post(f"{emu.api_url}/v1/audio/rooms", body)
    assert status == 400
    assert reply["code"] == 4000
    assert field in reply["msg"]
    assert reply["detail"]["logid"] == logid
    assert not emu.http.api.rooms


async def test_invalid_json_body_is_4000(emu: Emulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emu.api_url}/v1/audio/rooms",
            data=b"{not json",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["code"] == 4000


async def test_unknown_bot_is_4200(emu: Emulator) -> None:
    with pytest.raises(CloudError) as info:
        await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id="not-a-bot"))
    assert info.value.code == 4200
    assert "not-a-bot" in str(info.value)


async def test_bind_device_registers_the_id(emu: Emulator) -> None:
    logid = await bind_device(
        cloud_for(emu), TOKEN, "7470849514748000000", "51237825", label="kitchen", user_id="u1"
    )
    assert len(logid) == 53
    await bind_device(cloud_for(emu), TOKEN, "7470849514748000000", "51237826")
    assert emu.http.api.bound_devices("7470849514748000000") == {"51237825", "51237826"}
    labels = emu.http.api.bound["7470849514748000000"]["device_id"]
    assert labels == {"51237825": "kitchen", "51237826": "51237826"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "configs"),
        ({"configs": []}, "configs"),
        ({"configs": [{"enums": [{"value": "1"}]}]}, "configs[0].key"),
        ({"configs": [{"key": "device_id"}]}, "configs[0].enums"),
        ({"configs": [{"key": "device_id", "enums": [{"label": "x"}]}]}, "enums[0].value"),
        ({"configs": [{"key": "device_id", "enums": [{"value": "1"}]}], "user_id": 3}, "user_id"),
    ],
)
async def test_bind_validation_names_the_field(
    emu: Emulator, body: dict[str, Any], field: str
) -> None:
    url = f"{emu.api_url}/v1/connectors/7470849514748000000/user_configs"
    status, reply, _ = await raw_post(url, body)
    assert status == 400
    assert reply["code"] == 4000
    assert field in reply["msg"]
    assert emu.http.api.bound == {}


async def test_bind_rejects_a_non_numeric_connector(emu: Emulator) -> None:
    with pytest.raises(CloudError) as info:
        await bind_device(cloud_for(emu), TOKEN, "my-channel", "51237825")
    assert info.value.code == 4000
    assert "connector_id" in str(info.value)
    with pytest.raises(ValueError, match="device_id"):
        await bind_device(cloud_for(emu), TOKEN, "7470849514748000000", "")


async def test_http_status_without_envelope_maps_to_a_code(emu: Emulator) -> None:
    with pytest.raises(CloudError) as info:
        await post_json(f"{emu.api_url}/v1/nowhere", TOKEN, {}, timeout=TIMEOUT, what="probe")
    assert info.value.code == 4200  # aiohttp's plain 404
    assert info.value.retryable is False


async def test_unreachable_service_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cloud = CloudConfig(api_url=f"http://127.0.0.1:{port}", bot_id=BOT, connect_timeout_s=TIMEOUT)
    with pytest.raises(CloudError) as info:
        await create_room(cloud, TOKEN, CreateRoomRequest(bot_id=BOT))
    assert info.value.code is None
    assert info.value.retryable is True


def _free_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no two consecutive free ports")


async def test_http_port_defaults_to_ws_port_plus_one() -> None:
    port = _free_pair()
    async with Emulator(port=port, token=TOKEN) as emu:
        assert emu.api_url == f"http://127.0.0.1:{port + 1}"
        # the URL CloudConfig derives from the WebSocket URL reaches the same API
        derived = CloudConfig(url=emu.url, bot_id=BOT, connect_timeout_s=TIMEOUT)
        room = await create_room(derived, TOKEN, CreateRoomRequest(bot_id=BOT))
        assert room.room_id in emu.http.api.rooms


async def test_explicit_http_port_zero_picks_a_free_port() -> None:
    async with Emulator(token=TOKEN, http_port=0) as emu:
        assert emu.http.port not in (0, emu.port)


async def test_the_token_is_never_posted_over_plain_http_to_a_remote_host() -> None:
    from voicegw.io.rest import post_json

    # 192.0.2.0/24 is TEST-NET-1: nothing is listening; the refusal comes before any I/O.
    with pytest.raises(CloudError) as info:
        await post_json("http://192.0.2.1/v1/audio/rooms", TOKEN, {}, timeout=1.0, what="x")
    assert not info.value.retryable and "plain http://" in str(info.value)
