"""Fuzz a running Gateway with hostile server frames over a real loopback WebSocket.

One websockets server on 127.0.0.1 serves every example (it lives on one event loop, an
``asyncio.Runner`` kept for the whole module; each example is one ``runner.run``). For each
connection the server plays a faithful ``/v1/chat`` service (``chat.created``, then
``chat.updated`` echoing the device's ``chat.update``), except that it slips in the example's
hostile frames: valid events with fields mutated to wrong types or out of range, truncated
JSON, random text, huge numbers, unknown events and binary frames. It then sends a marker
event, and the device's microphone starts speaking only once the gateway has read the marker,
so every hostile frame has been through the gateway before the turn. The turn itself is
answered normally (``conversation.chat.created``, audio deltas, ``audio.completed``,
``chat.completed``).

What must hold, whatever the frames:

* nothing escapes ``Gateway.run()`` but :class:`CloudError` from a service ``error`` event
  the protocol calls fatal (the typed path the daemon reconnects on); malformed frames are
  logged and ignored;
* otherwise the normal turn completes after the hostile frames, and its reply is played;
* the playout buffer never holds more than ``audio.playback_max_s``, even when the hostile
  frames are a flood of audio.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from voicegw.config import AudioConfig, CloudConfig, Config, InputConfig, OutputConfig, TurnConfig
from voicegw.errors import CloudError
from voicegw.gateway import Gateway, RunReport
from voicegw.protocol.states import FATAL_ERROR_CODES

RATE = 16000
PLAYBACK_MAX_S = 1.0
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MARKER = "x.fuzz.marker"
_ids = itertools.count(1)


# ---------------------------------------------------------------- frames


def _frame(event_type: str, data: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"event_type": event_type, "id": f"srv-{next(_ids)}"}
    if data is not None:
        obj["data"] = data
    obj["detail"] = {"logid": "02fuzz", "respond_at": "1752474748918"}
    return obj


def _text(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _chat(event_type: str, chat_id: str) -> dict[str, Any]:
    return _frame(
        event_type,
        {
            "id": chat_id,
            "conversation_id": "7526821722323025972",
            "bot_id": "7000000000000000001",
            "created_at": 1752474749,
            "status": event_type.rsplit(".", 1)[1],
            "usage": {"token_count": 0, "output_count": 0, "input_count": 0},
        },
    )


def _message(event_type: str, chat_id: str, **fields: Any) -> dict[str, Any]:
    data = {
        "id": f"msg-{chat_id}",
        "conversation_id": "7526821722323025972",
        "bot_id": "7000000000000000001",
        "role": "assistant",
        "type": "answer",
        "content": "",
        "content_type": "text",
        "chat_id": chat_id,
    }
    data.update(fields)
    return _frame(event_type, data)


def _delta(chat_id: str, samples: int = 320) -> dict[str, Any]:
    pcm = (np.arange(samples) % 200 * 50).astype("<i2").tobytes()
    content = base64.b64encode(pcm).decode()
    return _message("conversation.audio.delta", chat_id, content=content, content_type="audio")


#: Valid server events the mutations start from (the session accepts each of them).
TEMPLATES: list[dict[str, Any]] = [
    _frame("chat.created"),
    _frame("input_audio_buffer.completed"),
    _frame("input_audio_buffer.cleared"),
    _frame("conversation.cleared"),
    _frame("input_audio_buffer.speech_started"),
    _frame("input_audio_buffer.speech_stopped"),
    _frame("conversation.audio_transcript.update", {"content": "今天"}),
    _frame("conversation.audio_transcript.completed", {"content": "今天天气"}),
    _frame("conversation.audio.sentence_start", {"text": "好的。"}),
    _frame("conversation.chat.canceled", {"code": 3, "msg": "canceled"}),
    _frame("error", {"code": 4000, "msg": "bad request"}),
    _chat("conversation.chat.created", "fz1"),
    _chat("conversation.chat.in_progress", "fz1"),
    _chat("conversation.chat.completed", "fz1"),
    _chat("conversation.chat.failed", "fz1"),
    _message("conversation.message.delta", "fz1", content="好"),
    _message("conversation.message.completed", "fz1", content="好的"),
    _delta("fz1"),
    _message("conversation.audio.completed", "fz1", content_type="audio"),
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=False),
    st.just(-(2**63)),
    st.just(1e308),
    st.text(max_size=20),
    st.sampled_from(["", "AAAA", "%%%", "conversation.chat.created", "fz1", "pcm", "opus"]),
)
_json = st.recursive(
    _scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c, max_size=3)
    ),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        copy = dict(obj)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(obj[head], rest, value, delete)
        return copy
    copy_list = list(obj)
    copy_list[head] = _replace(obj[head], rest, value, delete)
    return copy_list


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid event with one field replaced by an arbitrary value, or deleted."""
    template = draw(st.sampled_from(TEMPLATES))
    path = draw(st.sampled_from(_paths(template)[1:]))
    return _text(_replace(template, path, draw(_json), draw(st.booleans())))


