"""AiortcTransport against the running emulator over real WebRTC on loopback (spec 3.1-3.7).

Everything here is real: HTTP create-room and signalling, ICE/DTLS/SCTP on 127.0.0.1, Opus
both ways, the agent's JSON events on the data channel. Waits are on conditions with
timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from helpers import MS
from numpy.typing import NDArray

from voicegw.config import CloudConfig
from voicegw.emulator import Emulator
from voicegw.emulator.room import EmulatorRoom
from voicegw.errors import CloudError
from voicegw.io.rest import create_room
from voicegw.io.webrtc import AiortcTransport, FrameQueue
from voicegw.protocol.wire import encode
from voicegw.realtime.events import (
    ConversationChatCancel,
    InputAudioBufferComplete,
    InputAudioBufferStart,
    SessionUpdate,
    decode_realtime_server,
)
from voicegw.realtime.objects import SessionUpdateData
from voicegw.realtime.rooms import CreateRoomRequest, RoomConfig, RoomInfo, RoomTurnDetection
from voicegw.realtime.transport import TransportStats

TOKEN = "pat_rtc-token_123"
BOT = "7496347519799787557"
TIMEOUT = 20_000 * MS
RATE = 48000


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> NDArray[np.int16]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


class Peer:
    """A joined transport with background readers of its events and audio."""

    def __init__(self, transport: AiortcTransport, room: RoomInfo) -> None:
        self.t = transport
        self.room = room
        self.events: list[dict[str, Any]] = []
        self.loud_samples = 0
        self.audio_samples = 0
        self.ended = asyncio.Event()
        self._changed = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._listen())]

    async def _read(self) -> None:
        async for text in self.t.messages():
            decode_realtime_server(text)  # every event the agent sends is valid Realtime
            async with self._changed:
                self.events.append(json.loads(text))
                self._changed.notify_all()
        async with self._changed:
            self.ended.set()
            self._changed.notify_all()

    async def _listen(self) -> None:
        async for pcm in self.t.audio():
            async with self._changed:
                self.audio_samples += pcm.size
                if pcm.size and np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000:
                    self.loud_samples += pcm.size
                self._changed.notify_all()

    async def until(self, pred: Callable[[], bool]) -> None:
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(pred), TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"timed out; events so far: {self.types()}; {self.t.stats}"
            ) from None

    async def event(self, kind: str, count: int = 1) -> dict[str, Any]:
        await self.until(lambda: len(self.of(kind)) >= count)
        return self.of(kind)[count - 1]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == kind]

    def types(self) -> list[str]:
        return [e["event_type"] for e in self.events]

    def send(self, event: Any) -> None:
        self.t.send_message(encode(event))

    async def close(self) -> None:
        await self.t.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def until(pred: Callable[[], bool]) -> None:
    """Poll a condition owned by another component (the emulator's counters)."""
    async with asyncio.timeout(TIMEOUT):
        while not pred():
            await asyncio.sleep(0.01)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, bot="echo", seed=3) as e:
        yield e


def cloud_for(emu: Emulator) -> CloudConfig:
    return CloudConfig(url=emu.url, api_url=emu.api_url, bot_id=BOT, connect_timeout_s=TIMEOUT)


async def join(emu: Emulator, config: RoomConfig | None = None, **kw: Any) -> Peer:
    room = await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id=BOT, config=config))
    transport = AiortcTransport(**kw)
    await transport.join(room, cloud_for(emu), BOT)
    await transport.wait_agent(TIMEOUT)
    return Peer(transport, room)


def emu_room(emu: Emulator, peer: Peer) -> EmulatorRoom:
    room = emu.http.api.rooms[peer.room.room_id]
    assert isinstance(room, EmulatorRoom)
    return room


async def configure(peer: Peer, **fields: Any) -> None:
    await peer.event("session.created")
    peer.send(SessionUpdate(config=SessionUpdateData(**fields)))
    await peer.event("conversation.created")


