"""The control socket over a real Unix socket: commands, errors, limits, subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MS

from voicegw.errors import ConfigError, LocalProtocolError
from voicegw.io.control import ControlServer

TIMEOUT = 2000 * MS


class FakeHandler:
    """Records what the socket asked for; ``press`` is a coroutine, the rest plain methods."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.talking = False
        self.muted = False
        self.volume = 1.0

    async def press(self) -> None:
        if self.talking:
            raise LocalProtocolError("press() while already LISTENING: release() first")
        await asyncio.sleep(0)
        self.talking = True
        self.calls.append(("press",))

    def release(self) -> None:
        self.talking = False
        self.calls.append(("release",))

    def cancel(self) -> None:
        self.calls.append(("cancel",))

    def set_mute(self, on: bool) -> None:
        self.muted = on
        self.calls.append(("mute", on))

    def set_volume(self, level: float) -> None:
        self.volume = level
        self.calls.append(("volume", level))

    def state(self) -> dict[str, Any]:
        return {"talking": self.talking, "muted": self.muted, "volume": self.volume}


class SpeakingHandler(FakeHandler):
    async def say(self, text: str) -> None:
        self.calls.append(("say", text))


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        assert raw.endswith(b"\n"), f"connection ended instead: {raw!r}"
        reply: dict[str, Any] = json.loads(raw)
        return reply

    async def ask(self, request: dict[str, Any] | str) -> dict[str, Any]:
        text = request if isinstance(request, str) else json.dumps(request)
        await self.send_raw(text.encode() + b"\n")
        return await self.line()

    async def at_eof(self) -> bool:
        try:
            rest = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        except ConnectionResetError:
            return True
        return rest == b"" or self.reader.at_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "ctl.sock"


@pytest.fixture
async def server(sock_path: Path) -> AsyncIterator[ControlServer]:
    async with ControlServer(SpeakingHandler(), sock_path) as srv:
        yield srv


async def connect(path: Path) -> Client:
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), TIMEOUT)
    return Client(reader, writer)


@pytest.fixture
async def client(server: ControlServer) -> AsyncIterator[Client]:
    c = await connect(server.path)
    yield c
    await c.close()


# ---------------------------------------------------------------- commands


async def test_commands_reach_the_handler(server: ControlServer, client: Client) -> None:
    handler = server.handler
    assert isinstance(handler, SpeakingHandler)
    assert await client.ask({"cmd": "press"}) == {"ok": True}
    assert await client.ask({"cmd": "release"}) == {"ok": True}
    assert await client.ask({"cmd": "cancel"}) == {"ok": True}
    assert await client.ask({"cmd": "mute", "on": True}) == {"ok": True, "mute": True}
    assert await client.ask({"cmd": "volume", "level": 0.25}) == {"ok": True, "volume": 0.25}
    assert await client.ask({"cmd": "volume", "level": 1}) == {"ok": True, "volume": 1.0}
    assert await client.ask({"cmd": "say", "text": "hello"}) == {"ok": True}
    assert handler.calls == [
        ("press",),
        ("release",),
        ("cancel",),
        ("mute", True),
        ("volume", 0.25),
        ("volume", 1.0),
        ("say", "hello"),
    ]
    assert await client.ask({"cmd": "state"}) == {
        "ok": True,
        "state": {"talking": False, "muted": True, "volume": 1.0},
    }
    assert server.stats.requests == 8 and server.stats.errors == 0


async def test_request_ids_are_echoed(client: Client) -> None:
    assert await client.ask({"cmd": "cancel", "id": 7}) == {"ok": True, "id": 7}
    reply = await client.ask({"cmd": "nope", "id": "abc"})
    assert reply["ok"] is False and reply["id"] == "abc"