@st.composite
def truncated(draw: st.DrawFn) -> str:
    text = _text(draw(st.sampled_from(TEMPLATES)))
    return text[: draw(st.integers(0, len(text) - 1))]


@st.composite
def huge_number(draw: st.DrawFn) -> str:
    """A number no int64/double holds, written into a numeric field as raw JSON."""
    digits = draw(st.integers(20, 5000))
    literal = draw(st.sampled_from(["9" * digits, "-" + "9" * digits, f"1e{digits}"]))
    template = draw(st.sampled_from([_chat("conversation.chat.created", "fz1"), TEMPLATES[9]]))
    key = "created_at" if "created_at" in template["data"] else "code"
    return _text(template).replace(json.dumps(template["data"][key]), literal, 1)


@st.composite
def unknown_event(draw: st.DrawFn) -> str:
    name = draw(st.text(min_size=1, max_size=30).filter(lambda s: s != MARKER))
    return _text(_frame(name, draw(_json)))


HOSTILE = st.one_of(
    mutated(),
    truncated(),
    huge_number(),
    unknown_event(),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.builds(lambda t: _text(t).encode(), st.sampled_from(TEMPLATES)),
    st.builds(lambda t: _text(t), st.sampled_from(TEMPLATES)),
)


# ---------------------------------------------------------------- the hostile service


@dataclass
class Script:
    before_ready: list[str | bytes] = field(default_factory=list)
    after_ready: list[str | bytes] = field(default_factory=list)