async def test_join_sequence_over_the_data_channel(emu: Emulator) -> None:
    peer = await join(emu, RoomConfig(prologue_content="Hello there."))
    try:
        created = await peer.event("session.created")
        assert created["data"]["log_id"]
        peer.send(SessionUpdate(id="upd-1", config=SessionUpdateData(speech_rate=10)))
        updated = await peer.event("session.updated")
        assert updated["id"] == "upd-1"
        assert updated["data"]["speech_rate"] == 10
        conv = await peer.event("conversation.created")
        assert conv["data"]["prologue"] == "Hello there."
        assert conv["data"]["conversation_id"].isdigit()
        assert peer.types()[:3] == ["session.created", "session.updated", "conversation.created"]
        # the prologue is spoken: agent audio arrives over the Opus track
        await peer.event("audio.agent.speech_stopped")
        await peer.until(lambda: peer.loud_samples >= RATE // 10)
        assert peer.t.stats.frames_received > 0
        assert peer.t.stats.messages_sent == 1
    finally:
        await peer.close()


async def test_free_talk_turn_audio_both_ways(emu: Emulator) -> None:
    peer = await join(emu, max_queue_ms=3000)
    try:
        await configure(peer)
        peer.t.send_audio(tone(1.0))
        await peer.event("audio.user.speech_started")
        await peer.event("audio.user.speech_stopped")
        await peer.event("audio.agent.speech_stopped")
        types = peer.types()
        order = [
            "audio.user.speech_started",
            "audio.user.speech_stopped",
            "conversation.message.completed",
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "conversation.message.delta",
            "audio.agent.speech_started",
            "conversation.chat.completed",
            "audio.agent.speech_stopped",
        ]
        positions = [types.index(k) for k in order]
        assert positions == sorted(positions), types
        user = peer.of("conversation.message.completed")[0]["data"]
        assert user["role"] == "user" and "s of speech" in user["content"]
        # the echo bot plays the user's tone back: most of a second of loud audio
        await peer.until(lambda: peer.loud_samples >= RATE // 2)
        room = emu_room(emu, peer)
        assert room.stats.frames_received > 50
        assert peer.t.stats.frames_sent == 50 and peer.t.stats.frames_dropped == 0
    finally:
        await peer.close()


async def test_ptt_turn_with_realtime_events(emu: Emulator) -> None:
    peer = await join(
        emu,
        RoomConfig(turn_detection=RoomTurnDetection(type="client_interrupt")),
        max_queue_ms=3000,
    )
    room = emu_room(emu, peer)
    try:
        await configure(peer)
        peer.send(InputAudioBufferStart())
        peer.send(InputAudioBufferStart())  # duplicate: ignored
        await peer.event("input_audio_buffer.started")
        peer.t.send_audio(tone(0.8))
        await until(lambda: len(peer.t.outbound) == 0)
        # the last tone frame has left; let 300 ms more arrive so it is past the jitter buffer
        seen = room.stats.frames_received
        await until(lambda: room.stats.frames_received >= seen + 15)
        peer.send(InputAudioBufferComplete())
        peer.send(InputAudioBufferComplete())  # duplicate: ignored
        await peer.event("input_audio_buffer.completed")
        await peer.event("audio.agent.speech_stopped")
        await peer.until(lambda: peer.loud_samples >= RATE // 4)
        assert len(peer.of("input_audio_buffer.started")) == 1
        assert len(peer.of("input_audio_buffer.completed")) == 1
        assert not peer.of("audio.user.speech_started")
        assert not peer.of("error")
        answer = peer.of("conversation.message.completed")[-1]["data"]
        assert answer["role"] == "assistant" and answer["content"].startswith("You said: (0.")
        assert peer.of("conversation.chat.completed")
    finally:
        await peer.close()


async def test_cancel_stops_the_agent_audio(emu: Emulator) -> None:
    peer = await join(emu, max_queue_ms=5000)
    try:
        await configure(peer)
        peer.t.send_audio(tone(3.0))  # a long reply (echo)
        await peer.event("audio.agent.speech_started")
        peer.send(ConversationChatCancel())
        await peer.event("audio.agent.speech_stopped")
        started = peer.of("audio.agent.speech_started")
        assert len(started) == 1
        room = emu_room(emu, peer)
        assert room.agent.received.count("conversation.chat.cancel") == 1
        # The agent's audio stopped at the cancel: let another second of media arrive, and
        # far less than the 3 s echoed reply has been loud (an ignored cancel plays it all).
        heard = peer.audio_samples
        await peer.until(lambda: peer.audio_samples >= heard + 48000)
        assert peer.loud_samples < 1.0 * 48000
    finally:
        await peer.close()


async def test_silence_closes_the_room_with_4029(emu: Emulator) -> None:
    peer = await join(emu)
    try:
        await configure(peer, longest_silence_ms=1000)
        error = await peer.event("error")
        assert error["data"]["code"] == 4029
        assert error["data"]["detail"]["logid"]
        await peer.until(lambda: peer.ended.is_set())  # bot.leave ends messages()
        room = emu_room(emu, peer)
        await asyncio.wait_for(room.closed_event.wait(), TIMEOUT)
        assert room.close_code == 4029
        with pytest.raises(CloudError) as info:
            again = AiortcTransport()
            await again.join(peer.room, cloud_for(emu), BOT)
        assert info.value.code == 4200
    finally:
        await peer.close()
    fresh = await join(emu)  # the room must be re-created, and a new one works
    try:
        await fresh.event("session.created")
        assert fresh.room.room_id != peer.room.room_id
    finally:
        await fresh.close()


async def test_signalling_checks_the_room_token(emu: Emulator) -> None:
    room = await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id=BOT))
    url = f"{emu.api_url}/v1/audio/rooms/{room.room_id}/rtc"
    body = {"uid": room.uid, "sdp": "v=0", "type": "offer"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 401 and (await r.json())["code"] == 4100
        headers = {"Authorization": f"Bearer {room.token}"}
        async with http.post(url, json={**body, "uid": "other"}, headers=headers) as r:
            reply = await r.json()
            assert r.status == 400 and reply["code"] == 4000 and "uid" in reply["msg"]
        async with http.post(url, json={"uid": room.uid}, headers=headers) as r:
            reply = await r.json()
            assert r.status == 400 and "sdp" in reply["msg"]
        async with http.post(url, json=body, headers=headers) as r:  # not a usable offer
            reply = await r.json()
            assert r.status == 400 and reply["code"] == 4000 and "sdp" in reply["msg"]
    assert not emu_room_by_id(emu, room.room_id).has_user
    # the room is still usable after the bad offers
    transport = AiortcTransport()
    await transport.join(room, cloud_for(emu), BOT)
    peer = Peer(transport, room)
    try:
        await transport.wait_agent(TIMEOUT)
        await peer.event("session.created")
    finally:
        await peer.close()


def emu_room_by_id(emu: Emulator, room_id: str) -> EmulatorRoom:
    room = emu.http.api.rooms[room_id]
    assert isinstance(room, EmulatorRoom)
    return room


async def test_a_second_user_is_refused(emu: Emulator) -> None:
    peer = await join(emu)
    try:
        other = AiortcTransport()
        with pytest.raises(CloudError) as info:
            await other.join(peer.room, cloud_for(emu), BOT)
        assert info.value.code == 4000
        assert other.is_closed
    finally:
        await peer.close()


async def test_close_ends_both_iterators_and_rejects_sends(emu: Emulator) -> None:
    peer = await join(emu)
    await peer.event("session.created")
    await peer.close()
    assert peer.t.is_closed
    with pytest.raises(CloudError):
        peer.t.send_message("{}")
    peer.t.send_audio(tone(0.1))  # dropped silently
    assert [m async for m in peer.t.messages()] == []
    assert [a async for a in peer.t.audio()] == []
    await peer.t.close()  # idempotent


def test_frame_queue_cuts_pads_and_drops() -> None:
    stats = TransportStats()
    q = FrameQueue(960, 3, stats)
    q.push(np.arange(960 * 2 + 100, dtype=np.int16))
    assert len(q) == 2
    q.push(np.ones(960 * 3, dtype=np.int16))  # 100 left over + 2880 -> 3 more frames; 2 drop
    assert len(q) == 3 and stats.frames_dropped == 2
    first = q.pop()
    assert first is not None and first.size == 960
    q.clear()
    q.push(np.ones(10, dtype=np.int16))
    partial = q.pop()
    assert partial is not None and partial.size == 960 and partial[:10].sum() == 10
    assert partial[10:].sum() == 0
    assert q.pop() is None


async def test_transport_at_16_khz(emu: Emulator) -> None:
    peer = await join(emu, rate=16000, max_queue_ms=3000)
    try:
        await configure(peer)
        t = np.arange(16000) / 16000
        peer.t.send_audio((np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype(np.int16))
        await peer.event("audio.user.speech_started")
        await peer.event("audio.agent.speech_stopped")
        await peer.until(lambda: peer.loud_samples >= 16000 // 2)
        # 50 frames of 320 samples carried one second of 16 kHz audio
        assert peer.t.stats.frames_sent == 50
    finally:
        await peer.close()


def test_presence_messages_are_recognised() -> None:
    from voicegw.realtime.transport import (
        AGENT_JOIN,
        AGENT_LEAVE,
        SignalOffer,
        agent_presence,
        presence_message,
    )

    assert agent_presence(presence_message(AGENT_JOIN, BOT)) == AGENT_JOIN
    leave = presence_message(AGENT_LEAVE, BOT, "4029")
    assert agent_presence(leave) == AGENT_LEAVE and json.loads(leave)["data"]["reason"] == "4029"
    assert agent_presence('{"event_type":"session.created","data":{}}') is None
    assert agent_presence('{"event_type":"bot.joined"}') is None
    assert agent_presence("bot. not json") is None
    offer = SignalOffer.from_json({"uid": "u", "sdp": "v=0", "type": "offer"})
    assert offer.to_json() == {"uid": "u", "sdp": "v=0", "type": "offer"}
    with pytest.raises(Exception, match="type"):
        SignalOffer.from_json({"uid": "u", "sdp": "v=0", "type": "answer"})


async def test_closed_rooms_are_forgotten_beyond_the_limit(emu: Emulator) -> None:
    api = emu.http.api
    api.keep_closed = 2
    rooms = [
        await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id=BOT)) for _ in range(4)
    ]
    for info in rooms[:3]:
        await emu_room_by_id(emu, info.room_id).close()
    await create_room(cloud_for(emu), TOKEN, CreateRoomRequest(bot_id=BOT))
    assert rooms[0].room_id not in api.rooms  # the oldest closed room went
    assert all(info.room_id in api.rooms for info in rooms[1:])


async def test_the_outbound_track_paces_on_its_clock_and_resyncs_after_a_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicegw.io import webrtc

    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(webrtc.asyncio, "sleep", record)
    now = [100.0]
    queue = webrtc.FrameQueue(960, 50, webrtc.TransportStats())
    track = webrtc.make_source_track(48000, queue, clock=lambda: now[0])
    await track.recv()  # starts the timeline
    await track.recv()
    assert slept == [pytest.approx(0.02)]  # one frame ahead: wait for its tick
    now[0] += 30.0  # the loop stalled (or the process was stopped) for 30 s
    slept.clear()
    for _ in range(3):
        await track.recv()
    # No burst of 1,500 catch-up frames: the timeline restarts and pacing resumes.
    assert slept == [pytest.approx(0.02), pytest.approx(0.04)]
    track.stop()