async def test_requests_pipelined_in_one_write_are_answered_in_order(client: Client) -> None:
    await client.send_raw(
        b'{"cmd":"press","id":1}\n\n{"cmd":"press","id":2}\n{"cmd":"release","id":3}\n'
    )
    first, second, third = await client.line(), await client.line(), await client.line()
    assert first == {"ok": True, "id": 1}
    assert second["ok"] is False and "already LISTENING" in second["error"]
    assert third == {"ok": True, "id": 3}


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('"press"', "JSON object"),
        ('{"command": "press"}', 'missing "cmd"'),
        ('{"cmd": 5}', 'missing "cmd"'),
        ('{"cmd": "dance"}', "unknown command 'dance'; known: cancel, mute, press"),
        ('{"cmd": "mute"}', '"on" must be true or false'),
        ('{"cmd": "mute", "on": 1}', '"on" must be true or false'),
        ('{"cmd": "volume", "level": 1.5}', '"level" must be a number from 0.0 to 1.0'),
        ('{"cmd": "volume", "level": "loud"}', '"level" must be a number'),
        ('{"cmd": "volume", "level": true}', '"level" must be a number'),
        ('{"cmd": "volume", "level": NaN}', '"level" must be a number'),
        ('{"cmd": "say", "text": ""}', '"text" must be a non-empty string'),
    ],
)
async def test_bad_requests_get_errors_and_the_connection_survives(
    server: ControlServer, client: Client, line: str, error: str
) -> None:
    reply = await client.ask(line)
    assert reply["ok"] is False
    assert error in reply["error"]
    assert server.handler.calls == []  # type: ignore[attr-defined]
    assert (await client.ask({"cmd": "state"}))["ok"] is True
    assert server.stats.errors == 1


async def test_invalid_utf8_is_a_malformed_line(client: Client) -> None:
    await client.send_raw(b'{"cmd": "\xff"}\n')
    reply = await client.line()
    assert reply["ok"] is False and "malformed JSON" in reply["error"]
    assert (await client.ask({"cmd": "state"}))["ok"] is True


async def test_handler_errors_become_error_responses(client: Client) -> None:
    assert await client.ask({"cmd": "press"}) == {"ok": True}
    reply = await client.ask({"cmd": "press"})
    assert reply == {"ok": False, "error": "press() while already LISTENING: release() first"}
    assert await client.ask({"cmd": "release"}) == {"ok": True}


async def test_say_without_support_is_an_error(sock_path: Path) -> None:
    async with ControlServer(FakeHandler(), sock_path) as srv:
        c = await connect(srv.path)
        reply = await c.ask({"cmd": "say", "text": "hi"})
        assert reply == {"ok": False, "error": "say is not supported by this gateway"}
        await c.close()


async def test_an_oversized_line_gets_one_error_and_is_discarded(sock_path: Path) -> None:
    async with ControlServer(FakeHandler(), sock_path, max_line=1024) as srv:
        c = await connect(srv.path)
        # Sent in pieces, so the limit is crossed in the middle of a read.
        for _ in range(10):
            await c.send_raw(b'{"cmd": "press", "pad": "' + b"x" * 500)
        await c.send_raw(b'"}\n{"cmd": "state"}\n')
        reply = await c.line()
        assert reply["ok"] is False and "longer than 1024 bytes" in reply["error"]
        assert (await c.line())["ok"] is True
        assert srv.handler.calls == []  # type: ignore[attr-defined]
        # A line exactly at the limit is fine; one byte more is not.
        exact = json.dumps({"cmd": "cancel", "pad": ""}).encode()
        exact = exact[:-2] + b"y" * (1024 - len(exact)) + b'"}'
        assert len(exact) == 1024
        await c.send_raw(exact + b"\n")
        assert await c.line() == {"ok": True}
        await c.send_raw(exact[:-2] + b'y"}\n')
        assert (await c.line())["ok"] is False
        await c.close()


async def test_the_default_line_limit_is_64_kib(client: Client) -> None:
    await client.send_raw(b"[" + b"1," * 40_000 + b"1]\n")
    reply = await client.line()
    assert reply["ok"] is False and "65536" in reply["error"]


async def test_a_last_line_without_newline_is_answered_before_closing(
    server: ControlServer,
) -> None:
    c = await connect(server.path)
    await c.send_raw(b'{"cmd": "press"}\n{"cmd": "release"}')
    c.writer.write_eof()
    assert await c.line() == {"ok": True}
    assert await c.line() == {"ok": True}
    assert await c.at_eof()
    await c.close()


# ---------------------------------------------------------------- subscriptions