class HostileService:
    """A ``/v1/chat`` look-alike that sends each connection's script, then one normal turn."""

    def __init__(self) -> None:
        self.script = Script()
        self.server: Server | None = None
        self.cancels = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = next(iter(self.server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    async def handle(self, ws: ServerConnection) -> None:
        script = self.script
        try:
            await ws.send(_text(_frame("chat.created")))
            update = json.loads(await ws.recv())
            assert update["event_type"] == "chat.update", update
            for hostile in script.before_ready:
                await ws.send(hostile)
            await ws.send(_text(_frame("chat.updated", update.get("data", {}))))
            for hostile in script.after_ready:
                await ws.send(hostile)
            await ws.send(_text(_frame(MARKER)))
            async for message in ws:
                event = json.loads(message)
                kind = event["event_type"]
                if kind == "conversation.chat.cancel":
                    self.cancels += 1
                    await ws.send(_text(_frame("conversation.chat.canceled", {"code": 0})))
                elif kind == "input_audio_buffer.complete":
                    await self._reply(ws)
        except ConnectionClosed:
            pass

    async def _reply(self, ws: ServerConnection) -> None:
        chat = f"reply-{next(_ids)}"
        await ws.send(_text(_frame("input_audio_buffer.completed")))
        await ws.send(_text(_chat("conversation.chat.created", chat)))
        await ws.send(_text(_chat("conversation.chat.in_progress", chat)))
        for _ in range(10):
            await ws.send(_text(_delta(chat, 480)))
        await ws.send(_text(_message("conversation.audio.completed", chat, content_type="audio")))
        await ws.send(_text(_message("conversation.message.completed", chat, content="ok")))
        await ws.send(_text(_chat("conversation.chat.completed", chat)))


@dataclass
class Arena:
    runner: asyncio.Runner
    service: HostileService


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    runner = asyncio.Runner()
    service = HostileService()

    async def start() -> Server:
        return await serve(service.handle, "127.0.0.1", 0, compression=None, max_size=None)

    service.server = runner.run(start())
    try:
        yield Arena(runner, service)
    finally:

        async def stop() -> None:
            assert service.server is not None
            service.server.close()
            await service.server.wait_closed()

        runner.run(stop())
        runner.close()


# ---------------------------------------------------------------- the device side


class MarkerMic:
    """Speaks 0.5 s of tone once the gateway has read the marker frame, then ends."""

    rate = RATE
    channels = 1

    def __init__(self) -> None:
        self.marker = asyncio.Event()

    def observe(self, direction: str, text: str) -> None:
        if direction == "<" and MARKER in text:
            self.marker.set()

    async def frames(self) -> AsyncIterator[np.ndarray]:
        await self.marker.wait()
        tone = (np.sin(np.arange(RATE // 50) * 2 * np.pi * 300 / RATE) * 6000).astype(np.int16)
        for _ in range(25):
            yield tone


class CountingSink:
    """A speaker that counts samples; with ``queued_ms`` the gateway plays it in real time."""

    rate = RATE

    def __init__(self) -> None:
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        self.samples += len(samples)


class PacedSink(CountingSink):
    queued_ms = 0.0


def config(url: str) -> Config:
    return Config(
        cloud=CloudConfig(url=url, bot_id="7000000000000000001", connect_timeout_s=5.0),
        turn=TurnConfig(mode="ptt"),
        input=InputConfig(codec="pcm", sample_rate=RATE, frame_ms=20),
        output=OutputConfig(codec="pcm", sample_rate=RATE),
        audio=AudioConfig(realtime=False, playback_prefill_ms=0, playback_max_s=PLAYBACK_MAX_S),
    )


@dataclass
class Outcome:
    report: RunReport | None
    error: CloudError | None
    played: int
    max_queued: int


def run_once(arena: Arena, script: Script, *, paced: bool = False) -> Outcome:
    arena.service.script = script
    mic, sink = MarkerMic(), (PacedSink() if paced else CountingSink())
    seen: list[int] = []
    gw: Gateway | None = None

    def observe(direction: str, text: str) -> None:
        mic.observe(direction, text)
        if gw is not None:
            seen.append(gw.player.buffer.queued)

    async def go() -> Outcome:
        nonlocal gw
        gw = Gateway(
            config(arena.service.url),
            "tok-fuzz",
            source=mic,
            sink=sink,
            observer=observe,
            reply_timeout_s=5.0,
        )
        try:
            async with asyncio.timeout(20.0):
                report = await gw.run()
        except CloudError as exc:
            return Outcome(None, exc, sink.samples, max(seen, default=0))
        seen.append(gw.player.buffer.queued)
        return Outcome(report, None, sink.samples, max(seen, default=0))

    return arena.runner.run(go())


def check(outcome: Outcome, script: Script) -> None:
    bound = round(PLAYBACK_MAX_S * RATE)
    assert outcome.max_queued <= bound
    if outcome.error is not None:
        # Only the typed path: a service error event the protocol calls fatal, or any error
        # event before the session was configured.
        code = outcome.error.code
        assert code is not None and str(outcome.error).startswith("service error"), outcome.error
        assert code in FATAL_ERROR_CODES or script.before_ready, outcome.error
        return
    assert outcome.report is not None
    turns = outcome.report.turns
    assert turns and turns[-1].status == "completed", turns
    assert outcome.played >= 10 * 480  # the reply was played


# ---------------------------------------------------------------- the targets


def test_a_clean_script_completes_a_turn(arena: Arena) -> None:
    outcome = run_once(arena, Script())
    check(outcome, Script())
    assert outcome.error is None


@FUZZ
@given(frames=st.lists(HOSTILE, min_size=1, max_size=8))
def test_hostile_frames_after_configuration_leave_the_gateway_working(
    arena: Arena, frames: list[str | bytes]
) -> None:
    script = Script(after_ready=frames)
    check(run_once(arena, script), script)


@FUZZ
@given(frames=st.lists(HOSTILE, min_size=1, max_size=5))
def test_hostile_frames_during_configuration_fail_only_the_typed_way(
    arena: Arena, frames: list[str | bytes]
) -> None:
    script = Script(before_ready=frames)
    check(run_once(arena, script), script)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(60, 300), samples=st.sampled_from([320, 4800, 16000]))
def test_a_flood_of_unrequested_audio_stays_within_the_playout_bound(
    arena: Arena, count: int, samples: int
) -> None:
    flood: list[str | bytes] = [_text(_delta("flood", samples))] * count
    script = Script(after_ready=flood)
    # A speaker with a clock drains 20 ms per period, so the flood piles up in the buffer.
    outcome = run_once(arena, script, paced=True)
    check(outcome, script)
    bound = round(PLAYBACK_MAX_S * RATE)
    if count * samples >= 2 * bound:
        assert outcome.max_queued >= bound // 2  # the bound was really reached for