async def test_subscribers_get_the_state_now_and_on_every_publish(server: ControlServer) -> None:
    led = await connect(server.path)
    other = await connect(server.path)
    assert await led.ask({"cmd": "subscribe", "id": 1}) == {
        "ok": True,
        "subscribed": True,
        "id": 1,
    }
    assert await led.line() == {
        "event": "state",
        "state": {"talking": False, "muted": False, "volume": 1.0},
    }
    assert await other.ask({"cmd": "state"}) == {
        "ok": True,
        "state": {"talking": False, "muted": False, "volume": 1.0},
    }
    server.publish({"talking": True})
    server.publish({"talking": False, "reply": "playing"})
    assert await led.line() == {"event": "state", "state": {"talking": True}}
    assert await led.line() == {"event": "state", "state": {"talking": False, "reply": "playing"}}
    # The other client got nothing: its next line is the answer to its next request.
    assert await other.ask({"cmd": "cancel"}) == {"ok": True}
    assert await led.ask({"cmd": "unsubscribe"}) == {"ok": True, "subscribed": False}
    server.publish({"talking": True})
    assert await led.ask({"cmd": "cancel"}) == {"ok": True}
    assert server.stats.published == 3
    await led.close()
    await other.close()


async def test_a_subscriber_that_does_not_read_is_dropped(sock_path: Path) -> None:
    async with ControlServer(FakeHandler(), sock_path, queue_size=4) as srv:
        slow = await connect(srv.path)
        assert await slow.ask({"cmd": "subscribe"}) == {"ok": True, "subscribed": True}
        for i in range(10):
            srv.publish({"n": i})
        assert srv.stats.dropped == 1
        assert await slow.at_eof()
        await slow.close()
        # Everybody else is unaffected.
        fine = await connect(srv.path)
        assert (await fine.ask({"cmd": "state"}))["ok"] is True
        srv.publish({"n": 99})
        assert srv.stats.dropped == 1
        await fine.close()


def test_publishing_what_json_cannot_hold_raises(server: ControlServer) -> None:
    with pytest.raises(TypeError):
        server.publish({"when": object()})


# ---------------------------------------------------------------- limits and the socket file


async def test_clients_beyond_the_limit_are_told_and_closed(sock_path: Path) -> None:
    async with ControlServer(FakeHandler(), sock_path, max_clients=2) as srv:
        first, second = await connect(srv.path), await connect(srv.path)
        assert (await first.ask({"cmd": "state"}))["ok"] is True
        assert (await second.ask({"cmd": "state"}))["ok"] is True
        assert srv.clients == 2
        third = await connect(srv.path)
        assert await third.line() == {
            "ok": False,
            "error": "too many control clients (at most 2)",
        }
        assert await third.at_eof()
        assert srv.stats.rejected == 1
        await third.close()
        await first.close()
        await second.close()


async def test_socket_file_has_mode_0660_and_is_removed_on_close(sock_path: Path) -> None:
    srv = ControlServer(FakeHandler(), sock_path)
    await srv.start()
    st = os.stat(sock_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert [p.name for p in sock_path.parent.iterdir()] == ["ctl.sock"]  # no temporary left
    c = await connect(sock_path)
    assert (await c.ask({"cmd": "state"}))["ok"] is True
    await srv.close()
    assert not sock_path.exists()
    assert await c.at_eof()
    await c.close()
    await srv.close()
    # A closed server can start again.
    await srv.start()
    c = await connect(sock_path)
    assert (await c.ask({"cmd": "state"}))["ok"] is True
    await c.close()
    await srv.close()
    assert not sock_path.exists()


async def test_a_custom_mode_is_applied(sock_path: Path) -> None:
    async with ControlServer(FakeHandler(), sock_path, mode=0o600):
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600


async def test_a_stale_socket_file_is_replaced(sock_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()  # the file stays, nobody listens
    async with ControlServer(FakeHandler(), sock_path) as srv:
        c = await connect(srv.path)
        assert (await c.ask({"cmd": "state"}))["ok"] is True
        await c.close()


async def test_a_live_socket_is_not_taken_over(server: ControlServer) -> None:
    with pytest.raises(ConfigError, match="another process is listening"):
        await ControlServer(FakeHandler(), server.path).start()
    c = await connect(server.path)
    assert (await c.ask({"cmd": "state"}))["ok"] is True
    await c.close()


async def test_a_regular_file_is_never_replaced(sock_path: Path) -> None:
    sock_path.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        await ControlServer(FakeHandler(), sock_path).start()
    assert sock_path.read_text() == "keep me"


async def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create the control socket") as info:
        await ControlServer(FakeHandler(), tmp_path / "absent" / "ctl.sock").start()
    assert info.value.key == "control.path"


@pytest.mark.parametrize(
    "kwargs", [{"max_clients": 0}, {"max_line": -1}, {"queue_size": True}, {"mode": 0o1777}]
)
def test_bad_limits_are_config_errors(sock_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        ControlServer(FakeHandler(), sock_path, **kwargs)
